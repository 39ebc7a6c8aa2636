import { createHash } from "node:crypto";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { addressKey } from "../internal/address-key.js";
import { DEFAULTS } from "../internal/defaults.js";
import type { AgentInfo } from "../presence/presence.js";

/** An agent waiting for an operator to accept it (Salt-style key acceptance). */
export interface EnrolmentRequest {
  name: string;
  labels: Record<string, string>;
  version: string;
  /** Remote address of its last attempt. */
  address: string;
  /** First 16 hex digits of the SHA-256 of the agent's enrolment id: compare it with the agent's log. */
  fingerprint: string;
  /** The enrolment token it presented. */
  tokenId: string;
  /** Epoch milliseconds. */
  firstSeen: number;
  lastSeen: number;
  /**
   * Another agent, with another enrolment id, asks for the same name: neither is admitted until
   * an admin chooses one by its fingerprint.
   */
  conflict: boolean;
  /** In a cluster: the server holding the request (the one the agent dialed). */
  server?: string;
}

/** What became of one enrolment attempt. */
export type EnrolmentVerdict =
  | { state: "pending"; request: EnrolmentRequest; isNew: boolean; rivals: EnrolmentRequest[] }
  | { state: "accepted"; request: EnrolmentRequest; by: string; methods: string[] | undefined }
  | { state: "rejected"; request: EnrolmentRequest | undefined; by: string; why: string }
  | { state: "full"; message: string };

/** Limits of the enrolment book (`ServerAuthOptions`). */
export interface EnrolmentLimits {
  /** Requests waiting at once. @default DEFAULTS.enrolmentMaxPending (1024) */
  maxPending?: number;
  /** Requests waiting at once made with one enrolment token. @default DEFAULTS.enrolmentMaxPendingPerToken */
  maxPendingPerToken?: number;
  /** Requests waiting at once from one address (an IPv6 /64). @default DEFAULTS.enrolmentMaxPendingPerAddress */
  maxPendingPerAddress?: number;
  /** A request not retried, or a decision not collected, is forgotten after this. @default DEFAULTS.enrolmentRetentionMs */
  retentionMs?: number;
  /** What an address counts under (the server's per-address key). @default `addressKey` with its defaults */
  keyOf?: (address: string) => string;
}

interface Entry {
  request: EnrolmentRequest;
  state: "pending" | "accepted" | "rejected";
  /** The grants of the enrolment token, for the token issued on acceptance. */
  methods: string[] | undefined;
  /** Where the request is counted: its first address (an IPv6 /64). */
  addressKey: string;
  by?: string;
  why?: string;
  /** When it was accepted or rejected (epoch ms). */
  decidedAt?: number;
}

/** The full SHA-256 of an enrolment id, in hex; its first 16 digits are the fingerprint. */
function hashId(enrolId: string): string {
  return createHash("sha256").update(enrolId).digest("hex");
}

const FINGERPRINT = /^[0-9a-f]{16}$/;

/**
 * The server's enrolment book: requests waiting for an operator, and the accept or reject
 * decisions waiting for the agent's next attempt (agents retry every few seconds). A decision
 * binds the agent that asked — its enrolment id, shown as a fingerprint — not just its name.
 * A second agent asking for a name that is waiting never replaces the first: both wait, marked
 * as a conflict, until an admin chooses one by its fingerprint. Requests are bounded in all, per
 * enrolment token and per address; everything expires after `retentionMs` without news.
 */
export class Enrolment {
  /** By name, then by the hash of the enrolment id. */
  readonly #names = new Map<string, Map<string, Entry>>();
  readonly #perToken = new Map<string, number>();
  readonly #perAddress = new Map<string, number>();
  #pending = 0;
  readonly #maxPending: number;
  readonly #maxPerToken: number;
  readonly #maxPerAddress: number;
  readonly #retentionMs: number;
  readonly #keyOf: (address: string) => string;

  constructor(options: EnrolmentLimits = {}) {
    const whole = (v: number | undefined, fallback: number, name: string): number => {
      const n = v ?? fallback;
      if (!Number.isSafeInteger(n) || n < 1)
        throw new MusterError(
          ErrorCode.INVALID_ARGUMENT,
          `enrolment: ${name} must be a whole number ≥ 1, not ${n}`,
        );
      return n;
    };
    this.#maxPending = whole(options.maxPending, DEFAULTS.enrolmentMaxPending, "maxPending");
    this.#maxPerToken = whole(
      options.maxPendingPerToken,
      DEFAULTS.enrolmentMaxPendingPerToken,
      "maxPendingPerToken",
    );
    this.#maxPerAddress = whole(
      options.maxPendingPerAddress,
      DEFAULTS.enrolmentMaxPendingPerAddress,
      "maxPendingPerAddress",
    );
    this.#retentionMs = options.retentionMs ?? DEFAULTS.enrolmentRetentionMs;
    this.#keyOf = options.keyOf ?? ((address) => addressKey(address));
  }

  /** One attempt by an agent holding a valid enrolment token. */
  attempt(
    hello: { name: string; labels: Record<string, string>; version: string; enrolId: string },
    token: { id: string; methods: string[] | undefined },
    address: string,
    now: number,
  ): EnrolmentVerdict {
    const hash = hashId(hello.enrolId);
    const entries = this.#names.get(hello.name);
    const known = entries?.get(hash);
    if (known !== undefined) {
      known.request.lastSeen = now;
      known.request.address = address;
      if (known.state === "accepted")
        return { state: "accepted", request: known.request, by: known.by ?? "", methods: known.methods };
      if (known.state === "rejected")
        return { state: "rejected", request: known.request, by: known.by ?? "", why: known.why ?? "" };
      return { state: "pending", request: this.#view(known), isNew: false, rivals: this.#rivals(known) };
    }
    const chosen =
      entries === undefined ? undefined : [...entries.values()].find((e) => e.state === "accepted");
    if (chosen !== undefined) {
      return {
        state: "rejected",
        request: undefined,
        by: chosen.by ?? "",
        why: `another agent (fingerprint ${chosen.request.fingerprint}) was accepted as ${hello.name}`,
      };
    }
    const key = this.#keyOf(address);
    const full = this.#full(token.id, key);
    if (full !== undefined) return { state: "full", message: full };
    const entry: Entry = {
      request: {
        name: hello.name,
        labels: { ...hello.labels },
        version: hello.version,
        address,
        fingerprint: hash.slice(0, 16),
        tokenId: token.id,
        firstSeen: now,
        lastSeen: now,
        conflict: false,
      },
      state: "pending",
      methods: token.methods === undefined ? undefined : [...token.methods],
      addressKey: key,
    };
    const byId = entries ?? new Map<string, Entry>();
    if (entries === undefined) this.#names.set(hello.name, byId);
    byId.set(hash, entry);
    this.#count(entry, 1);
    return { state: "pending", request: this.#view(entry), isNew: true, rivals: this.#rivals(entry) };
  }

  /** Why a new request cannot be taken now, or undefined. */
  #full(tokenId: string, key: string): string | undefined {
    if (this.#pending >= this.#maxPending)
      return `too many enrolment requests are waiting (${this.#maxPending}): retry later`;
    if ((this.#perToken.get(tokenId) ?? 0) >= this.#maxPerToken)
      return `${this.#maxPerToken} requests made with enrolment token ${tokenId} are waiting already: an admin must accept or reject some first`;
    if ((this.#perAddress.get(key) ?? 0) >= this.#maxPerAddress)
      return `${this.#maxPerAddress} enrolment requests from ${key} are waiting already: an admin must accept or reject some first`;
    return undefined;
  }

  #count(e: Entry, delta: 1 | -1): void {
    this.#pending += delta;
    for (const [map, key] of [
      [this.#perToken, e.request.tokenId],
      [this.#perAddress, e.addressKey],
    ] as const) {
      const n = (map.get(key) ?? 0) + delta;
      if (n > 0) map.set(key, n);
      else map.delete(key);
    }
  }

  /** The other requests waiting for the same name. */
  #rivals(e: Entry): EnrolmentRequest[] {
    const all = this.#names.get(e.request.name);
    if (all === undefined) return [];
    return [...all.values()].filter((o) => o !== e && o.state === "pending").map((o) => this.#view(o));
  }

  /** A copy of the request with its conflict flag as of now. */
  #view(e: Entry): EnrolmentRequest {
    return { ...e.request, labels: { ...e.request.labels }, conflict: this.#inConflict(e) };
  }

  #inConflict(e: Entry): boolean {
    if (e.state !== "pending") return false;
    for (const o of this.#names.get(e.request.name)?.values() ?? [])
      if (o !== e && o.state === "pending") return true;
    return false;
  }

  /**
   * The waiting request an admin means: the one with `fingerprint`, or the only one for `name`.
   * NOT_FOUND when none waits (or none with that fingerprint); INVALID_ARGUMENT when several
   * wait and no fingerprint tells them apart.
   */
  find(name: string, fingerprint?: string): EnrolmentRequest {
    if (fingerprint !== undefined && !FINGERPRINT.test(fingerprint))
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `a fingerprint is 16 hexadecimal digits (as muster agents shows it), not ${JSON.stringify(fingerprint.slice(0, 40))}`,
      );
    const waiting = [...(this.#names.get(name)?.values() ?? [])].filter((e) => e.state === "pending");
    const list = (): string =>
      waiting.map((e) => `${e.request.fingerprint} from ${e.request.address}`).join(", ");
    if (waiting.length === 0)
      throw new MusterError(ErrorCode.NOT_FOUND, `no enrolment request from ${name} is waiting`);
    if (fingerprint === undefined) {
      if (waiting.length > 1)
        throw new MusterError(
          ErrorCode.INVALID_ARGUMENT,
          `${waiting.length} agents ask to enrol as ${name} (fingerprints ${list()}): give the fingerprint of the one you mean (--fingerprint), after comparing it with the agent's log`,
        );
      return this.#view(waiting[0]!);
    }
    const hit = waiting.filter((e) => e.request.fingerprint === fingerprint);
    if (hit.length !== 1)
      throw new MusterError(
        ErrorCode.NOT_FOUND,
        `no enrolment request from ${name} with fingerprint ${fingerprint} is waiting (waiting: ${list()})`,
      );
    return this.#view(hit[0]!);
  }

  /**
   * Accepts `request` (from `find`): its agent is admitted on its next attempt. Every other
   * request for the name is rejected: the name is taken.
   */
  accept(request: EnrolmentRequest, by: string, now: number): void {
    const chosen = this.#entry(request);
    for (const e of this.#names.get(request.name)?.values() ?? []) {
      if (e === chosen || e.state !== "pending") continue;
      this.#decide(
        e,
        "rejected",
        by,
        now,
        `another agent (fingerprint ${request.fingerprint}) was accepted as ${request.name}`,
      );
    }
    this.#decide(chosen, "accepted", by, now);
  }

  /**
   * Another server of the cluster accepted the agent with `fingerprint` as `name`: the requests
   * for the name waiting here with another fingerprint are rejected (the name is taken), each
   * agent told `why` on its next attempt. Returns them.
   */
  rejectRivals(name: string, fingerprint: string, by: string, now: number, why: string): EnrolmentRequest[] {
    const out: EnrolmentRequest[] = [];
    for (const e of this.#names.get(name)?.values() ?? []) {
      if (e.state !== "pending" || e.request.fingerprint === fingerprint) continue;
      out.push(this.#view(e));
      this.#decide(e, "rejected", by, now, why);
    }
    return out;
  }

  /** The grants of the enrolment token a waiting request was made with (for the token to issue). */
  methodsOf(request: EnrolmentRequest): string[] | undefined {
    return this.#entry(request).methods;
  }

  /** Rejects `request` (from `find`): its agent is told so, with `why`, on its next attempt. */
  reject(request: EnrolmentRequest, by: string, now: number, why = ""): void {
    this.#decide(this.#entry(request), "rejected", by, now, why);
  }

  /**
   * The accepted agent could not be issued its token: from now on it is told `why` (as a
   * rejection by `by`) until it stops asking.
   */
  failed(request: EnrolmentRequest, by: string, why: string, now: number): void {
    for (const e of this.#names.get(request.name)?.values() ?? []) {
      if (e.state !== "accepted" || e.request.fingerprint !== request.fingerprint) continue;
      e.state = "rejected";
      e.by = by;
      e.why = why;
      e.decidedAt = now;
    }
  }

  /** The accepted agent has its token: the decision is done with. */
  collected(request: EnrolmentRequest): void {
    const byId = this.#names.get(request.name);
    if (byId === undefined) return;
    for (const [hash, e] of byId)
      if (e.state === "accepted" && e.request.fingerprint === request.fingerprint) byId.delete(hash);
    if (byId.size === 0) this.#names.delete(request.name);
  }

  #entry(request: EnrolmentRequest): Entry {
    for (const e of this.#names.get(request.name)?.values() ?? [])
      if (e.request.fingerprint === request.fingerprint && e.state === "pending") return e;
    throw new MusterError(ErrorCode.NOT_FOUND, `no enrolment request from ${request.name} is waiting`);
  }

  #decide(e: Entry, state: "accepted" | "rejected", by: string, now: number, why = ""): void {
    if (e.state === "pending") this.#count(e, -1);
    e.state = state;
    e.by = by;
    e.why = why;
    e.decidedAt = now;
  }

  /** Requests waiting for a decision, oldest first. */
  pending(): EnrolmentRequest[] {
    const out: EnrolmentRequest[] = [];
    for (const byId of this.#names.values())
      for (const e of byId.values()) if (e.state === "pending") out.push(this.#view(e));
    return out.sort((a, b) => a.firstSeen - b.firstSeen);
  }

  /** Requests waiting. */
  get size(): number {
    return this.#pending;
  }

  /** One row per name with waiting requests, for the agent list (state `pending`). */
  rows(): AgentInfo[] {
    const byName = new Map<string, EnrolmentRequest[]>();
    for (const r of this.pending()) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
    return [...byName.values()].map((rs) => pendingRow(rs));
  }

  /** Forgets requests not retried, and decisions not collected, within the retention time. */
  prune(now: number): void {
    const cutoff = now - this.#retentionMs;
    for (const [name, byId] of this.#names) {
      for (const [hash, e] of byId) {
        const last = Math.max(e.decidedAt ?? 0, e.request.lastSeen);
        if (last >= cutoff) continue;
        if (e.state === "pending") this.#count(e, -1);
        byId.delete(hash);
      }
      if (byId.size === 0) this.#names.delete(name);
    }
  }
}

/**
 * The requests for one name as a row of the agent list (state `pending`), with the server
 * holding the latest when they say.
 */
export function pendingRow(requests: EnrolmentRequest[]): AgentInfo {
  const latest = requests.reduce((a, b) => (b.lastSeen > a.lastSeen ? b : a));
  const first = requests[0]!;
  const reason =
    requests.length === 1
      ? `waiting for an operator: muster agents accept ${first.name} --fingerprint ${first.fingerprint}`
      : `conflict: ${requests.length} agents ask to enrol as ${first.name} (fingerprints ${requests
          .map(
            (r) =>
              `${r.fingerprint} from ${r.address}${r.server !== undefined ? ` on server ${r.server}` : ""}`,
          )
          .join(
            ", ",
          )}): compare with the agents' logs, then muster agents accept ${first.name} --fingerprint F`;
  return {
    name: first.name,
    labels: latest.labels,
    version: latest.version,
    state: "pending",
    address: latest.address,
    transport: "",
    sessionId: "",
    connectedSince: first.firstSeen,
    lastSeen: latest.lastSeen,
    disconnectReason: reason,
    pendingCalls: 0,
    rttMs: -1,
    ...(latest.server !== undefined ? { server: latest.server } : {}),
  };
}
