import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { MusterStream, StreamOptions } from "../rpc/stream.js";
import { type DecodeLimits, decodeValue, encodeValue } from "../wire/codec.js";
import { itemCost, type Payload, type PayloadKind } from "../wire/frame.js";
import { originFrom } from "../wire/origin.js";
import type { ClusterBus } from "./bus.js";
import { type Envelope, encodeEnvelope, toWireError } from "./envelope.js";
import type { ClusterSubjects } from "./node-subjects.js";

/**
 * The messages of a stream relayed between servers (`t` of the envelope). The origin (where
 * the stream was opened) sends the first three to `node(owner, "stream")`; the owner (the
 * server holding the agent) sends the last three to `node(origin, "items")`.
 *
 *     stream.open   {id, origin, agent, name, window, ms?, k, c?} blob: the request; c: 1, a call
 *     stream.credit {origin, c: [[id, total credit]…], all?}    all: every stream of that origin
 *     stream.cancel {origin, ids: [id…]}
 *     stream.items  {id, s: seq of the first item, k: [kind…]} blobs: the items
 *     stream.end    {id, n: items sent, e? | k}                 blob: the result (no `e`)
 *     stream.marks  {m: [[id, items sent]…], gone: [id…]}       the answer to a credit `all`
 *
 * Credit totals are cumulative and items carry muster's own sequence numbers, so that a lost
 * message (core NATS is at-most-once) is repaired (credit) or detected (items), never silent.
 */
export const STREAM_MESSAGE = {
  OPEN: "stream.open",
  CREDIT: "stream.credit",
  CANCEL: "stream.cancel",
  ITEMS: "stream.items",
  END: "stream.end",
  MARKS: "stream.marks",
} as const;

/**
 * How the owner opens a stream on an agent it holds (undefined: not connected here); with
 * `asCall`, it starts method `name` as a call whose partial results are the stream's items.
 */
export type OpenLocal = (
  agent: string,
  name: string,
  request: unknown,
  options: StreamOptions,
  asCall: boolean,
) => MusterStream<unknown> | undefined;

/** Bytes of an items message besides its items' lists and bytes (a safe estimate). */
const ITEMS_HEAD_BYTES = 128;
/** Bytes of head each item adds: its kind and length in the lists. */
const ITEM_HEAD_BYTES = 16;
/** Bytes of an end message besides its result and error message. */
const END_HEAD_BYTES = 512;

/** One stream served for another server. */
class Pump {
  done = false;
  /** Cumulative credit the origin granted (bytes of item cost). */
  credit = 0;
  /** Cumulative cost of the items taken from the agent (sent or queued to be). */
  sentCost = 0;
  /** Items published so far: the sequence number of the last one. */
  published = 0;
  /** Items taken and not yet published (sent at the next turn of the event loop). */
  queued: Payload[] = [];
  /** Resolves the run loop's wait for credit. */
  wake: (() => void) | undefined;
  constructor(
    readonly origin: string,
    readonly id: number,
    readonly agent: string,
    readonly name: string,
    readonly window: number,
    readonly local: MusterStream<unknown>,
  ) {}
}

/** The streams one origin has here, and when it was last heard of. */
interface OriginStreams {
  readonly pumps: Map<number, Pump>;
  heardAt: number;
}

/**
 * The owner's side of streams opened on other servers: opens each on the local agent (with the
 * window the origin asked for) and pumps its items to the origin within the credit the origin
 * granted — never more than a window beyond it, one item overshooting at most, the rule every
 * muster writer follows — batched per turn of the event loop and split to fit the backplane's
 * largest message. An item too large to carry fails the stream (RESOURCE_EXHAUSTED).
 */
export class StreamPumps {
  readonly #origins = new Map<string, OriginStreams>();
  readonly #toFlush = new Set<Pump>();
  #flushQueued = false;
  #running = 0;
  /** The most bytes of item cost any stream had sent beyond the credit granted (for tests). */
  peakOutstandingBytes = 0;

  constructor(
    readonly bus: ClusterBus,
    readonly subjects: ClusterSubjects,
    readonly openLocal: OpenLocal,
    readonly serverName: string,
    readonly decodeLimits: DecodeLimits,
    readonly now: () => number,
    readonly logger: Logger,
  ) {}

  /** Streams served for other servers now. */
  get running(): number {
    return this.#running;
  }

  onOpen(env: Envelope): void {
    const { id, origin, agent, name, window, ms, k, c } = env.head;
    if (
      !isId(id) ||
      typeof origin !== "string" ||
      typeof agent !== "string" ||
      typeof name !== "string" ||
      typeof window !== "number" ||
      !Number.isInteger(window) ||
      window < 1 ||
      window > 0xffffffff ||
      (ms !== undefined && (typeof ms !== "number" || !(ms > 0))) ||
      typeof k !== "number" ||
      env.blobs.length < 1
    ) {
      this.logger.warn({ id: String(id), origin: String(origin) }, "malformed stream opening: ignored");
      return;
    }
    if (this.#origins.get(origin)?.pumps.has(id)) return;
    let request: unknown;
    try {
      request = decodeValue({ kind: k as PayloadKind, bytes: env.blobs[0]! }, this.decodeLimits);
    } catch (err) {
      this.#sendEnd(origin, id, 0, MusterError.from(err, ErrorCode.INVALID_ARGUMENT));
      return;
    }
    const options: StreamOptions = { windowBytes: window };
    const by = originFrom(env.head.by);
    if (by !== undefined) options.origin = by;
    if (typeof ms === "number") options.timeoutMs = Math.min(Math.ceil(ms), 0xffffffff);
    const local = this.openLocal(agent, name, request, options, c === 1);
    if (local === undefined) {
      this.#sendEnd(
        origin,
        id,
        0,
        new MusterError(
          ErrorCode.UNAVAILABLE,
          `agent ${agent} is not connected to server ${this.serverName}`,
        ),
      );
      return;
    }
    let o = this.#origins.get(origin);
    if (o === undefined) {
      o = { pumps: new Map(), heardAt: this.now() };
      this.#origins.set(origin, o);
    }
    const p = new Pump(origin, id, agent, name, window, local);
    o.pumps.set(id, p);
    this.#running++;
    void this.#run(p);
  }

  /** More credit; with `all`, the origin's full list: streams it no longer has are stopped. */
  onCredit(env: Envelope): void {
    const { origin, c, all } = env.head;
    if (typeof origin !== "string" || !Array.isArray(c)) return;
    const o = this.#origins.get(origin);
    if (o !== undefined) o.heardAt = this.now();
    const listed = new Set<number>();
    const marks: Array<[number, number]> = [];
    const gone: number[] = [];
    for (const entry of c as unknown[]) {
      if (!Array.isArray(entry)) continue;
      const [id, total] = entry as unknown[];
      if (!isId(id) || typeof total !== "number" || !(total >= 0)) continue;
      listed.add(id);
      const p = o?.pumps.get(id);
      if (p === undefined) {
        if (all === true) gone.push(id);
        continue;
      }
      if (total > p.credit) {
        p.credit = total;
        const wake = p.wake;
        p.wake = undefined;
        wake?.();
      }
      if (all === true) marks.push([id, p.published]);
    }
    if (all !== true) return;
    for (const p of [...(o?.pumps.values() ?? [])])
      if (!listed.has(p.id))
        this.#stop(p, new MusterError(ErrorCode.CANCELLED, "the reading server no longer has the stream"));
    if (marks.length > 0 || gone.length > 0)
      this.#publish(origin, encodeEnvelope({ t: STREAM_MESSAGE.MARKS, m: marks, gone }), "marks");
  }

  onCancel(env: Envelope): void {
    const { origin, ids } = env.head;
    if (typeof origin !== "string" || !Array.isArray(ids)) return;
    const o = this.#origins.get(origin);
    if (o !== undefined) o.heardAt = this.now();
    for (const id of ids) {
      const p = o?.pumps.get(id as number);
      if (p !== undefined)
        this.#stop(p, new MusterError(ErrorCode.CANCELLED, "cancelled by the reading server"));
    }
  }

  /** Stops the streams of origins not heard of since `before` (their cancels may be lost). */
  expire(before: number): void {
    for (const [origin, o] of this.#origins) {
      if (o.heardAt >= before) continue;
      this.logger.warn({ origin, streams: o.pumps.size }, "streams of a silent server stopped");
      this.originDown(origin);
    }
  }

  /** The origin is gone: nobody reads its streams. */
  originDown(origin: string): void {
    for (const p of [...(this.#origins.get(origin)?.pumps.values() ?? [])])
      this.#stop(p, new MusterError(ErrorCode.CANCELLED, "the reading server is gone"));
  }

  /** Stops every stream (the backplane is lost, or this server leaves the cluster). */
  stopAll(why: string): void {
    for (const origin of [...this.#origins.keys()]) {
      for (const p of [...(this.#origins.get(origin)?.pumps.values() ?? [])])
        this.#stop(p, new MusterError(ErrorCode.UNAVAILABLE, why));
    }
  }

  async #run(p: Pump): Promise<void> {
    const budget = this.bus.maxPayload - ITEMS_HEAD_BYTES - ITEM_HEAD_BYTES;
    try {
      for (;;) {
        // The rule of every muster writer: send while what is unacknowledged is under the window.
        while (p.sentCost >= p.window + p.credit) {
          await new Promise<void>((resolve) => {
            p.wake = resolve;
          });
          if (p.done) return;
        }
        const r = await p.local.next();
        if (p.done) return;
        if (r.done) {
          this.#finish(p, undefined, encodeValue(p.local.result));
          return;
        }
        const payload = encodeValue(r.value);
        if (payload.bytes.byteLength > budget) {
          this.#finish(
            p,
            new MusterError(
              ErrorCode.RESOURCE_EXHAUSTED,
              `item ${p.published + p.queued.length + 1} of stream ${p.name} is ${payload.bytes.byteLength} bytes, more than the cluster backplane carries (${this.bus.maxPayload}): open the stream on server ${this.serverName}, which holds agent ${p.agent}`,
            ),
            undefined,
          );
          return;
        }
        p.sentCost += itemCost(payload.bytes.byteLength);
        this.peakOutstandingBytes = Math.max(this.peakOutstandingBytes, p.sentCost - p.credit);
        p.queued.push(payload);
        this.#toFlush.add(p);
        if (!this.#flushQueued) {
          this.#flushQueued = true;
          setImmediate(() => this.#flush());
        }
      }
    } catch (err) {
      this.#finish(p, MusterError.from(err), undefined);
    }
  }

  #flush(): void {
    this.#flushQueued = false;
    const pumps = [...this.#toFlush];
    this.#toFlush.clear();
    for (const p of pumps) if (!p.done) this.#sendQueued(p);
  }

  /** Publishes the items `p` has queued, in as many messages as the backplane needs. */
  #sendQueued(p: Pump): boolean {
    const budget = this.bus.maxPayload - ITEMS_HEAD_BYTES;
    let start = 0;
    while (start < p.queued.length) {
      let end = start;
      let size = 0;
      while (end < p.queued.length) {
        const cost = p.queued[end]!.bytes.byteLength + ITEM_HEAD_BYTES;
        if (end > start && size + cost > budget) break;
        size += cost;
        end++;
      }
      const chunk = p.queued.slice(start, end);
      const body = encodeEnvelope(
        { t: STREAM_MESSAGE.ITEMS, id: p.id, s: p.published + 1, k: chunk.map((i) => i.kind) },
        chunk.map((i) => i.bytes),
      );
      if (!this.#publish(p.origin, body, "items")) {
        this.#stop(p, new MusterError(ErrorCode.UNAVAILABLE, "the reading server cannot be reached"));
        return false;
      }
      p.published += chunk.length;
      start = end;
    }
    p.queued = [];
    return true;
  }

  /** The stream ended here (result or error): what is queued goes, then the end. */
  #finish(p: Pump, err: MusterError | undefined, result: Payload | undefined): void {
    if (p.done || !this.#sendQueued(p)) return;
    this.#forget(p);
    // A failure here (an item too large, a bad result) must stop the agent's handler too.
    if (err !== undefined) p.local.cancel(err);
    this.#sendEnd(p.origin, p.id, p.published, err, result);
  }

  /** Ends `p` without telling the origin (it cancelled, or it cannot be told). */
  #stop(p: Pump, reason: MusterError): void {
    if (p.done) return;
    this.#forget(p);
    p.local.cancel(reason);
  }

  #forget(p: Pump): void {
    p.done = true;
    p.queued = [];
    this.#toFlush.delete(p);
    const o = this.#origins.get(p.origin);
    if (o?.pumps.delete(p.id)) this.#running--;
    if (o?.pumps.size === 0) this.#origins.delete(p.origin);
    const wake = p.wake;
    p.wake = undefined;
    wake?.();
  }

  #sendEnd(origin: string, id: number, n: number, err?: MusterError, result?: Payload): void {
    let e = err;
    if (
      e === undefined &&
      result !== undefined &&
      result.bytes.byteLength > this.bus.maxPayload - END_HEAD_BYTES
    )
      e = new MusterError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `the result of the stream is ${result.bytes.byteLength} bytes, more than the cluster backplane carries (${this.bus.maxPayload}): open it on server ${this.serverName}`,
      );
    let body: Uint8Array;
    if (e !== undefined) {
      const wire = toWireError(e);
      const room = Math.floor((this.bus.maxPayload - END_HEAD_BYTES) / 3);
      if (wire.message.length > room) wire.message = `${wire.message.slice(0, room)}…`;
      body = encodeEnvelope({ t: STREAM_MESSAGE.END, id, n, e: wire });
    } else {
      const r = result ?? encodeValue(undefined);
      body = encodeEnvelope({ t: STREAM_MESSAGE.END, id, n, k: r.kind }, [r.bytes]);
    }
    this.#publish(origin, body, "end");
  }

  /** Publishes to the origin; false (logged) when the backplane refused it. */
  #publish(origin: string, body: Uint8Array, what: string): boolean {
    try {
      this.bus.publish(this.subjects.node(origin, "items"), body);
      return true;
    } catch (err) {
      // The origin settles the stream itself: a gap, its own backplane loss, or our death.
      this.logger.warn({ origin, err: (err as Error).message }, `stream ${what} not sent`);
      return false;
    }
  }
}

/** Stream ids are positive integers, unique per origin. */
export function isId(id: unknown): id is number {
  return typeof id === "number" && Number.isSafeInteger(id) && id > 0;
}
