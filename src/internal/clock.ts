/**
 * An injectable clock so that heartbeats, backoff and deadlines can be tested without
 * sleeping. `systemClock` is the default everywhere; tests pass a `ManualClock`.
 */
export interface TimerHandle {
  /** Stops the process from staying alive for this timer alone. */
  unref(): void;
}

export interface Clock {
  /** Milliseconds, monotonic where the platform allows. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
};

interface ManualTimer extends TimerHandle {
  at: number;
  fn: () => void;
  id: number;
  cleared: boolean;
}

/** A clock that only moves when `advance()` is called. Timers fire in time order. */
export class ManualClock implements Clock {
  #now = 0;
  #timers: ManualTimer[] = [];
  #nextId = 0;

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: ManualTimer = {
      at: this.#now + Math.max(0, ms),
      fn,
      id: this.#nextId++,
      cleared: false,
      unref() {},
    };
    this.#timers.push(t);
    return t;
  }

  clearTimeout(handle: TimerHandle): void {
    (handle as ManualTimer).cleared = true;
    this.#timers = this.#timers.filter((t) => t !== handle);
  }

  /** Number of timers still scheduled. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, running every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.#timers) {
        if (
          t.at <= target &&
          (next === undefined || t.at < next.at || (t.at === next.at && t.id < next.id))
        ) {
          next = t;
        }
      }
      if (next === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = next.at;
      next.fn();
    }
    this.#now = target;
  }
}
