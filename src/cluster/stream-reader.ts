import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock, TimerHandle } from "../internal/clock.js";
import type { Logger } from "../internal/logger.js";
import {
  checkStreamOpen,
  DEFAULT_STREAM_WINDOW,
  MusterStream,
  type StreamHost,
  type StreamOptions,
} from "../rpc/stream.js";
import { type DecodeLimits, decodeValue, encodeValue } from "../wire/codec.js";
import type { Payload, PayloadKind } from "../wire/frame.js";
import type { ClusterBus } from "./bus.js";
import { type Envelope, encodeEnvelope, fromWireError } from "./envelope.js";
import type { ClusterSubjects } from "./node-subjects.js";
import type { Owner } from "./remote-calls.js";
import { isId, STREAM_MESSAGE } from "./stream-pump.js";

/** A stream read here from an agent another server holds. */
class Remote {
  /** Items received: the sequence number of the last one. */
  received = 0;
  /** Cumulative credit granted to the owner. */
  credit = 0;
  timer: TimerHandle | undefined;
  constructor(
    readonly id: number,
    readonly owner: Owner,
    readonly agent: string,
    readonly stream: MusterStream<unknown>,
  ) {}
  get what(): string {
    return `stream ${this.stream.name} of agent ${this.agent} on server ${this.owner.server}`;
  }
}

/**
 * The origin's side of streams across servers: each stream read here is a MusterStream whose
 * credit and cancels go to the owner, and whose items are checked for contiguity (muster's own
 * sequence numbers) before the stream sees them. Credit goes as cumulative totals, batched per
 * owner and turn; `sync()` sends each owner the full list, which repairs lost credit and cancels
 * and asks how far each stream got (`stream.marks`).
 */
export class StreamReaders implements StreamHost {
  readonly #remotes = new Map<number, Remote>();
  /** Credit totals to send, by owner id then stream id. */
  readonly #credits = new Map<string, { owner: Owner; c: Map<number, number> }>();
  #creditQueued = false;
  #next = 0;
  /** Servers to sync next: those we read from, and those we just stopped reading from. */
  readonly #syncTo = new Map<string, Owner>();

  constructor(
    readonly bus: ClusterBus,
    readonly subjects: ClusterSubjects,
    readonly decodeLimits: DecodeLimits,
    readonly clock: Clock,
    readonly logger: Logger,
  ) {}

  /** Streams read here from other servers now. */
  get size(): number {
    return this.#remotes.size;
  }

  /** The servers we read streams from now. */
  owners(): Owner[] {
    const out = new Map<string, Owner>();
    for (const r of this.#remotes.values()) out.set(r.owner.serverId, r.owner);
    return [...out.values()];
  }

  /** Nothing read, and nothing left to send. */
  get idle(): boolean {
    return this.#remotes.size === 0 && this.#credits.size === 0 && this.#syncTo.size === 0;
  }

  /**
   * Opens stream `name` on `agent`, held by server `owner`. Errors come through the iteration.
   * With `asCall`, the owner calls method `name` and relays its partial results as the items.
   */
  open<T>(
    owner: Owner,
    agent: string,
    name: string,
    request: unknown,
    options: StreamOptions,
    asCall = false,
  ): MusterStream<T> {
    const { bus, subjects } = this;
    const window = Math.floor(options.windowBytes ?? DEFAULT_STREAM_WINDOW);
    const id = ++this.#next;
    const s = new MusterStream<T>(name, this, window);
    s.id = id;
    const timeoutMs = options.timeoutMs;
    let body: Uint8Array;
    try {
      checkStreamOpen(name, window, options);
      const payload = encodeValue(request);
      body = encodeEnvelope(
        {
          t: STREAM_MESSAGE.OPEN,
          id,
          origin: subjects.selfId,
          agent,
          name,
          window,
          ...(timeoutMs !== undefined && { ms: timeoutMs }),
          k: payload.kind,
          ...(asCall && { c: 1 }),
          ...(options.origin !== undefined && { by: options.origin }),
        },
        [payload.bytes],
      );
      if (body.byteLength > bus.maxPayload)
        throw new MusterError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `the request of stream ${name} is ${body.byteLength} bytes with its envelope, more than the cluster backplane carries (${bus.maxPayload}): send a smaller request`,
        );
      bus.publish(subjects.node(owner.serverId, "stream"), body);
    } catch (err) {
      const e = MusterError.from(err, ErrorCode.INVALID_ARGUMENT);
      s._settle(
        e.code === ErrorCode.UNAVAILABLE
          ? new MusterError(ErrorCode.UNAVAILABLE, `cannot reach server ${owner.server}: ${e.rawMessage}`)
          : e,
        undefined,
      );
      return s;
    }
    const r = new Remote(id, owner, agent, s as MusterStream<unknown>);
    this.#remotes.set(id, r);
    this.#syncTo.set(owner.serverId, owner);
    if (timeoutMs !== undefined) {
      r.timer = this.clock.setTimeout(() => {
        this.#fail(
          r,
          new MusterError(ErrorCode.DEADLINE_EXCEEDED, `${r.what}: not done in ${timeoutMs} ms`),
          true,
        );
      }, timeoutMs);
    }
    s._watch(options.signal);
    return s;
  }

  /** Server `serverId` was declared dead or left: its streams fail now. */
  serverDown(serverId: string, why: string): void {
    for (const r of [...this.#remotes.values()])
      if (r.owner.serverId === serverId)
        this.#fail(r, new MusterError(ErrorCode.UNAVAILABLE, `${r.what}: the server ${why}`), false);
    this.#syncTo.delete(serverId);
  }

  /** The backplane is lost: nothing in flight can arrive. */
  busDown(why: string): void {
    for (const r of [...this.#remotes.values()])
      this.#fail(
        r,
        new MusterError(ErrorCode.UNAVAILABLE, `${r.what}: lost the cluster backplane (${why})`),
        false,
      );
    this.#syncTo.clear();
  }

  onItems(env: Envelope): void {
    const { id, s, k } = env.head;
    const r = isId(id) ? this.#remotes.get(id) : undefined;
    if (r === undefined) {
      this.logger.debug({ id: String(id) }, "stream items for a stream not open here: ignored");
      return;
    }
    if (
      !isId(s) ||
      !Array.isArray(k) ||
      k.length !== env.blobs.length ||
      k.some((x) => typeof x !== "number")
    ) {
      this.#fail(
        r,
        new MusterError(ErrorCode.PROTOCOL_ERROR, `${r.what}: malformed items message from that server`),
        true,
      );
      return;
    }
    if (s > r.received + 1) {
      this.#gap(r, s - 1, `item ${s} came next`);
      return;
    }
    if (s !== r.received + 1) {
      this.#fail(
        r,
        new MusterError(
          ErrorCode.UNAVAILABLE,
          `${r.what}: item ${s} came again after item ${r.received} (messages out of order on the cluster backplane); reopen it from item ${r.received + 1}`,
        ),
        true,
      );
      return;
    }
    for (let i = 0; i < env.blobs.length; i++) {
      if (r.stream.ended) return;
      r.received++;
      r.stream._item({ kind: k[i] as PayloadKind, bytes: env.blobs[i]! });
    }
  }

  onEnd(env: Envelope): void {
    const { id, n, e, k } = env.head;
    const r = isId(id) ? this.#remotes.get(id) : undefined;
    if (r === undefined) return;
    if (n !== r.received) {
      if (typeof n === "number" && n > r.received) this.#gap(r, n, `the stream ended after item ${n}`);
      else
        this.#fail(
          r,
          new MusterError(
            ErrorCode.PROTOCOL_ERROR,
            `${r.what}: ended after ${String(n)} items, ${r.received} received`,
          ),
          true,
        );
      return;
    }
    this.#forget(r);
    if (e !== undefined) r.stream._settle(fromWireError(e), undefined);
    else
      r.stream._settle(undefined, {
        kind: (k ?? 0) as PayloadKind,
        bytes: env.blobs[0] ?? new Uint8Array(0),
      });
  }

  /** How far each stream got on its owner: items it sent and we never received were lost. */
  onMarks(env: Envelope): void {
    const { m, gone } = env.head;
    for (const entry of Array.isArray(m) ? (m as unknown[]) : []) {
      if (!Array.isArray(entry)) continue;
      const [id, sent] = entry as unknown[];
      const r = isId(id) ? this.#remotes.get(id) : undefined;
      if (r !== undefined && typeof sent === "number" && sent > r.received)
        this.#gap(r, sent, `server ${r.owner.server} sent ${sent} items`);
    }
    for (const id of Array.isArray(gone) ? (gone as unknown[]) : []) {
      const r = isId(id) ? this.#remotes.get(id) : undefined;
      if (r === undefined) continue;
      this.#fail(
        r,
        new MusterError(
          ErrorCode.UNAVAILABLE,
          `${r.what}: that server no longer has the stream (it lost the cluster backplane meanwhile, or the stream's opening or end was lost on it); reopen it from item ${r.received + 1}`,
        ),
        false,
      );
    }
  }

  /** Items after `received` up to `lastLost` never arrived (`why` says how we know). */
  #gap(r: Remote, lastLost: number, why: string): void {
    const from = r.received + 1;
    const which = lastLost > from ? `items ${from} to ${lastLost}` : `item ${from}`;
    this.logger.warn(
      { stream: r.stream.name, agent: r.agent, server: r.owner.server, received: r.received, lastLost },
      "gap in a stream relayed between servers",
    );
    this.#fail(
      r,
      new MusterError(
        ErrorCode.UNAVAILABLE,
        `${r.what}: ${which} lost on the cluster backplane (${why}); reopen it from item ${from}`,
      ),
      true,
    );
  }

  /** Settles `r` with `err`; with `tell`, the owner is asked to stop. */
  #fail(r: Remote, err: MusterError, tell: boolean): void {
    if (!this.#forget(r)) return;
    r.stream._settle(err, undefined);
    if (tell) this.#sendCancel(r);
  }

  #forget(r: Remote): boolean {
    if (this.#remotes.get(r.id) !== r) return false;
    this.#remotes.delete(r.id);
    if (r.timer !== undefined) this.clock.clearTimeout(r.timer);
    r.timer = undefined;
    this.#credits.get(r.owner.serverId)?.c.delete(r.id);
    return true;
  }

  #sendCancel(r: Remote): void {
    this.#send(
      r.owner,
      encodeEnvelope({ t: STREAM_MESSAGE.CANCEL, origin: this.subjects.selfId, ids: [r.id] }),
    );
  }

  #send(owner: Owner, body: Uint8Array): void {
    try {
      this.bus.publish(this.subjects.node(owner.serverId, "stream"), body);
    } catch (err) {
      // The periodic sync repairs it, or the owner stops our streams when we go silent.
      this.logger.debug({ server: owner.server, err: (err as Error).message }, "stream message not sent");
    }
  }

  // --- StreamHost: what the streams read here ask for -----------------------------------------

  /** @internal More room for the owner: sent with the others of this turn, as a total. */
  _credit(id: number, bytes: number): void {
    const r = this.#remotes.get(id);
    if (r === undefined) return;
    r.credit += bytes;
    let pending = this.#credits.get(r.owner.serverId);
    if (pending === undefined) {
      pending = { owner: r.owner, c: new Map() };
      this.#credits.set(r.owner.serverId, pending);
    }
    pending.c.set(id, r.credit);
    if (this.#creditQueued) return;
    this.#creditQueued = true;
    queueMicrotask(() => this.#sendCredits());
  }

  /** @internal The reader cancelled (break, cancel(), its signal). */
  _cancelStream(id: number): void {
    const r = this.#remotes.get(id);
    if (r !== undefined && this.#forget(r)) this.#sendCancel(r);
  }

  /** @internal The owner sent beyond its credit: the stream closed itself, the owner stops. */
  _flowControlBroken(id: number, err: MusterError): void {
    const r = this.#remotes.get(id);
    if (r === undefined) return;
    this.logger.warn(
      { server: r.owner.server, err: err.rawMessage },
      "relayed stream closed: the server broke flow control",
    );
    this._cancelStream(id);
  }

  /** @internal */
  _decode(payload: Payload): unknown {
    return decodeValue(payload, this.decodeLimits);
  }

  #sendCredits(): void {
    this.#creditQueued = false;
    const origin = this.subjects.selfId;
    const all = [...this.#credits.values()];
    this.#credits.clear();
    for (const { owner, c } of all)
      if (c.size > 0) this.#send(owner, encodeEnvelope({ t: STREAM_MESSAGE.CREDIT, origin, c: [...c] }));
  }

  /**
   * Sends each owner the full list of our streams on it with their credit (once more with none
   * after the last one ended, so that a lost cancel is repaired).
   */
  sync(): void {
    const origin = this.subjects.selfId;
    const byOwner = new Map<string, { owner: Owner; c: Array<[number, number]> }>();
    for (const owner of this.#syncTo.values()) byOwner.set(owner.serverId, { owner, c: [] });
    this.#syncTo.clear();
    for (const r of this.#remotes.values()) {
      this.#syncTo.set(r.owner.serverId, r.owner);
      let e = byOwner.get(r.owner.serverId);
      if (e === undefined) {
        e = { owner: r.owner, c: [] };
        byOwner.set(r.owner.serverId, e);
      }
      e.c.push([r.id, r.credit]);
    }
    for (const { owner, c } of byOwner.values()) {
      const body = encodeEnvelope({ t: STREAM_MESSAGE.CREDIT, origin, c, all: true });
      if (body.byteLength <= this.bus.maxPayload) {
        this.#send(owner, body);
        continue;
      }
      // Too many streams to one server for one message: without the full list, only credit
      // is repaired (each entry takes at most 40 bytes of JSON).
      const per = Math.max(1, Math.floor((this.bus.maxPayload - 256) / 40));
      for (let i = 0; i < c.length; i += per)
        this.#send(owner, encodeEnvelope({ t: STREAM_MESSAGE.CREDIT, origin, c: c.slice(i, i + per) }));
    }
  }
}
