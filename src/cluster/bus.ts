/**
 * The backplane a cluster of muster servers talks over: subjects with publish, subscribe and
 * request/reply, and key-value buckets with compare-and-set and a watch. Every piece of cluster
 * logic (registry, presence directory, call relay) is written once against this interface; the
 * in-memory bus (`memory-bus.ts`) runs it in one process for tests, the NATS bus (`nats-bus.ts`)
 * runs it over a real nats-server with JetStream KV.
 *
 * Subjects are dot-separated tokens; a subscription may use `*` (one token) and `>` (the rest),
 * as NATS does. Payloads are bytes; small routing facts travel in `headers`.
 */

/** A message delivered to a subscription. */
export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Header values by name (names as sent); empty when none. */
  readonly headers: ReadonlyMap<string, string>;
  /**
   * Answers a request (a message sent with `request`); false when the message was not a
   * request or the bus is down. At most one answer reaches the requester. Throws
   * RESOURCE_EXHAUSTED above `maxPayload` and INVALID_ARGUMENT for malformed headers, as
   * `publish` does.
   */
  respond(data: Uint8Array, headers?: Record<string, string>): boolean;
}

/** The bus's link to its backplane. */
export type BusStatus = "connected" | "disconnected" | "closed";

export interface BusRequestOptions {
  /** How long to wait for the answer, in ms. */
  timeoutMs: number;
  headers?: Record<string, string>;
}

/** A subscription; `unsubscribe` is idempotent. */
export interface BusSubscription {
  unsubscribe(): void;
}

export interface ClusterBus {
  /**
   * Largest message the backplane carries, in bytes (NATS: the server's `max_payload`), headers
   * counted as NATS counts them (`messageSize` in `subjects.ts`). Larger messages are refused by
   * `publish`, `request`, `respond` and bucket writes with RESOURCE_EXHAUSTED.
   */
  readonly maxPayload: number;
  /** The link now. */
  readonly status: BusStatus;
  /** Calls `fn` on every status change; returns a function that stops it. */
  onStatus(fn: (status: BusStatus) => void): () => void;
  /**
   * Sends a message to every subscriber of `subject` (at most once each; none when nobody
   * listens). Throws UNAVAILABLE when the bus is disconnected (nothing is buffered), CLOSED
   * after `close`, RESOURCE_EXHAUSTED when the message exceeds `maxPayload`, INVALID_ARGUMENT
   * for a subject with wildcards or a malformed header.
   */
  publish(subject: string, data: Uint8Array, headers?: Record<string, string>): void;
  /**
   * Sends a request and resolves with the first answer. Rejects with UNAVAILABLE when the bus
   * is down, goes down while waiting, or nobody listens on `subject`; DEADLINE_EXCEEDED when no
   * answer came in time.
   */
  request(subject: string, data: Uint8Array, options: BusRequestOptions): Promise<BusMessage>;
  /**
   * Delivers every message on `subject` (wildcards allowed) to `handler`, in order, never from
   * inside the call that sent it. The subscription outlives link losses (messages sent while
   * the link is down are lost); a handler that throws is logged and does not stop it.
   */
  subscribe(subject: string, handler: (msg: BusMessage) => void): BusSubscription;
  /** Opens (creating when absent) a key-value bucket. */
  bucket(name: string, options?: BucketOptions): Promise<KvBucket>;
  /** Unsubscribes everything, stops watches and closes the link. */
  close(): Promise<void>;
}

export interface BucketOptions {
  /**
   * Entries older than this are removed by the backplane (ms; 0: never). Removal is silent on
   * nats-server 2.9: watchers are not told, so callers must not rely on it for liveness.
   */
  maxAgeMs?: number;
}

/** One entry of a bucket, or one change seen by a watch. */
export interface KvEntry {
  readonly key: string;
  /** Empty for deletions. */
  readonly value: Uint8Array;
  /** Increases with every change of the bucket; the compare-and-set token. */
  readonly revision: number;
  readonly operation: "PUT" | "DEL" | "PURGE";
  /** When the backplane stored this revision (ms since the epoch, the backplane's clock). */
  readonly created: number;
}

/** A change feed over every key of a bucket. */
export interface KvWatch {
  stop(): void;
}

export interface KvBucket {
  readonly name: string;
  /** The latest value of `key`; undefined when absent or deleted. */
  get(key: string): Promise<KvEntry | undefined>;
  /** Writes `key` only if it is absent (or deleted); the new revision, or undefined if it exists. */
  create(key: string, value: Uint8Array): Promise<number | undefined>;
  /**
   * Writes `key` only if its latest revision is `revision` (compare-and-set); the new revision,
   * or undefined when someone else wrote it first.
   */
  update(key: string, value: Uint8Array, revision: number): Promise<number | undefined>;
  /** Writes `key` unconditionally; the new revision. */
  put(key: string, value: Uint8Array): Promise<number>;
  /**
   * Deletes `key` (a deletion marker: watches see a `DEL`); with `revision`, only if that is
   * still its latest revision (false when it is not). Deleting an absent key is not an error,
   * and writes a marker too, as NATS does.
   */
  delete(key: string, revision?: number): Promise<boolean>;
  /** The keys present now. */
  keys(): Promise<string[]>;
  /**
   * Calls `onEntry` with the latest entry of every key present now (deleted ones skipped),
   * then `onReady()` once, then every change as it happens (deletions included), in revision
   * order, never the same revision twice. Keys are not filtered: one watch per bucket.
   *
   * The watch survives link losses: when the link is back it delivers what changed meanwhile
   * (the latest entry of each changed key, deletions included: history is 1), then goes on.
   * Entries removed by `maxAgeMs` are never reported. Callers must accept a deletion of a key
   * they never saw.
   */
  watch(onEntry: (entry: KvEntry) => void, onReady?: () => void): Promise<KvWatch>;
}

/**
 * Keys allowed by NATS KV are `[-/_=.a-zA-Z0-9]+` (no leading or trailing dot). Agent names
 * may hold other characters: each byte outside `[-_a-zA-Z0-9]` becomes `=XX` (hex), so the
 * mapping is one-to-one and reversible.
 */
export function encodeKey(name: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(name)) {
    const c = String.fromCharCode(byte);
    out += /[-_a-zA-Z0-9]/.test(c) ? c : `=${byte.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** The inverse of `encodeKey`. */
export function decodeKey(key: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < key.length; i++) {
    if (key[i] === "=") {
      bytes.push(Number.parseInt(key.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(key.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
