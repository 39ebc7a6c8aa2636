import { createHash, timingSafeEqual } from "node:crypto";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";

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
}

/** What became of one enrolment attempt. */
export type EnrolmentVerdict =
  | { state: "pending"; request: EnrolmentRequest; replaced: boolean }
  | { state: "accepted"; request: EnrolmentRequest; by: string }
  | { state: "rejected"; request: EnrolmentRequest; by: string }
  | { state: "full" };

interface Entry {
  request: EnrolmentRequest;
  /** SHA-256 of the enrolment id, compared in constant time. */
  idHash: Buffer;
  by?: string;
  /** When it was accepted or rejected (epoch ms). */
  decidedAt?: number;
}

function hashId(enrolId: string): Buffer {
  return createHash("sha256").update(enrolId).digest();
}

/**
 * The server's enrolment book: requests waiting for an operator, and the accept or reject
 * decisions waiting for the agent's next attempt (agents retry every few seconds). A decision
 * binds the agent that asked — its enrolment id — not just its name, so that another holder of
 * the same enrolment token cannot step into an accepted name. Everything expires after
 * `retentionMs` without news; the book holds at most `maxPending` requests.
 */
export class Enrolment {
  readonly #pending = new Map<string, Entry>();
  readonly #accepted = new Map<string, Entry>();
  readonly #rejected = new Map<string, Entry>();
  readonly #maxPending: number;
  readonly #retentionMs: number;

  constructor(options: { maxPending?: number; retentionMs?: number } = {}) {
    this.#maxPending = options.maxPending ?? DEFAULTS.enrolmentMaxPending;
    this.#retentionMs = options.retentionMs ?? DEFAULTS.enrolmentRetentionMs;
  }

  /** One attempt by an agent holding a valid enrolment token. */
  attempt(
    hello: { name: string; labels: Record<string, string>; version: string; enrolId: string },
    address: string,
    tokenId: string,
    now: number,
  ): EnrolmentVerdict {
    const idHash = hashId(hello.enrolId);
    const accepted = this.#accepted.get(hello.name);
    if (accepted && timingSafeEqual(accepted.idHash, idHash)) {
      this.#accepted.delete(hello.name);
      return { state: "accepted", request: accepted.request, by: accepted.by ?? "" };
    }
    const rejected = this.#rejected.get(hello.name);
    if (rejected && timingSafeEqual(rejected.idHash, idHash)) {
      rejected.request.lastSeen = now;
      return { state: "rejected", request: rejected.request, by: rejected.by ?? "" };
    }
    const old = this.#pending.get(hello.name);
    const same = old !== undefined && timingSafeEqual(old.idHash, idHash);
    if (old === undefined && this.#pending.size >= this.#maxPending) return { state: "full" };
    const request: EnrolmentRequest = {
      name: hello.name,
      labels: { ...hello.labels },
      version: hello.version,
      address,
      fingerprint: idHash.toString("hex").slice(0, 16),
      tokenId,
      firstSeen: same ? old.request.firstSeen : now,
      lastSeen: now,
    };
    this.#pending.set(hello.name, { request, idHash });
    return { state: "pending", request, replaced: old !== undefined && !same };
  }

  /** Accepts the waiting request for `name`: its agent is admitted on its next attempt. */
  accept(name: string, by: string, now: number): EnrolmentRequest {
    return this.#decide(name, by, now, this.#accepted);
  }

  /** Rejects the waiting request for `name`: its agent is told so on its next attempt. */
  reject(name: string, by: string, now: number): EnrolmentRequest {
    return this.#decide(name, by, now, this.#rejected);
  }

  #decide(name: string, by: string, now: number, into: Map<string, Entry>): EnrolmentRequest {
    const entry = this.#pending.get(name);
    if (entry === undefined) {
      throw new MusterError(ErrorCode.NOT_FOUND, `no enrolment request from ${name} is waiting`);
    }
    this.#pending.delete(name);
    entry.by = by;
    entry.decidedAt = now;
    into.set(name, entry);
    return entry.request;
  }

  /** Requests waiting for a decision, oldest first. */
  pending(): EnrolmentRequest[] {
    return [...this.#pending.values()].map((e) => e.request).sort((a, b) => a.firstSeen - b.firstSeen);
  }

  get size(): number {
    return this.#pending.size;
  }

  /** Forgets requests not retried, and decisions not collected, within the retention time. */
  prune(now: number): void {
    const cutoff = now - this.#retentionMs;
    for (const [name, e] of this.#pending) if (e.request.lastSeen < cutoff) this.#pending.delete(name);
    for (const book of [this.#accepted, this.#rejected]) {
      for (const [name, e] of book)
        if (Math.max(e.decidedAt ?? 0, e.request.lastSeen) < cutoff) book.delete(name);
    }
  }
}
