/**
 * A rate limit (events per second) shared by whoever holds it: each `take()` waits until the
 * next event is due. No burst: events are spaced 1/rate apart, as `golang.org/x/time/rate`
 * with a burst of one (Finch's limiter).
 */
export class Rate {
  #next = 0;
  readonly #gapMs: number;
  constructor(readonly perSecond: number) {
    this.#gapMs = 1000 / perSecond;
  }
  /** Resolves when the caller may go; rejects never (aborts are checked by the caller). */
  async take(signal: AbortSignal): Promise<void> {
    const now = performance.now();
    const at = Math.max(now, this.#next);
    this.#next = at + this.#gapMs;
    const wait = at - now;
    if (wait >= 1) await sleep(wait, signal);
  }
}

/** Several limits at once (client, client group, exec group, stage): each is waited for in turn. */
export async function takeAll(rates: Rate[], signal: AbortSignal): Promise<void> {
  for (const r of rates) await r.take(signal);
}

/** A rate for `perSecond` (0: none). */
export function rate(perSecond: number): Rate[] {
  return perSecond > 0 ? [new Rate(perSecond)] : [];
}

/** Sleeps `ms`, or less when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** A count shared by several clients (iterations of a client group, rows of a statement). */
export class Budget {
  #left: number;
  constructor(total: number) {
    this.#left = total;
  }
  /** Takes `n` if that many are left. */
  take(n = 1): boolean {
    if (this.#left < n) return false;
    this.#left -= n;
    return true;
  }
  get left(): number {
    return this.#left;
  }
}
