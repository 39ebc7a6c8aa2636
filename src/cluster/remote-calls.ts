import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { CallCallbacks, CallHandle } from "../rpc/endpoint.js";
import type { Payload, PayloadKind } from "../wire/frame.js";
import type { CallOrigin } from "../wire/origin.js";
import type { ClusterBus } from "./bus.js";
import { type Envelope, encodeEnvelope, fromWireError } from "./envelope.js";
import type { ClusterSubjects } from "./node-subjects.js";

/** The server that holds an agent's session. */
export interface Owner {
  /** Its process id in the registry (a restarted server has a new one). */
  readonly serverId: string;
  readonly server: string;
}

/**
 * Sends on a member whose server answered that the agent is not there (it moved to another
 * server, say from a draining one): the call, started at the agent's new server (local or
 * remote) once it is known, settles `cb` (with `err` when the agent is nowhere else in time).
 * `hops` counts the servers tried before.
 */
export type Reroute = (
  name: string,
  from: Owner,
  method: string,
  payload: Payload,
  remainingMs: number,
  cb: CallCallbacks,
  hops: number,
  err: MusterError,
  origin?: CallOrigin,
) => CallHandle;

/** A member may be sent on at most this many times (no endless chase of a moving agent). */
export const MAX_REROUTES = 3;

/** Calls of one fan-out (or one call) to the agents of one other server. */
class Part {
  readonly members = new Map<string, CallCallbacks>();
  /** Members sent on to another server, by name: cancelling one cancels its new call. */
  readonly rerouted = new Map<string, CallHandle>();
  sent = false;
  /** When it was sent (performance.now()). */
  sentAt = 0;
  constructor(
    readonly id: string,
    readonly owner: Owner,
    readonly method: string,
    readonly payload: Payload,
    readonly timeoutMs: number,
    /** How many servers its members were sent to before this one. */
    readonly hops: number,
    /** Who the calls are made for (ORIGIN towards the agents). */
    readonly origin: CallOrigin | undefined,
  ) {}
}

/** The handle of one agent's call inside a part; cancelling settles it here at once. */
class MemberHandle implements CallHandle {
  readonly id = 0;
  constructor(
    readonly calls: RemoteCalls,
    readonly part: Part,
    readonly name: string,
  ) {}
  cancel(reason?: MusterError): void {
    this.calls.cancelMember(this.part, this.name, reason);
  }
}

/**
 * The origin's side of calls to agents held by other servers. A fan-out's members on one
 * server are sent as ONE message naming them all (`part`); that server answers with batches of
 * outcomes. Each member settles exactly once: by its outcome, by a cancel or deadline here, or
 * at once with UNAVAILABLE when its server is declared dead or the backplane is lost.
 */
export class RemoteCalls {
  readonly #parts = new Map<string, Part>();
  /** Parts started since the last flush, by owner. */
  readonly #building = new Map<string, Part>();
  /** Cancels to send, by part id. */
  readonly #cancels = new Map<string, { part: Part; names: string[] }>();
  #cancelQueued = false;
  #next = 0;
  /** Set by the cluster: where members go whose server no longer has their agent. */
  reroute: Reroute | undefined;

  constructor(
    readonly bus: ClusterBus,
    readonly subjects: ClusterSubjects,
    readonly logger: Logger,
  ) {}

  /** Parts waiting for outcomes (for tests and metrics). */
  get pending(): number {
    return this.#parts.size;
  }

  start(
    owner: Owner,
    name: string,
    method: string,
    payload: Payload,
    timeoutMs: number,
    cb: CallCallbacks,
    hops = 0,
    origin?: CallOrigin,
  ): CallHandle {
    let part = this.#building.get(owner.serverId);
    if (
      part === undefined ||
      part.method !== method ||
      part.payload !== payload ||
      part.timeoutMs !== timeoutMs ||
      part.hops !== hops ||
      part.origin !== origin
    ) {
      if (part !== undefined) this.#send(part);
      part = new Part(
        `${this.subjects.selfId}.${++this.#next}`,
        owner,
        method,
        payload,
        timeoutMs,
        hops,
        origin,
      );
      this.#building.set(owner.serverId, part);
      this.#parts.set(part.id, part);
    }
    part.members.set(name, cb);
    return new MemberHandle(this, part, name);
  }

  /** Sends every part started since the last flush. */
  flush(): void {
    if (this.#building.size === 0) return;
    const parts = [...this.#building.values()];
    this.#building.clear();
    for (const part of parts) this.#send(part);
  }

  #send(part: Part): void {
    if (part.sent) return;
    part.sent = true;
    part.sentAt = performance.now();
    if (this.#building.get(part.owner.serverId) === part) this.#building.delete(part.owner.serverId);
    if (part.members.size === 0) {
      this.#parts.delete(part.id);
      return;
    }
    const names = [...part.members.keys()];
    const body = encodeEnvelope(
      {
        t: "part",
        id: part.id,
        origin: this.subjects.selfId,
        method: part.method,
        timeoutMs: part.timeoutMs,
        k: part.payload.kind,
        names,
        ...(part.origin === undefined ? {} : { by: part.origin }),
      },
      [part.payload.bytes],
    );
    if (body.byteLength > this.bus.maxPayload) {
      this.#fail(
        part,
        new MusterError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `the call to ${names.length} agent(s) on server ${part.owner.server} is ${body.byteLength} bytes, more than the cluster backplane carries (${this.bus.maxPayload}): send a smaller request`,
        ),
      );
      return;
    }
    try {
      this.bus.publish(this.subjects.node(part.owner.serverId, "part"), body);
    } catch (err) {
      const e = MusterError.from(err, ErrorCode.UNAVAILABLE);
      this.#fail(
        part,
        new MusterError(ErrorCode.UNAVAILABLE, `cannot reach server ${part.owner.server}: ${e.rawMessage}`),
      );
    }
  }

  /** Outcomes from an owner: `{id, o: [{n, e?, k?}]}`, one blob per outcome with `k`. */
  onOutcomes(env: Envelope): void {
    const part = this.#parts.get(String(env.head.id));
    const list = env.head.o;
    if (part === undefined || !Array.isArray(list)) return;
    let blob = 0;
    for (const o of list as Array<{ n?: unknown; e?: unknown; k?: unknown; m?: unknown }>) {
      const bytes = o.k !== undefined ? env.blobs[blob++] : undefined;
      const name = typeof o.n === "string" ? o.n : undefined;
      const cb = name === undefined ? undefined : part.members.get(name);
      if (cb === undefined || name === undefined) continue;
      part.members.delete(name);
      if (o.e !== undefined && o.m === 1 && this.#sendOn(part, name, cb, fromWireError(o.e))) continue;
      if (o.e !== undefined) cb.onSettle(fromWireError(o.e), undefined);
      else if (typeof o.k === "number" && bytes !== undefined)
        cb.onSettle(undefined, { kind: o.k as PayloadKind, bytes: new Uint8Array(bytes) });
      else
        cb.onSettle(
          new MusterError(ErrorCode.INTERNAL, `server ${part.owner.server} sent an outcome without a result`),
          undefined,
        );
    }
    if (part.members.size === 0) this.#parts.delete(part.id);
  }

  /**
   * The agent is not at the member's server: sends the member on to where the agent is now, if
   * there is time and hops left. False when it is not sent on (it settles with `err`).
   */
  #sendOn(part: Part, name: string, cb: CallCallbacks, err: MusterError): boolean {
    const remainingMs = part.timeoutMs - (performance.now() - part.sentAt);
    if (this.reroute === undefined || part.hops >= MAX_REROUTES || remainingMs < 1) return false;
    part.rerouted.set(
      name,
      this.reroute(
        name,
        part.owner,
        part.method,
        part.payload,
        remainingMs,
        cb,
        part.hops + 1,
        err,
        part.origin,
      ),
    );
    return true;
  }

  /** A member cancelled here (caller, deadline): settled now, and the owner told. */
  cancelMember(part: Part, name: string, reason?: MusterError): void {
    const moved = part.rerouted.get(name);
    if (moved !== undefined) {
      // Sent on: its new call is cancelled (started or not), which settles it.
      part.rerouted.delete(name);
      moved.cancel(reason ?? new MusterError(ErrorCode.CANCELLED, "call cancelled by the caller"));
      return;
    }
    const cb = part.members.get(name);
    if (cb === undefined) return;
    part.members.delete(name);
    if (part.members.size === 0 && part.sent) this.#parts.delete(part.id);
    cb.onSettle(reason ?? new MusterError(ErrorCode.CANCELLED, "call cancelled by the caller"), undefined);
    if (!part.sent) return;
    let c = this.#cancels.get(part.id);
    if (c === undefined) {
      c = { part, names: [] };
      this.#cancels.set(part.id, c);
    }
    c.names.push(name);
    if (!this.#cancelQueued) {
      this.#cancelQueued = true;
      queueMicrotask(() => this.#sendCancels());
    }
  }

  #sendCancels(): void {
    this.#cancelQueued = false;
    const all = [...this.#cancels.values()];
    this.#cancels.clear();
    for (const { part, names } of all) {
      try {
        this.bus.publish(
          this.subjects.node(part.owner.serverId, "cancel"),
          encodeEnvelope({ t: "cancel", id: part.id, origin: this.subjects.selfId, names }),
        );
      } catch (err) {
        // The owner's own deadline ends those calls; nothing is left waiting here.
        this.logger.debug({ server: part.owner.server, err: (err as Error).message }, "cancel not sent");
      }
    }
  }

  /** Servers with parts sent more than `ageMs` ago and still waiting for outcomes. */
  ownersWaitingSince(now: number, ageMs: number): Owner[] {
    const out = new Map<string, Owner>();
    for (const part of this.#parts.values())
      if (part.sent && now - part.sentAt >= ageMs) out.set(part.owner.serverId, part.owner);
    return [...out.values()];
  }

  /** A server was declared dead: its members settle now, not at their deadline. */
  serverDown(serverId: string, why: string): void {
    for (const part of [...this.#parts.values()]) {
      if (part.owner.serverId !== serverId) continue;
      this.#fail(part, new MusterError(ErrorCode.UNAVAILABLE, `server ${part.owner.server} ${why}`));
    }
  }

  /** The backplane is gone: nothing sent can be answered. */
  busDown(why: string): void {
    for (const part of [...this.#parts.values()]) {
      this.#fail(
        part,
        new MusterError(
          ErrorCode.UNAVAILABLE,
          `lost the cluster backplane before server ${part.owner.server} answered: ${why}`,
        ),
      );
    }
  }

  #fail(part: Part, err: MusterError): void {
    this.#parts.delete(part.id);
    if (this.#building.get(part.owner.serverId) === part) this.#building.delete(part.owner.serverId);
    const members = [...part.members.values()];
    part.members.clear();
    for (const cb of members) cb.onSettle(err, undefined);
  }
}
