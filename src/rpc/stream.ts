import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { itemCost, type Payload } from "../wire/frame.js";
import type { CallOrigin } from "../wire/origin.js";
import type { CallContext } from "./types.js";

/** Options of a stream opened by this side. */
export interface StreamOptions {
  /**
   * Item cost (payload bytes + 16 per item) this reader holds at most before the writer must
   * wait for credit: the memory bound of an unread stream. A single item larger than the
   * window still goes through when nothing else is outstanding. @default 262144 (256 KiB)
   */
  windowBytes?: number;
  /** Deadline of the whole stream, in ms from now. @default none: a stream may run for ever */
  timeoutMs?: number;
  /** Aborting cancels the stream on both sides. */
  signal?: AbortSignal;
  /** Who the stream is opened on behalf of (`ctx.caller` on the serving side); see CallOptions. */
  origin?: CallOrigin;
}

/** What a stream handler gets: a call context that can also wait for credit. */
export interface StreamContext extends CallContext {
  /**
   * Sends one item, waiting first until the reader has room for it (credit) and the link is
   * not backed up. Rejects with the reason once the stream is cancelled, times out or its
   * session ends.
   */
  write(item: unknown): Promise<void>;
  /** Items written so far. */
  readonly position: number;
}

/**
 * A function that serves a stream. It either returns an (async) iterable — an async generator
 * is the natural form — whose items are sent as the reader makes room for them, and whose
 * return value becomes the stream's result; or it writes with `ctx.write()` and returns (or
 * resolves with) the result. Cancellation calls the iterator's `return()`, so `finally` blocks
 * in a generator run; a generator waiting on something slow should also watch `ctx.signal`.
 */
export type StreamHandler<Req = unknown, Item = unknown> = (
  request: Req,
  ctx: StreamContext,
) => AsyncIterable<Item> | Iterable<Item> | Promise<unknown> | unknown;

/** What the reader side reports to its endpoint. */
export interface StreamHost {
  /** Grants the writer `bytes` more room (a CREDIT frame). */
  _credit(id: number, bytes: number): void;
  /** Cancels stream `id` (a CANCEL frame) without settling anything else. */
  _cancelStream(id: number): void;
  /** Stream `id` received items beyond its window plus credit: CANCEL, counted against the peer. */
  _flowControlBroken(id: number, err: MusterError): void;
  /** Decodes an item's payload. */
  _decode(payload: Payload): unknown;
}

/** Default reader window, in bytes of item cost. */
export const DEFAULT_STREAM_WINDOW = 256 * 1024;

type Waiter<T> = { resolve(r: IteratorResult<T>): void; reject(e: unknown): void };

/**
 * The reading end of a stream: an async iterator of its items, in order, each exactly once
 * (the session resends what a dropped link lost). Items are held until read, at most a window's
 * worth: the reader grants the writer more room as items are read, half a window at a time.
 *
 * The reader holds no more than it allowed: a writer that sends items beyond the window plus
 * the credit granted breaks flow control, and the stream is closed at once (PROTOCOL_ERROR
 * here, CANCEL to the writer), its items dropped.
 *
 * The iteration ends when the writer ends the stream (`result` then holds its final value),
 * throws the writer's error, or throws SESSION_EXPIRED when the session could not be resumed;
 * that error's `details.lastReceived` (also `received`) says how many items arrived, so the
 * application can reopen the stream from there. `break` or `cancel()` stops the writer.
 */
export class MusterStream<T = unknown> implements AsyncIterableIterator<T> {
  /** The stream's name (the method opened). */
  readonly name: string;
  readonly #host: StreamHost;
  readonly #window: number;
  /** The call id, once the OPEN is sent. */
  id = 0;
  #items: Payload[] = [];
  #head = 0;
  #waiter: Waiter<T> | undefined;
  /** Items received, read or not. */
  #received = 0;
  /** Cost read since the last CREDIT was sent. */
  #unGranted = 0;
  /** Cost of every item received, and of every CREDIT granted: the writer's bound is their difference. */
  #receivedCost = 0;
  #granted = 0;
  #ended = false;
  #error: MusterError | undefined;
  #result: unknown;
  #onAbort: (() => void) | undefined;
  #signal: AbortSignal | undefined;

  constructor(name: string, host: StreamHost, window: number) {
    this.name = name;
    this.#host = host;
    this.#window = window;
  }

  /** Items received so far (the position of the last one): where to resume after an expiry. */
  get received(): number {
    return this.#received;
  }
  /** The final value the writer ended the stream with (after the iteration is done). */
  get result(): unknown {
    return this.#result;
  }
  /** True once the stream has ended, failed or been cancelled. */
  get ended(): boolean {
    return this.#ended;
  }
  /** Items received and not yet read. */
  get buffered(): number {
    return this.#items.length - this.#head;
  }

  /** @internal Ties the stream to an abort signal. */
  _watch(signal: AbortSignal | undefined): void {
    if (!signal) return;
    this.#signal = signal;
    this.#onAbort = () => this.cancel(new MusterError(ErrorCode.CANCELLED, `stream ${this.name} aborted`));
    signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** @internal An ITEM arrived. */
  _item(payload: Payload): void {
    if (this.#ended) return;
    // The writer may send while what it sent costs less than window + credit: an item arriving
    // when the cost received already reaches that broke the rule (one item may overshoot).
    if (this.#receivedCost >= this.#window + this.#granted) {
      this.#breakFlowControl(this.#receivedCost + itemCost(payload.bytes.length));
      return;
    }
    this.#receivedCost += itemCost(payload.bytes.length);
    this.#received++;
    const w = this.#waiter;
    if (w !== undefined && this.buffered === 0) {
      this.#waiter = undefined;
      this.#deliver(payload, w);
      return;
    }
    this.#items.push(payload);
  }

  /** @internal The writer ended the stream (err undefined) or it failed. */
  _settle(err: MusterError | undefined, payload: Payload | undefined): void {
    if (this.#ended) return;
    this.#unwatch();
    this.#ended = true;
    if (err) {
      // Every error says how far the stream got, so that it can be reopened from there.
      const details = err.details === undefined ? { lastReceived: this.#received } : err.details;
      this.#error =
        err.code === ErrorCode.SESSION_EXPIRED
          ? new MusterError(
              ErrorCode.SESSION_EXPIRED,
              `stream ${this.name} lost with its session after item ${this.#received}: ${err.rawMessage}; reopen it from item ${this.#received + 1}`,
              { details, cause: err },
            )
          : err.details === undefined
            ? new MusterError(err.code, err.rawMessage, { details, cause: err })
            : err;
    } else if (payload !== undefined) {
      try {
        this.#result = this.#host._decode(payload);
      } catch (e) {
        this.#error = MusterError.from(e, ErrorCode.INVALID_ARGUMENT);
      }
    }
    const w = this.#waiter;
    if (w !== undefined && this.buffered === 0) {
      this.#waiter = undefined;
      if (this.#error) w.reject(this.#error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffered > 0) {
      const payload = this.#take();
      return new Promise((resolve, reject) => this.#deliver(payload, { resolve, reject }));
    }
    if (this.#ended) {
      return this.#error && this.#error.code !== ErrorCode.CANCELLED
        ? Promise.reject(this.#error)
        : Promise.resolve({ value: undefined, done: true });
    }
    if (this.#waiter)
      return Promise.reject(new MusterError(ErrorCode.INVALID_ARGUMENT, "one reader at a time"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** `break` out of a `for await`: the stream is cancelled. */
  return(): Promise<IteratorResult<T>> {
    this.cancel();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  /**
   * Stops the stream on both sides at once: the writer is told (CANCEL), items held here are
   * dropped, and a pending `next()` resolves as done. No-op once the stream has ended.
   */
  cancel(reason = new MusterError(ErrorCode.CANCELLED, `stream ${this.name} cancelled by the reader`)): void {
    if (this.#ended) return;
    this.#unwatch();
    this.#ended = true;
    this.#error = reason;
    this.#items = [];
    this.#head = 0;
    this.#host._cancelStream(this.id);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve({ value: undefined, done: true });
  }

  /** Closes the stream: the writer sent `cost` bytes of items, more than it was allowed. */
  #breakFlowControl(cost: number): void {
    const err = new MusterError(
      ErrorCode.PROTOCOL_ERROR,
      `stream ${this.name}: the writer sent ${cost} bytes of items beyond its window of ${this.#window} bytes + ${this.#granted} bytes of credit (flow control broken): stream closed`,
      { details: { lastReceived: this.#received } },
    );
    this.#unwatch();
    this.#ended = true;
    this.#error = err;
    this.#items = [];
    this.#head = 0;
    this.#host._flowControlBroken(this.id, err);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(err);
  }

  #take(): Payload {
    const p = this.#items[this.#head]!;
    this.#items[this.#head] = undefined as unknown as Payload;
    this.#head++;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return p;
  }

  /** Hands one item to the reader and grants credit for it once half a window has been read. */
  #deliver(payload: Payload, w: Waiter<T>): void {
    this.#unGranted += itemCost(payload.bytes.length);
    if (!this.#ended && this.#unGranted >= this.#window / 2) {
      const bytes = Math.min(this.#unGranted, 0xffffffff);
      this.#unGranted -= bytes;
      this.#granted += bytes;
      this.#host._credit(this.id, bytes);
    }
    let value: T;
    try {
      value = this.#host._decode(payload) as T;
    } catch (e) {
      // An item that cannot be decoded ends the stream for this reader.
      const err = MusterError.from(e, ErrorCode.INVALID_ARGUMENT);
      this.cancel(err);
      this.#error = err;
      w.reject(err);
      return;
    }
    w.resolve({ value, done: false });
  }

  #unwatch(): void {
    if (this.#onAbort) this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#onAbort = undefined;
  }
}

/** True for what a stream handler returns to be iterated (not strings or bytes). */
export function iteratorOf(value: unknown): AsyncIterator<unknown> | Iterator<unknown> | undefined {
  if (value === null || typeof value !== "object") return undefined;
  if (value instanceof Uint8Array) return undefined;
  const v = value as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  if (typeof v[Symbol.asyncIterator] === "function") return v[Symbol.asyncIterator]!();
  if (typeof v[Symbol.iterator] === "function") return v[Symbol.iterator]!();
  return undefined;
}

/**
 * Checks a stream's opening options, as every opener does before sending anything: the window
 * (`window`, from `options.windowBytes`) and deadline in range, and the signal not aborted
 * already. Throws INVALID_ARGUMENT or CANCELLED.
 */
export function checkStreamOpen(name: string, window: number, options: StreamOptions): void {
  if (!(window >= 1 && window <= 0xffffffff))
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `windowBytes must be 1…4294967295, got ${options.windowBytes}`,
    );
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && !(timeoutMs > 0 && timeoutMs <= 0xffffffff))
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `timeoutMs must be 1…4294967295, got ${timeoutMs}`);
  if (options.signal?.aborted)
    throw new MusterError(ErrorCode.CANCELLED, `stream ${name} aborted before it opened`);
}

/** A stream that failed before it could open (no such agent, a bad option). */
export function failedStream<T>(name: string, err: MusterError): MusterStream<T> {
  const s = new MusterStream<T>(name, NO_HOST, DEFAULT_STREAM_WINDOW);
  s._settle(err, undefined);
  return s;
}

const NO_HOST: StreamHost = {
  _credit: () => {},
  _cancelStream: () => {},
  _flowControlBroken: () => {},
  _decode: () => undefined,
};
