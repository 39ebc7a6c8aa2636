import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";

/**
 * A push-based async iterator: producers `push()`, one consumer reads with `for await`.
 * Bounded: when more than `maxItems` wait unread, the queue fails with RESOURCE_EXHAUSTED
 * rather than growing without limit.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  #items: T[] = [];
  #waiters: Array<{ resolve(r: IteratorResult<T>): void; reject(e: unknown): void }> = [];
  #done = false;
  #error: unknown = undefined;
  readonly #maxItems: number;
  readonly #onReturn: (() => void) | undefined;

  constructor(options: { maxItems?: number; onReturn?: () => void } = {}) {
    this.#maxItems = options.maxItems ?? 100_000;
    this.#onReturn = options.onReturn;
  }

  get closed(): boolean {
    return this.#done;
  }

  push(item: T): void {
    if (this.#done) return;
    const w = this.#waiters.shift();
    if (w) {
      w.resolve({ value: item, done: false });
      return;
    }
    if (this.#items.length >= this.#maxItems) {
      this.fail(
        new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `event queue over ${this.#maxItems} unread items`),
      );
      return;
    }
    this.#items.push(item);
  }

  /** Ends the iteration after the items already queued. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  /** Ends the iteration with an error, after the items already queued. */
  fail(err: unknown): void {
    if (this.#done) return;
    this.#error = err;
    this.#done = true;
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift() as T, done: false });
    if (this.#done) {
      if (this.#error !== undefined) {
        const e = this.#error;
        this.#error = undefined;
        return Promise.reject(e);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.#items = [];
    this.end();
    this.#onReturn?.();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
