import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { EnrolmentRequest } from "../server/enrolment.js";
import type { BusMessage, BusSubscription, ClusterBus, KvEntry } from "./bus.js";
import { decodeEnvelope, encodeEnvelope, fromWireError, toWireError } from "./envelope.js";
import { decodeRecord, encodeRecord, SharedBucket } from "./shared-bucket.js";

/** How long a decision relayed to the cluster waits for the server holding the request. */
export const ENROLMENT_DECIDE_TIMEOUT_MS = 2000;
/** How often a server compares its waiting requests with what it last wrote to the mirror. */
export const ENROLMENT_MIRROR_MS = 500;

/** What the cluster's enrolments need from their server's enrolment book. */
export interface EnrolmentHost {
  /** The requests waiting here (none on a server without `approve`). */
  pending(): EnrolmentRequest[];
  /** Decides a request waiting here, logged with `by` (see `AuthGate.decide`). */
  decide(action: "accept" | "reject", name: string, by: string, fingerprint?: string): EnrolmentRequest;
  /** Rejects the requests for `name` waiting here other than `fingerprint`'s (the name is taken). */
  rejectRivals(name: string, fingerprint: string, by: string, why: string): EnrolmentRequest[];
}

/** A decision and the server that applied it. */
export interface EnrolmentDecision {
  request: EnrolmentRequest;
  server: string;
}

export interface ClusterEnrolmentsOptions {
  bus: ClusterBus;
  /** `muster_<cluster>_enrolments`: each server's waiting requests, under its id. */
  bucket: string;
  /** `muster.<cluster>.enrolment`: decisions, broadcast. */
  subject: string;
  serverName: string;
  serverId: string;
  logger: Logger;
  host: EnrolmentHost;
  /** Whether the server with this id is alive (the registry's view). */
  isLive(serverId: string): boolean;
}

const FINGERPRINT = /^[0-9a-f]{16}$/;

/**
 * Enrolment across a cluster. An agent waiting for approval is held by the server it dialed
 * (it retries there, and is issued its token there); an admin may decide on any server.
 *
 * Listing: each server mirrors its waiting requests into the bucket, one record per server
 * (`{"v":1,"server":"s1","serverId":"…","requests":[…],"more":0}`), rewritten when they change
 * (checked every 500 ms) and deleted when the server leaves or is declared gone. `pending()`
 * is this server's requests and those of the live servers, each with the server holding it;
 * one name asked for on several servers is a conflict, as on one server.
 *
 * Deciding: a server that does not hold the request relays the decision as a request on the
 * broadcast subject (`{"t":"enrol-decide",action,name,fingerprint?,by,origin}`). A decision is a
 * command that wants an answer now, not state: the server holding the request applies it and
 * answers (`enrol-decided` with the request and its name, or `enrol-refused` with the error);
 * the others stay silent; nobody answering within 2 s is NOT_FOUND. Nothing is left behind to
 * be applied later by a server the agent reaches minutes after, as a record in a bucket would
 * be. After an accept, the accepting server publishes `enrol-accepted` (name, fingerprint) on
 * the same subject, and every server rejects its own requests for that name (the name is taken).
 */
export class ClusterEnrolments {
  readonly #o: ClusterEnrolmentsOptions;
  readonly #bucket: SharedBucket;
  /** Other servers' requests, by server id. */
  readonly #others = new Map<string, { server: string; requests: EnrolmentRequest[] }>();
  #sub: BusSubscription | undefined;
  #offStatus: (() => void) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** What was last written to the mirror ("": nothing yet). */
  #written = "";
  #syncing = false;

  constructor(options: ClusterEnrolmentsOptions) {
    this.#o = options;
    this.#bucket = new SharedBucket({
      bus: options.bus,
      name: options.bucket,
      logger: options.logger,
      onEntry: (e) => this.#onEntry(e),
    });
  }

  async start(): Promise<void> {
    await this.#bucket.open();
    this.#sub = this.#o.bus.subscribe(this.#o.subject, (m) => this.#onMessage(m));
    // Back from a link loss, the record is written again: others may have dropped it meanwhile.
    this.#offStatus = this.#o.bus.onStatus((s) => {
      if (s === "connected" && this.#written !== "") this.#written = "stale";
    });
    this.#timer = setInterval(() => void this.sync(), ENROLMENT_MIRROR_MS);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#offStatus?.();
    this.#sub?.unsubscribe();
    if (this.#written !== "" && this.#o.bus.status === "connected")
      await this.#bucket.delete(this.#o.serverId);
    this.#bucket.stop();
  }

  /** A server declared gone: its record goes (any live server may delete it; all do). */
  serverDown(serverId: string): void {
    if (!this.#others.delete(serverId)) return;
    void this.#bucket.delete(serverId);
  }

  /** Every request waiting in the cluster, oldest first, each with the server holding it. */
  pending(): EnrolmentRequest[] {
    const out = this.#o.host.pending().map((r) => ({ ...r, server: this.#o.serverName }));
    for (const [id, m] of this.#others)
      if (this.#o.isLive(id)) for (const r of m.requests) out.push({ ...r, server: m.server });
    const asked = new Map<string, Set<string>>();
    for (const r of out) asked.set(r.name, (asked.get(r.name) ?? new Set()).add(r.fingerprint));
    for (const r of out) if ((asked.get(r.name)?.size ?? 0) > 1) r.conflict = true;
    return out.sort((a, b) => a.firstSeen - b.firstSeen);
  }

  /**
   * Decides the request from `name` (the one with `fingerprint`, required when several agents
   * ask for the name anywhere in the cluster) on the server that holds it: here, or relayed.
   * NOT_FOUND when no server holds it; the holder's errors as they are.
   */
  async decide(
    action: "accept" | "reject",
    name: string,
    by: string,
    fingerprint?: string,
  ): Promise<EnrolmentDecision> {
    const { host, serverName, bus } = this.#o;
    if (fingerprint !== undefined && !FINGERPRINT.test(fingerprint))
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `a fingerprint is 16 hexadecimal digits (as muster agents shows it), not ${JSON.stringify(fingerprint.slice(0, 40))}`,
      );
    if (fingerprint === undefined) {
      const asking = this.pending().filter((r) => r.name === name);
      if (new Set(asking.map((r) => r.fingerprint)).size > 1)
        throw new MusterError(
          ErrorCode.INVALID_ARGUMENT,
          `${asking.length} agents ask to enrol as ${name} (fingerprints ${asking
            .map((r) => `${r.fingerprint} from ${r.address} on server ${r.server}`)
            .join(
              ", ",
            )}): give the fingerprint of the one you mean (--fingerprint), after comparing it with the agent's log`,
        );
    }
    if (holds(host.pending(), name, fingerprint)) {
      const request = host.decide(action, name, by, fingerprint);
      if (action === "accept") this.#announce(request, by);
      void this.sync();
      return { request: { ...request, server: serverName }, server: serverName };
    }
    if (bus.status !== "connected")
      throw new MusterError(
        ErrorCode.UNAVAILABLE,
        `no enrolment request from ${name} waits on server ${serverName}, and the cluster backplane is unreachable: decide on the server the agent dialed`,
      );
    let reply: BusMessage;
    try {
      reply = await bus.request(
        this.#o.subject,
        encodeEnvelope({
          t: "enrol-decide",
          action,
          name,
          by,
          origin: this.#o.serverId,
          ...(fingerprint !== undefined ? { fingerprint } : {}),
        }),
        { timeoutMs: ENROLMENT_DECIDE_TIMEOUT_MS },
      );
    } catch (err) {
      const e = MusterError.from(err);
      if (
        e.code === ErrorCode.DEADLINE_EXCEEDED ||
        (e.code === ErrorCode.UNAVAILABLE && bus.status === "connected")
      )
        throw new MusterError(
          ErrorCode.NOT_FOUND,
          `no server of the cluster holds an enrolment request from ${name}${fingerprint !== undefined ? ` with fingerprint ${fingerprint}` : ""} (none answered within ${ENROLMENT_DECIDE_TIMEOUT_MS / 1000} s)`,
        );
      throw e;
    }
    const { head } = decodeEnvelope(reply.data);
    if (head.t === "enrol-refused") throw fromWireError(head.e);
    const request = toRequest(head.request);
    if (head.t !== "enrol-decided" || request === undefined || typeof head.server !== "string")
      throw new MusterError(ErrorCode.PROTOCOL_ERROR, `malformed answer to an enrolment decision: ${head.t}`);
    return { request: { ...request, server: head.server }, server: head.server };
  }

  /** Writes this server's waiting requests to the mirror when they changed. */
  async sync(): Promise<void> {
    if (this.#syncing || this.#o.bus.status !== "connected") return;
    const requests = this.#o.host.pending();
    const shown = JSON.stringify(
      requests.map((r) => [r.name, r.fingerprint, r.address, r.conflict, r.version]),
    );
    if (shown === this.#written || (this.#written === "" && requests.length === 0)) return;
    this.#syncing = true;
    try {
      // Within the backplane's largest message: the oldest requests, and how many more wait.
      const budget = this.#o.bus.maxPayload - 1024;
      let size = 0;
      const kept: EnrolmentRequest[] = [];
      for (const r of requests) {
        size += JSON.stringify(r).length * 2 + 2;
        if (size > budget) break;
        kept.push(r);
      }
      const record = {
        server: this.#o.serverName,
        serverId: this.#o.serverId,
        requests: kept,
        more: requests.length - kept.length,
      };
      await this.#bucket.put(this.#o.serverId, encodeRecord(record));
      this.#written = shown;
    } catch (err) {
      this.#o.logger.warn({ err: (err as Error).message }, "enrolment requests not shared with the cluster");
    } finally {
      this.#syncing = false;
    }
  }

  #announce(request: EnrolmentRequest, by: string): void {
    try {
      this.#o.bus.publish(
        this.#o.subject,
        encodeEnvelope({
          t: "enrol-accepted",
          name: request.name,
          fingerprint: request.fingerprint,
          by,
          server: this.#o.serverName,
          origin: this.#o.serverId,
        }),
      );
    } catch (err) {
      this.#o.logger.warn(
        { name: request.name, err: (err as Error).message },
        "other servers not told of the accepted enrolment: their requests for the name stay",
      );
    }
  }

  #onEntry(e: KvEntry): void {
    if (e.key === this.#o.serverId) return;
    if (e.operation !== "PUT") {
      this.#others.delete(e.key);
      return;
    }
    const r = decodeRecord(e.value);
    const requests = Array.isArray(r?.requests) ? r.requests.map(toRequest) : undefined;
    if (
      r === undefined ||
      typeof r.server !== "string" ||
      requests === undefined ||
      requests.includes(undefined)
    ) {
      this.#o.logger.warn({ key: e.key }, "malformed enrolment record in the cluster's bucket: ignored");
      return;
    }
    this.#others.set(e.key, { server: r.server, requests: requests as EnrolmentRequest[] });
  }

  #onMessage(m: BusMessage): void {
    let head: Record<string, unknown>;
    try {
      head = decodeEnvelope(m.data).head;
    } catch (err) {
      this.#o.logger.warn({ err: (err as Error).message }, "enrolment message refused");
      return;
    }
    if (head.origin === this.#o.serverId || typeof head.name !== "string" || typeof head.by !== "string")
      return;
    const fingerprint = typeof head.fingerprint === "string" ? head.fingerprint : undefined;
    if (head.t === "enrol-accepted" && fingerprint !== undefined) {
      const server = typeof head.server === "string" ? head.server : "another server";
      const why = `another agent (fingerprint ${fingerprint}) was accepted as ${head.name} on server ${server}`;
      const rejected = this.#o.host.rejectRivals(head.name, fingerprint, head.by, why);
      if (rejected.length > 0) {
        this.#o.logger.info(
          { name: head.name, by: head.by, server, rejected: rejected.map((r) => r.fingerprint) },
          "enrolment requests rejected: the name was accepted on another server",
        );
        void this.sync();
      }
      return;
    }
    if (head.t !== "enrol-decide" || (head.action !== "accept" && head.action !== "reject")) return;
    // Only the server holding the request answers.
    if (!holds(this.#o.host.pending(), head.name, fingerprint)) return;
    let body: Uint8Array;
    try {
      const request = this.#o.host.decide(head.action, head.name, head.by, fingerprint);
      if (head.action === "accept") this.#announce(request, head.by);
      body = encodeEnvelope({ t: "enrol-decided", request, server: this.#o.serverName });
      void this.sync();
    } catch (err) {
      body = encodeEnvelope({ t: "enrol-refused", e: toWireError(MusterError.from(err)) });
    }
    m.respond(body);
  }
}

/** Whether `requests` hold one from `name` (with `fingerprint`, when given). */
function holds(requests: EnrolmentRequest[], name: string, fingerprint: string | undefined): boolean {
  return requests.some(
    (r) => r.name === name && (fingerprint === undefined || r.fingerprint === fingerprint),
  );
}

/** A request as another server sent it, checked field by field; undefined when malformed. */
function toRequest(o: unknown): EnrolmentRequest | undefined {
  if (typeof o !== "object" || o === null) return undefined;
  const r = o as Record<string, unknown>;
  const labels = r.labels;
  if (
    typeof r.name !== "string" ||
    typeof r.fingerprint !== "string" ||
    typeof r.address !== "string" ||
    typeof r.version !== "string" ||
    typeof r.tokenId !== "string" ||
    typeof r.firstSeen !== "number" ||
    typeof r.lastSeen !== "number" ||
    typeof labels !== "object" ||
    labels === null ||
    Array.isArray(labels) ||
    !Object.values(labels).every((v) => typeof v === "string")
  )
    return undefined;
  return {
    name: r.name,
    labels: { ...(labels as Record<string, string>) },
    version: r.version,
    address: r.address,
    fingerprint: r.fingerprint,
    tokenId: r.tokenId,
    firstSeen: r.firstSeen,
    lastSeen: r.lastSeen,
    conflict: r.conflict === true,
  };
}
