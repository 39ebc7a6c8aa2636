import { DEFAULTS } from "./defaults.js";

export interface BackoffOptions {
  /** @default 500 */
  initialMs?: number;
  /** @default 30000 */
  maxMs?: number;
  /** @default 2 */
  factor?: number;
  /**
   * Spread applied *after* the cap, so that agents stay spread out even when every one
   * of them has reached the cap (Socket.IO applies it before, and its jitter collapses).
   * @default 0.5
   */
  jitter?: number;
  /** @default Math.random */
  random?: () => number;
}

/** Exponential backoff with jitter after the cap. `next()` gives the next delay in ms. */
export class Backoff {
  #attempt = 0;
  readonly #o: Required<BackoffOptions>;

  constructor(options: BackoffOptions = {}) {
    this.#o = {
      initialMs: options.initialMs ?? DEFAULTS.reconnectInitialMs,
      maxMs: options.maxMs ?? DEFAULTS.reconnectMaxMs,
      factor: options.factor ?? DEFAULTS.reconnectFactor,
      jitter: options.jitter ?? DEFAULTS.reconnectJitter,
      random: options.random ?? Math.random,
    };
  }

  get attempt(): number {
    return this.#attempt;
  }

  next(): number {
    const { initialMs, maxMs, factor, jitter, random } = this.#o;
    const base = Math.min(maxMs, initialMs * factor ** Math.min(this.#attempt, 64));
    this.#attempt++;
    const spread = base * jitter * (2 * random() - 1);
    return Math.max(0, Math.round(base + spread));
  }

  reset(): void {
    this.#attempt = 0;
  }
}
