import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock, TimerHandle } from "../internal/clock.js";
import { truncateForLog } from "../internal/log-safe.js";
import type { Logger } from "../internal/logger.js";
import type { SequencedFrame } from "../session/session.js";
import {
  type DecodeLimits,
  decodeValue,
  encodeCall,
  encodeFrame,
  encodeOpen,
  encodeValue,
} from "../wire/codec.js";
import { FrameType, itemCost, type Payload } from "../wire/frame.js";
import type { CallOrigin } from "../wire/origin.js";
import type { SharedCall } from "../wire/shared-call.js";
import {
  checkStreamOpen,
  DEFAULT_STREAM_WINDOW,
  iteratorOf,
  MusterStream,
  type StreamContext,
  type StreamHandler,
  type StreamHost,
  type StreamOptions,
} from "./stream.js";
import type { CallerInfo, CallOptions, Handler, PeerInfo } from "./types.js";

/** Where an endpoint sends its frames: a session (`Session.send`). */
export interface FrameSink {
  /** With `now`, the frame is written at once instead of with the rest of the tick's frames. */
  send(frame: Buffer, now?: boolean): void;
  /** False while the sink is backed up (see `Session.writable`). */
  readonly writable: boolean;
  /** Resolves once `writable` is true again; rejects when the sink closes. */
  whenWritable(): Promise<void>;
}

/** Callbacks of a started call. Exactly one `onSettle` per call. */
export interface CallCallbacks {
  onItem?: (payload: Payload) => void;
  onSettle(err: MusterError | undefined, payload: Payload | undefined): void;
}

/** A call in flight, as returned by `start()`. */
export interface CallHandle {
  readonly id: number;
  /** Settles the call with `err` and tells the callee to stop (CANCEL). No-op once settled. */
  cancel(err: MusterError): void;
}

/** A call of ours waiting for its outcome; it is also the caller's handle (no closure per call). */
class Outgoing implements CallHandle {
  timer: TimerHandle | undefined;
  constructor(
    readonly endpoint: RpcEndpoint,
    readonly id: number,
    readonly cb: CallCallbacks,
  ) {}
  cancel(err: MusterError): void {
    this.endpoint._cancel(this.id, err);
  }
}

/**
 * A call from the peer being handled here, and the context its handler gets. Most handlers
 * never look at their signal, so the AbortController and its deadline timer are made only when
 * `signal` is first read; until then an expired call is dropped by `expireIncoming()` (the
 * owner's maintenance tick) and a late reply is not sent. A class, not an object literal with
 * closures: one allocation per call on the hot path.
 */
class Incoming implements StreamContext {
  controller: AbortController | undefined;
  timer: TimerHandle | undefined;
  /** Why the call ended before its handler did (cancel, deadline, session end). */
  ended: MusterError | undefined;
  /** Streams only: cost of the items sent, and how much the reader has made room for. */
  sentCost = 0;
  creditLimit = 0;
  position = 0;
  /** Streams only: a `write()` waiting for credit. */
  creditWaiter: { resolve(): void; reject(e: unknown): void } | undefined;
  /** Who a server relayed this call for (an ORIGIN frame ahead of it). */
  origin: CallOrigin | undefined;
  constructor(
    readonly endpoint: RpcEndpoint,
    readonly id: number,
    readonly method: string,
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly peer: PeerInfo,
  ) {}
  get signal(): AbortSignal {
    return this.controller?.signal ?? this.endpoint._signalOf(this);
  }
  get caller(): CallerInfo {
    const o = this.origin;
    if (o !== undefined) return { ...o, relayed: true };
    const p = this.peer;
    const subject = p.identity?.subject;
    return subject === undefined
      ? { role: p.role, name: p.name, relayed: false }
      : { role: p.role, name: p.name, subject, relayed: false };
  }
  remainingMs(): number {
    return Math.max(0, this.deadline - this.endpoint._now());
  }
  emit(item: unknown): boolean {
    return this.endpoint._emit(this, item);
  }
  whenWritable(): Promise<void> {
    return this.endpoint._whenWritable(this);
  }
  write(item: unknown): Promise<void> {
    return this.endpoint._write(this, item);
  }
}

/**
 * The owner's policy for the peer (an object rather than closures: one per peer): whether it
 * may call a method, and what to do when it breaks the rules.
 */
export interface Authorizer {
  authorize(method: string, stream: boolean): MusterError | undefined;
  /**
   * A stream read here received items beyond its window plus the credit granted: it was
   * closed at once (CANCEL to the writer, PROTOCOL_ERROR for its reader). `streams` counts the
   * peer's streams that did so, for the owner to close the link when it repeats.
   */
  flowControlBroken?(streams: number, err: MusterError): void;
}

export interface EndpointOptions {
  clock: Clock;
  logger: Logger;
  /** Methods this side answers. Shared, so handlers added later are seen. */
  handlers: ReadonlyMap<string, Handler>;
  /** Who the peer is, as shown to handlers. */
  peer: PeerInfo;
  /** Default deadline of outgoing calls. */
  defaultTimeoutMs: number;
  /** Calls from the peer running at once before new ones are refused with RESOURCE_EXHAUSTED. */
  maxIncomingCalls: number;
  /** The peer in error messages. @default `${peer.role} ${peer.name}`, e.g. `agent web-1` */
  describePeer?: string;
  /** This side in error messages, e.g. `the server`. */
  describeSelf: string;
  /** Limits for decoding payloads (shared by the endpoints of one owner). @default DEFAULTS */
  decodeLimits?: DecodeLimits;
  /** Streams this side serves. Shared, so handlers added later are seen. */
  streamHandlers?: ReadonlyMap<string, StreamHandler>;
  /**
   * Checked for every call and stream from the peer before its handler is looked up: an error
   * (PERMISSION_DENIED for a role or grant, UNAVAILABLE while draining) is its answer.
   */
  authorizer?: Authorizer;
  /**
   * Largest frame the peer accepts, in bytes. A request, result or item that would make a
   * larger frame fails its own call (or stream) with RESOURCE_EXHAUSTED instead of being sent
   * and killing the link. @default no check
   */
  maxFrameBytes?: number;
  /** The peer reads ORIGIN frames (its HELLO asked for "origin"): relayed calls name their origin. */
  sendOrigin?: boolean;
  /** ORIGIN frames from the peer are believed (the peer is this side's server); else ignored. */
  acceptOrigin?: boolean;
}

/**
 * Calls in both directions over one session: ids, deadlines (the remaining time goes on the
 * wire), cancellation, partial results, and exactly one outcome per call.
 */
export class RpcEndpoint implements StreamHost {
  #nextId = 1;

  /** The id the next call will take; moves with a handed-over session (ids are never reused). */
  get nextCallId(): number {
    return this.#nextId;
  }
  set nextCallId(id: number) {
    if (Number.isInteger(id) && id >= 1 && id <= 0xffffffff) this.#nextId = id;
  }
  // The two call tables are made on first use, and the options are kept field by field rather
  // than as the caller's object: a server holds one endpoint per agent, mostly idle.
  #out: Map<number, Outgoing> | undefined;
  #in: Map<number, Incoming> | undefined;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #handlers: ReadonlyMap<string, Handler>;
  readonly #peer: PeerInfo;
  readonly #defaultTimeoutMs: number;
  readonly #maxIncomingCalls: number;
  readonly #describePeer: string | undefined;
  readonly #describeSelf: string;
  readonly #decodeLimits: DecodeLimits | undefined;
  readonly #streamHandlers: ReadonlyMap<string, StreamHandler> | undefined;
  readonly #authorizer: Authorizer | undefined;
  readonly #maxFrameBytes: number | undefined;
  readonly #sendOrigin: boolean;
  readonly #acceptOrigin: boolean;
  /** The origin the peer named for its next CALL or OPEN (which follows it at once). */
  #origin: { id: number; origin: CallOrigin } | undefined;
  /** Streams of the peer that broke flow control. */
  #violations = 0;
  #sink: FrameSink;
  #failed: MusterError | undefined;

  constructor(sink: FrameSink, options: EndpointOptions) {
    this.#sink = sink;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#handlers = options.handlers;
    this.#peer = options.peer;
    this.#defaultTimeoutMs = options.defaultTimeoutMs;
    this.#maxIncomingCalls = options.maxIncomingCalls;
    this.#describePeer = options.describePeer;
    this.#describeSelf = options.describeSelf;
    this.#decodeLimits = options.decodeLimits;
    this.#streamHandlers = options.streamHandlers;
    this.#authorizer = options.authorizer;
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#sendOrigin = options.sendOrigin === true;
    this.#acceptOrigin = options.acceptOrigin === true;
  }

  /** Calls waiting for an outcome. */
  get pendingOutgoing(): number {
    return this.#out?.size ?? 0;
  }
  /** Peer's calls being handled here. */
  get runningIncoming(): number {
    return this.#in?.size ?? 0;
  }

  #peerName(): string {
    return this.#describePeer ?? `${this.#peer.role} ${this.#peer.name}`;
  }

  /**
   * Starts a call with an already encoded payload. With `ownTimer` false the caller
   * enforces the deadline itself (a fan-out uses one timer for all its calls), and the CALL is
   * written at once rather than gathered until the end of the tick: a fan-out sends one frame
   * per link. With `shared` (the same method, timeout and payload), the frame is a copy of the
   * fan-out's one encoded CALL.
   */
  start(
    method: string,
    payload: Payload,
    timeoutMs: number,
    cb: CallCallbacks,
    ownTimer = true,
    origin?: CallOrigin,
    shared?: SharedCall,
  ): CallHandle {
    const id = this.#nextId++;
    if (this.#nextId > 0xffffffff) this.#nextId = 1;
    const o = new Outgoing(this, id, cb);
    if (this.#failed) {
      cb.onSettle(this.#failed, undefined);
      return o;
    }
    const frame = shared === undefined ? encodeCall(1, 0, id, timeoutMs, method, payload) : shared.frame(id);
    const tooLarge = this.#oversize(frame, "the request of", method);
    if (tooLarge !== undefined) {
      cb.onSettle(tooLarge, undefined);
      return o;
    }
    this.#out ??= new Map();
    const out = this.#out;
    out.set(id, o);
    try {
      if (origin !== undefined && this.#sendOrigin) {
        this.#sendOriginOf(id, origin);
        this.#sink.send(frame);
      } else this.#sink.send(frame, !ownTimer);
    } catch (err) {
      out.delete(id);
      cb.onSettle(MusterError.from(err), undefined);
      return o;
    }
    if (ownTimer) {
      o.timer = this.#clock.setTimeout(() => {
        this._cancel(
          id,
          new MusterError(
            ErrorCode.DEADLINE_EXCEEDED,
            `${method} on ${this.#peerName()}: no answer in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      // Not unref()ed: a pending call keeps the process alive until its deadline, like a socket would.
    }
    return o;
  }

  /** Calls `method` and resolves with the decoded result. */
  call(method: string, request: unknown, options: CallOptions = {}): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? this.#defaultTimeoutMs;
    const signal = options.signal;
    if (signal?.aborted)
      return Promise.reject(new MusterError(ErrorCode.CANCELLED, "call aborted before it started"));
    let payload: Payload;
    try {
      payload = encodeValue(request);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void =>
        handle.cancel(new MusterError(ErrorCode.CANCELLED, `${method} aborted by the caller`));
      const onItem = options.onItem;
      const handle = this.start(
        method,
        payload,
        timeoutMs,
        {
          onItem: onItem
            ? (p) => {
                try {
                  onItem(decodeValue(p, this.#decodeLimits));
                } catch (err) {
                  this.#logger.warn({ err, method }, "onItem callback failed");
                }
              }
            : undefined,
          onSettle: (err, p) => {
            signal?.removeEventListener("abort", onAbort);
            if (err) reject(err);
            else {
              try {
                resolve(decodeValue(p!, this.#decodeLimits));
              } catch (e) {
                reject(e);
              }
            }
          },
        },
        true,
        options.origin,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Opens stream `name` on the peer and returns its reading end. Errors (no such stream, the
   * session closed) arrive through the iteration, never as a throw here.
   */
  openStream<T = unknown>(name: string, request: unknown, options: StreamOptions = {}): MusterStream<T> {
    const window = Math.floor(options.windowBytes ?? DEFAULT_STREAM_WINDOW);
    const s = new MusterStream<T>(name, this, window);
    const id = this.#nextId++;
    if (this.#nextId > 0xffffffff) this.#nextId = 1;
    s.id = id;
    const timeoutMs = options.timeoutMs;
    let frame: Buffer;
    try {
      checkStreamOpen(name, window, options);
      frame = encodeOpen(1, 0, id, timeoutMs ?? 0, window, name, encodeValue(request));
      const tooLarge = this.#oversize(frame, "the request of stream", name);
      if (tooLarge !== undefined) throw tooLarge;
    } catch (err) {
      s._settle(MusterError.from(err, ErrorCode.INVALID_ARGUMENT), undefined);
      return s;
    }
    const o = new Outgoing(this, id, {
      onItem: (p) => s._item(p),
      onSettle: (err, p) => s._settle(err, p),
    });
    if (this.#failed) {
      s._settle(this.#failed, undefined);
      return s;
    }
    this.#out ??= new Map();
    this.#out.set(id, o);
    try {
      if (options.origin !== undefined && this.#sendOrigin) this.#sendOriginOf(id, options.origin);
      this.#sink.send(frame);
    } catch (err) {
      this.#out.delete(id);
      s._settle(MusterError.from(err), undefined);
      return s;
    }
    if (timeoutMs !== undefined) {
      o.timer = this.#clock.setTimeout(() => {
        this._cancel(
          id,
          new MusterError(
            ErrorCode.DEADLINE_EXCEEDED,
            `stream ${name} on ${this.#peerName()}: not done in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
    }
    s._watch(options.signal);
    return s;
  }

  /** The ORIGIN frame that goes right ahead of call or stream `id`. */
  #sendOriginOf(id: number, origin: CallOrigin): void {
    this.#sink.send(encodeFrame({ type: FrameType.ORIGIN, seq: 1, ack: 0, id, origin }));
  }

  /** @internal StreamHost: more room for the writer of stream `id`. */
  _credit(id: number, bytes: number): void {
    if (this.#out?.get(id) === undefined) return;
    try {
      this.#sink.send(encodeFrame({ type: FrameType.CREDIT, seq: 1, ack: 0, id, bytes }));
    } catch {
      // The session is closed: the stream fails with it.
    }
  }

  /** @internal StreamHost: the reader cancelled stream `id`. */
  _cancelStream(id: number): void {
    const o = this.#out?.get(id);
    if (!o) return;
    this.#out!.delete(id);
    if (o.timer) this.#clock.clearTimeout(o.timer);
    try {
      this.#sink.send(encodeFrame({ type: FrameType.CANCEL, seq: 1, ack: 0, id }));
    } catch {
      // The session is closed: the writer stops with it.
    }
  }

  /**
   * @internal StreamHost: stream `id` received items beyond its window plus credit. The writer
   * is told to stop (CANCEL); repeated, the owner closes the link.
   */
  _flowControlBroken(id: number, err: MusterError): void {
    this._cancelStream(id);
    this.#violations++;
    this.#logger.warn(
      { id, err: err.rawMessage, streams: this.#violations },
      "stream closed: the peer broke flow control",
    );
    this.#authorizer?.flowControlBroken?.(this.#violations, err);
  }

  /**
   * RESOURCE_EXHAUSTED when `frame` is larger than the peer accepts (`what`, `method` and `item`
   * say which: "the result of" m, "item" 3 of m). On every call's path: the message is made only
   * when the frame is too large.
   */
  #oversize(frame: Uint8Array, what: string, method: string, item?: number): MusterError | undefined {
    const max = this.#maxFrameBytes;
    if (max === undefined || frame.length <= max) return undefined;
    const which = item === undefined ? what : `${what} ${item} of`;
    return new MusterError(
      ErrorCode.RESOURCE_EXHAUSTED,
      `${which} ${truncateForLog(method, 80)} is ${frame.length} bytes as a frame, over the ${max}-byte frame limit of ${this.#peerName()}`,
      { details: { frameBytes: frame.length, maxFrameBytes: max } },
    );
  }

  /** @internal StreamHost */
  _decode(payload: Payload): unknown {
    return decodeValue(payload, this.#decodeLimits);
  }

  /** Handles a sequenced frame from the session. */
  receive(frame: SequencedFrame): void {
    // An ORIGIN names the CALL or OPEN that comes right after it, and nothing else.
    const origin = this.#origin;
    this.#origin = undefined;
    switch (frame.type) {
      case FrameType.ORIGIN:
        if (this.#acceptOrigin) this.#origin = { id: frame.id, origin: frame.origin };
        else this.#logger.debug({ id: frame.id }, "an ORIGIN from a peer that may not name one: ignored");
        return;
      case FrameType.CALL:
        this.#onCall(frame.id, frame.method, frame.timeoutMs, frame.payload, origin);
        return;
      case FrameType.ITEM: {
        const o = this.#out?.get(frame.id);
        o?.cb.onItem?.(frame.payload);
        return;
      }
      case FrameType.RESULT: {
        const o = this.#out?.get(frame.id);
        if (!o) return; // late: cancelled or timed out here already
        this.#out!.delete(frame.id);
        if (o.timer) this.#clock.clearTimeout(o.timer);
        if ("error" in frame) o.cb.onSettle(MusterError.fromBody(frame.error), undefined);
        else o.cb.onSettle(undefined, frame.payload);
        return;
      }
      case FrameType.CANCEL: {
        const i = this.#in?.get(frame.id);
        if (i === undefined) return;
        // A CANCEL carries no reason: one that comes at the call's deadline is the caller's
        // timer (its clock and this one agree within a transit), so the handler is told so.
        const margin = Math.max(20, i.timeoutMs * 0.02);
        this.#endIncoming(
          i,
          i.timeoutMs > 0 && this.#clock.now() >= i.deadline - margin
            ? new MusterError(
                ErrorCode.DEADLINE_EXCEEDED,
                `deadline of ${i.timeoutMs} ms passed (the caller gave up)`,
              )
            : new MusterError(ErrorCode.CANCELLED, "the caller cancelled the call"),
        );
        return;
      }
      case FrameType.OPEN:
        this.#onOpen(frame.id, frame.method, frame.timeoutMs, frame.window, frame.payload, origin);
        return;
      case FrameType.CREDIT: {
        const i = this.#in?.get(frame.id);
        if (i === undefined || i.creditLimit === 0) return; // over, or not a stream
        i.creditLimit += frame.bytes;
        const w = i.creditWaiter;
        if (w !== undefined && i.sentCost < i.creditLimit) {
          i.creditWaiter = undefined;
          w.resolve();
        }
        return;
      }
    }
  }

  /**
   * Ends the endpoint: every pending outgoing call settles with `err`, every running
   * handler's signal fires. Later calls fail at once with `err`.
   */
  fail(err: MusterError): void {
    if (this.#failed) return;
    this.#failed = err;
    const out = this.#out;
    if (out !== undefined) {
      for (const o of [...out.values()]) {
        out.delete(o.id);
        if (o.timer) this.#clock.clearTimeout(o.timer);
        o.cb.onSettle(err, undefined);
      }
    }
    if (this.#in !== undefined) for (const i of [...this.#in.values()]) this.#endIncoming(i, err);
  }

  /**
   * Drops the peer's calls whose deadline has passed (their handlers' signals fire). Called by
   * the owner's maintenance tick; handlers that read their signal get a precise timer instead.
   */
  expireIncoming(now: number): void {
    if (this.#in === undefined || this.#in.size === 0) return;
    for (const i of this.#in.values()) {
      if (i.deadline <= now) {
        this.#endIncoming(
          i,
          new MusterError(ErrorCode.DEADLINE_EXCEEDED, `deadline of ${i.timeoutMs} ms passed`),
        );
      }
    }
  }

  #endIncoming(i: Incoming, err: MusterError): void {
    if (this.#in?.get(i.id) !== i) return;
    this.#in.delete(i.id);
    if (i.timer) this.#clock.clearTimeout(i.timer);
    i.ended = err;
    i.controller?.abort(err);
    const w = i.creditWaiter;
    if (w !== undefined) {
      i.creditWaiter = undefined;
      w.reject(err);
    }
  }

  /** @internal The signal of an incoming call, made on first use, with a timer for its deadline. */
  _signalOf(i: Incoming): AbortSignal {
    if (i.controller) return i.controller.signal;
    const controller = new AbortController();
    i.controller = controller;
    if (i.ended) controller.abort(i.ended);
    else if (Number.isFinite(i.deadline)) {
      const clock = this.#clock;
      i.timer = clock.setTimeout(
        () =>
          this.#endIncoming(
            i,
            new MusterError(ErrorCode.DEADLINE_EXCEEDED, `deadline of ${i.timeoutMs} ms passed`),
          ),
        Math.max(0, i.deadline - clock.now()),
      );
      i.timer.unref();
    }
    return controller.signal;
  }

  /** @internal */
  _now(): number {
    return this.#clock.now();
  }

  /**
   * @internal `ctx.emit()`: an ITEM frame; false when the link is backed up, the call is over
   * or (a stream) the reader has no room left: wait with `whenWritable()` / use `write()`.
   */
  _emit(i: Incoming, item: unknown): boolean {
    if (this.#in?.get(i.id) !== i) return false;
    if (i.creditLimit !== 0 && i.sentCost >= i.creditLimit) {
      throw new MusterError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `stream ${i.method}: the reader has no room (credit) for another item: use await ctx.write(item), or await ctx.whenWritable() when emit() returns false`,
      );
    }
    const p = encodeValue(item);
    this.#sink.send(this.#itemFrame(i, p));
    i.position++;
    if (i.creditLimit === 0) return this.#sink.writable;
    i.sentCost += itemCost(p.bytes.length);
    return this.#sink.writable && i.sentCost < i.creditLimit;
  }

  /**
   * @internal `ctx.write()` of a stream: waits for credit, then for the link, then sends. The
   * fast path (room on both) costs no promise beyond the one returned.
   */
  async _write(i: Incoming, item: unknown): Promise<void> {
    if (i.creditLimit === 0)
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "write() is for streams; calls use emit()");
    await this.#room(i);
    const p = encodeValue(item);
    this.#sink.send(this.#itemFrame(i, p));
    i.sentCost += itemCost(p.bytes.length);
    i.position++;
  }

  /** Resolves once a stream's reader has room (credit) and the link is not backed up. */
  async #room(i: Incoming): Promise<void> {
    for (;;) {
      if (this.#in?.get(i.id) !== i) {
        throw i.ended ?? new MusterError(ErrorCode.CANCELLED, `stream ${i.method} is over`);
      }
      if (i.sentCost >= i.creditLimit) {
        await new Promise<void>((resolve, reject) => {
          i.creditWaiter = { resolve, reject };
        });
        continue;
      }
      if (!this.#sink.writable) {
        await untilWritable(this.#sink, this._signalOf(i));
        continue;
      }
      return;
    }
  }

  /** An ITEM frame of call `i`; throws RESOURCE_EXHAUSTED when the peer would refuse its size. */
  #itemFrame(i: Incoming, p: Payload): Buffer {
    const frame = encodeFrame({ type: FrameType.ITEM, seq: 1, ack: 0, id: i.id, payload: p });
    const tooLarge = this.#oversize(frame, "item", i.method, i.position + 1);
    if (tooLarge !== undefined) throw tooLarge;
    return frame;
  }

  /** @internal `ctx.whenWritable()`: for a stream, waits for credit too. */
  _whenWritable(i: Incoming): Promise<void> {
    if (i.creditLimit !== 0) return this.#room(i);
    return untilWritable(this.#sink, this._signalOf(i));
  }

  /** @internal Settles call `id` with `err` and tells the callee to stop. */
  _cancel(id: number, err: MusterError): void {
    const o = this.#out?.get(id);
    if (!o) return;
    this.#out!.delete(id);
    if (o.timer) this.#clock.clearTimeout(o.timer);
    try {
      this.#sink.send(encodeFrame({ type: FrameType.CANCEL, seq: 1, ack: 0, id }));
    } catch {
      // The session is closed or full: the callee will stop at its own deadline.
    }
    o.cb.onSettle(err, undefined);
  }

  #reply(i: Incoming, frame: Buffer): void {
    if (this.#in?.get(i.id) !== i) return; // cancelled, timed out or session ended meanwhile
    this.#in.delete(i.id);
    if (i.timer) this.#clock.clearTimeout(i.timer);
    if (i.deadline < this.#clock.now()) return; // the caller has given up already
    try {
      this.#sink.send(frame);
    } catch (err) {
      this.#logger.debug({ err: (err as Error).message, id: i.id }, "could not send a result");
    }
  }

  #replyError(i: Incoming, err: MusterError): void {
    const frame = encodeFrame({ type: FrameType.RESULT, seq: 1, ack: 0, id: i.id, error: err.toBody() });
    this.#reply(i, this.#fitResult(i, frame));
  }

  /** A RESULT frame, or when the peer would refuse its size, an error RESULT saying so. */
  #fitResult(i: Incoming, frame: Buffer): Buffer {
    const tooLarge = this.#oversize(frame, "the result of", i.method);
    if (tooLarge === undefined) return frame;
    return encodeFrame({ type: FrameType.RESULT, seq: 1, ack: 0, id: i.id, error: tooLarge.toBody() });
  }

  #onCall(
    id: number,
    method: string,
    timeoutMs: number,
    payload: Payload,
    origin: { id: number; origin: CallOrigin } | undefined,
  ): void {
    const i = this.#admit(id, method, this.#clock.now() + timeoutMs, timeoutMs, "calls");
    if (i === undefined) return;
    if (origin?.id === id) i.origin = origin.origin;
    const refused = this.#authorizer?.authorize(method, false);
    if (refused !== undefined) {
      this.#replyError(i, refused);
      return;
    }
    const handler = this.#handlers.get(method);
    if (!handler) {
      this.#replyError(
        i,
        new MusterError(
          ErrorCode.UNIMPLEMENTED,
          `no handler for method "${method}" on ${this.#describeSelf}`,
        ),
      );
      return;
    }
    this.#run(i, handler, payload, false);
  }

  #onOpen(
    id: number,
    name: string,
    timeoutMs: number,
    window: number,
    payload: Payload,
    origin: { id: number; origin: CallOrigin } | undefined,
  ): void {
    const deadline = timeoutMs === 0 ? Number.POSITIVE_INFINITY : this.#clock.now() + timeoutMs;
    const i = this.#admit(id, name, deadline, timeoutMs, "calls and streams");
    if (i === undefined) return;
    if (origin?.id === id) i.origin = origin.origin;
    i.creditLimit = window;
    const refused = this.#authorizer?.authorize(name, true);
    if (refused !== undefined) {
      this.#replyError(i, refused);
      return;
    }
    const handler = this.#streamHandlers?.get(name);
    if (!handler) {
      const isMethod = this.#handlers.has(name);
      this.#replyError(
        i,
        new MusterError(
          ErrorCode.UNIMPLEMENTED,
          isMethod
            ? `"${name}" on ${this.#describeSelf} is a method, not a stream: call it`
            : `no stream "${name}" on ${this.#describeSelf}`,
        ),
      );
      return;
    }
    this.#run(i, handler, payload, true);
  }

  /**
   * Registers a call or stream from the peer; undefined for a duplicate id (ignored). Over the
   * limit of calls in flight it is answered at once with RESOURCE_EXHAUSTED (and returned
   * settled, so the caller's next steps are no-ops).
   */
  #admit(id: number, name: string, deadline: number, timeoutMs: number, what: string): Incoming | undefined {
    this.#in ??= new Map();
    const calls = this.#in;
    if (calls.has(id)) {
      this.#logger.warn({ id, method: truncateForLog(name) }, "duplicate call id from peer: ignored");
      return undefined;
    }
    const i = new Incoming(this, id, name, deadline, timeoutMs, this.#peer);
    calls.set(id, i);
    if (calls.size > this.#maxIncomingCalls) {
      this.#replyError(
        i,
        new MusterError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `more than ${this.#maxIncomingCalls} ${what} in flight`,
        ),
      );
      return undefined;
    }
    return i;
  }

  /**
   * Decodes the request and runs the handler; its value (or promise) is the result. A stream
   * handler may instead return an (async) iterable, whose items are sent under flow control.
   */
  #run(i: Incoming, handler: Handler | StreamHandler, payload: Payload, stream: boolean): void {
    let request: unknown;
    try {
      request = decodeValue(payload, this.#decodeLimits);
    } catch (err) {
      this.#replyError(i, MusterError.from(err, ErrorCode.INVALID_ARGUMENT));
      return;
    }
    let result: unknown;
    try {
      result = handler(request, i);
    } catch (err) {
      this.#replyError(i, MusterError.from(err));
      return;
    }
    const it = stream ? iteratorOf(result) : undefined;
    if (it !== undefined) void this.#pump(i, it);
    else if (result instanceof Promise) {
      result.then(
        (value) => this.#replyValue(i, value),
        (err: unknown) => this.#replyError(i, MusterError.from(err)),
      );
    } else this.#replyValue(i, result);
  }

  /** Sends a stream handler's items as the reader makes room; its return value ends the stream. */
  async #pump(i: Incoming, it: AsyncIterator<unknown> | Iterator<unknown>): Promise<void> {
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) {
          this.#replyValue(i, r.value);
          return;
        }
        await this._write(i, r.value);
      }
    } catch (err) {
      if (this.#in?.get(i.id) === i) this.#replyError(i, MusterError.from(err));
      // Cancelled, timed out or the session ended: let the generator run its finally blocks.
      try {
        await it.return?.();
      } catch (e) {
        this.#logger.debug(
          { err: (e as Error).message, stream: i.method },
          "stream handler failed on return",
        );
      }
    }
  }

  #replyValue(i: Incoming, value: unknown): void {
    if (this.#in?.get(i.id) !== i) return;
    let payload: Payload;
    try {
      payload = encodeValue(value);
    } catch (err) {
      this.#replyError(
        i,
        new MusterError(ErrorCode.INTERNAL, `result cannot be encoded: ${(err as Error).message}`),
      );
      return;
    }
    this.#reply(
      i,
      this.#fitResult(i, encodeFrame({ type: FrameType.RESULT, seq: 1, ack: 0, id: i.id, payload })),
    );
  }
}

/** `sink.whenWritable()`, cut short (rejected with the reason) when the call's signal fires. */
function untilWritable(sink: FrameSink, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  if (sink.writable) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    sink.whenWritable().then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
