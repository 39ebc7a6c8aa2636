/** What a sampler held back since its last summary. */
export interface SuppressedLines {
  /** Lines not written. */
  suppressed: number;
  /** The same, by message. */
  byMessage: Record<string, number>;
  /** Over how long, in ms (from the first line held back to now). */
  overMs: number;
}

/**
 * Lets the first `burst` lines of each `intervalMs` through and counts the others by message,
 * so that one peer repeating a refused request costs a few lines and a count, not a line a
 * request. The owner writes the summary (`takeSuppressed()`) before the first line of a new
 * interval, and once more when the peer leaves. No timer: nothing runs while nothing is logged.
 * Messages are the constant texts of log lines, so the counts stay small.
 */
export class LogSampler {
  readonly #burst: number;
  readonly #intervalMs: number;
  #start = Number.NEGATIVE_INFINITY;
  #written = 0;
  #suppressed = 0;
  #firstSuppressedAt = 0;
  #byMessage: Map<string, number> | undefined;

  constructor(burst: number, intervalMs: number) {
    this.#burst = burst;
    this.#intervalMs = intervalMs;
  }

  /** True when a line with message `msg` may be written at clock time `now`; else it is counted. */
  admit(now: number, msg: string): boolean {
    if (now - this.#start >= this.#intervalMs) {
      this.#start = now;
      this.#written = 0;
    }
    if (this.#written < this.#burst) {
      this.#written++;
      return true;
    }
    if (this.#suppressed === 0) this.#firstSuppressedAt = now;
    this.#suppressed++;
    this.#byMessage ??= new Map();
    this.#byMessage.set(msg, (this.#byMessage.get(msg) ?? 0) + 1);
    return false;
  }

  /** The lines held back since the last call, or undefined when none; the count starts again. */
  takeSuppressed(now: number): SuppressedLines | undefined {
    if (this.#suppressed === 0) return undefined;
    const out: SuppressedLines = {
      suppressed: this.#suppressed,
      byMessage: Object.fromEntries(this.#byMessage ?? []),
      overMs: Math.round(now - this.#firstSuppressedAt),
    };
    this.#suppressed = 0;
    this.#byMessage = undefined;
    return out;
  }
}
