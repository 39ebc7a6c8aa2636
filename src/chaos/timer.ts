import type { Clock, TimerHandle } from "../internal/clock.js";
import { MAX_DURATION_MS } from "./units.js";

/**
 * Calls `fn` once the clock reads `at` or later: never early, even when the platform's timers
 * wake up a little ahead of the clock or the wait is longer than one timer allows (it is then
 * taken in parts). `unref()`ed: it does not keep a process alive on its own.
 */
export class ClockTimer {
  readonly #clock: Clock;
  readonly #at: number;
  readonly #fn: () => void;
  #handle: TimerHandle | undefined;

  constructor(clock: Clock, at: number, fn: () => void) {
    this.#clock = clock;
    this.#at = at;
    this.#fn = fn;
    this.#arm();
  }

  /** The clock time it fires at. */
  get at(): number {
    return this.#at;
  }

  cancel(): void {
    if (this.#handle) this.#clock.clearTimeout(this.#handle);
    this.#handle = undefined;
  }

  #arm(): void {
    const wait = Math.ceil(this.#at - this.#clock.now());
    this.#handle = this.#clock.setTimeout(this.#fire, Math.max(0, Math.min(wait, MAX_DURATION_MS)));
    this.#handle.unref();
  }

  #fire = (): void => {
    this.#handle = undefined;
    if (this.#clock.now() < this.#at) this.#arm();
    else this.#fn();
  };
}
