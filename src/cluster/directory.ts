/**
 * Cluster-wide presence: which server holds which agent, in bucket `muster_agents` (key =
 * `encodeKey(agent name)`), with ownership decided by compare-and-set.
 *
 * "The newer session wins." A session's `epoch` is the ms at which it started (tie-broken by
 * session id). `claim` takes the key by `create`, or by `update` on the revision it read, and
 * retries when another writer got in between; it gives up only to a stored record with a newer
 * epoch (`{won: false, by}`: the caller ends its own session as REPLACED). A server whose agent
 * was claimed by a session on another server learns it from the watch (`claimed` with
 * `takenFromUs`) and must end its local session as REPLACED. `setState` and `release` touch the
 * key only while it still belongs to the session given (compare-and-set), so a slow server can
 * never overwrite the record of the session that replaced its own.
 *
 * Epochs come from the wall clocks of the servers that started the sessions: with clocks more
 * than a reconnect apart, an older session could win. Keep server clocks in sync (NTP).
 *
 * Records are small: a record (labels included) larger than `maxRecordBytes` (16 KiB by
 * default) is refused with RESOURCE_EXHAUSTED rather than written, so that one agent with huge
 * labels cannot make every server's watch slow.
 *
 * Offline records (released, or of a server declared dead with `dropServer`) are deleted by
 * compare-and-set after `offlineRetentionMs`, if nobody wrote them meanwhile: records a server
 * released by itself, and those of dropped servers (any survivor may delete them; the first
 * one wins, the others' deletes fail harmlessly).
 */
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { type Clock, systemClock, type TimerHandle } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { type ClusterBus, decodeKey, encodeKey, type KvBucket, type KvEntry, type KvWatch } from "./bus.js";
import { CLUSTER_DEFAULTS } from "./defaults.js";

export const AGENTS_BUCKET = "muster_agents";

export type DirectoryState = "connected" | "suspect" | "resuming" | "offline";

/** An agent's record as stored (JSON). `since`: epoch ms of the last state change. */
export interface AgentRecord {
  v: 1;
  /** Name and per-process id of the server holding the session. */
  server: string;
  serverId: string;
  session: string;
  /** Ms at session start (the newer session wins; ties broken by `session`). */
  epoch: number;
  labels: Record<string, string>;
  version: string;
  state: DirectoryState;
  since: number;
  reason?: string;
}

/** What a server claims an agent with; the rest of the record comes from the directory. */
export interface AgentClaim {
  session: string;
  epoch: number;
  labels: Record<string, string>;
  version: string;
  /** @default "connected" */
  state?: DirectoryState;
}

export type ClaimResult = { won: true; revision: number } | { won: false; by: AgentRecord };

export interface DirectoryRow {
  name: string;
  record: AgentRecord;
  revision: number;
  /** The record's state, or `offline` when its server was dropped. */
  state: DirectoryState;
}

/**
 * `claimed`: a session took the name (`previous`: the record it replaced; `takenFromUs`: that
 * was a session of this server, now held by another server). `changed`: same session, new state
 * or labels. `released`: its session went offline. `removed`: the key was deleted. `orphaned`:
 * its server was dropped (`dropServer`). Records found at start are `claimed` events too.
 */
export type DirectoryEvent =
  | { type: "claimed"; name: string; record: AgentRecord; previous?: AgentRecord; takenFromUs: boolean }
  | { type: "changed"; name: string; record: AgentRecord; previous: AgentRecord }
  | { type: "released"; name: string; record: AgentRecord; previous: AgentRecord }
  | { type: "removed"; name: string; previous?: AgentRecord }
  | { type: "orphaned"; name: string; record: AgentRecord };

export interface AgentDirectoryOptions {
  bus: ClusterBus;
  serverName: string;
  serverId: string;
  /** The bucket (one per cluster). @default AGENTS_BUCKET */
  bucket?: string;
  /** Retention timers. @default systemClock */
  clock?: Clock;
  /** `since` of the records written. @default Date.now */
  wallClock?: () => number;
  /** Offline records are deleted this long after going offline. @default 300000 */
  offlineRetentionMs?: number;
  /** Largest encoded record. @default 16384 */
  maxRecordBytes?: number;
  /** Compare-and-set attempts of one operation before UNAVAILABLE. @default 16 */
  maxCasAttempts?: number;
  /** @default silentLogger */
  logger?: Logger;
}

interface Row extends DirectoryRow {
  /** `clock.now()` when it was seen offline (or orphaned): the retention starts then. */
  offlineAt?: number;
}

const utf8 = new TextEncoder();

export class AgentDirectory {
  readonly #o: Required<AgentDirectoryOptions>;
  readonly #rows = new Map<string, Row>();
  readonly #dropped = new Set<string>();
  readonly #listeners = new Set<(e: DirectoryEvent) => void>();
  #bucket: KvBucket | undefined;
  #watch: KvWatch | undefined;
  #sweep: TimerHandle | undefined;
  #offStatus: (() => void) | undefined;

  constructor(options: AgentDirectoryOptions) {
    this.#o = {
      bus: options.bus,
      serverName: options.serverName,
      serverId: options.serverId,
      bucket: options.bucket ?? AGENTS_BUCKET,
      clock: options.clock ?? systemClock,
      wallClock: options.wallClock ?? Date.now,
      offlineRetentionMs: options.offlineRetentionMs ?? DEFAULTS.offlineRetentionMs,
      maxRecordBytes: options.maxRecordBytes ?? CLUSTER_DEFAULTS.directoryMaxRecordBytes,
      maxCasAttempts: options.maxCasAttempts ?? CLUSTER_DEFAULTS.directoryMaxCasAttempts,
      logger: options.logger ?? silentLogger,
    };
  }

  /** Opens the bucket and reads every record (so `list()` is complete when this resolves). */
  async start(): Promise<void> {
    this.#bucket = await this.#o.bus.bucket(this.#o.bucket);
    let ready!: () => void;
    const initial = new Promise<void>((resolve) => {
      ready = resolve;
    });
    this.#watch = await this.#bucket.watch((e) => this.#onEntry(e), ready);
    await initial;
    this.#offStatus = this.#o.bus.onStatus((s) => {
      if (s === "closed") this.stop();
    });
    this.#scheduleSweep();
  }

  /** Stops the watch and the timers; records stay (release agents first for a clean exit). */
  stop(): void {
    this.#offStatus?.();
    this.#watch?.stop();
    if (this.#sweep) this.#o.clock.clearTimeout(this.#sweep);
    this.#sweep = undefined;
  }

  /** Takes ownership of `name` for a session of this server (see the file comment). */
  async claim(name: string, claim: AgentClaim): Promise<ClaimResult> {
    const record: AgentRecord = {
      v: 1,
      server: this.#o.serverName,
      serverId: this.#o.serverId,
      session: claim.session,
      epoch: claim.epoch,
      labels: claim.labels,
      version: claim.version,
      state: claim.state ?? "connected",
      since: this.#o.wallClock(),
    };
    const value = this.#encode(name, record);
    const bucket = this.#open();
    const key = encodeKey(name);
    for (let i = 0; i < this.#o.maxCasAttempts; i++) {
      const cur = await bucket.get(key);
      if (cur === undefined) {
        const revision = await bucket.create(key, value);
        if (revision !== undefined) return { won: true, revision };
        continue;
      }
      const stored = parseAgentRecord(cur.value);
      if (stored && stored.session !== record.session && isNewer(stored, record))
        return { won: false, by: stored };
      const revision = await bucket.update(key, value, cur.revision);
      if (revision !== undefined) return { won: true, revision };
    }
    throw this.#contended("claim", name);
  }

  /** Sets the state of `name` if `session` still holds it; false when it does not. */
  async setState(name: string, session: string, state: DirectoryState, reason?: string): Promise<boolean> {
    const bucket = this.#open();
    const key = encodeKey(name);
    for (let i = 0; i < this.#o.maxCasAttempts; i++) {
      const cur = await bucket.get(key);
      const stored = cur && parseAgentRecord(cur.value);
      // Only the server holding the session changes it (a handed-over session keeps its id).
      if (!cur || !stored || stored.session !== session || stored.serverId !== this.#o.serverId) return false;
      if (stored.state === state && stored.reason === reason) return true;
      const { reason: _old, ...rest } = stored;
      const next: AgentRecord = {
        ...rest,
        state,
        since: this.#o.wallClock(),
        ...(reason !== undefined && { reason }),
      };
      if ((await bucket.update(key, this.#encode(name, next), cur.revision)) !== undefined) return true;
    }
    throw this.#contended("state change", name);
  }

  /** Marks `name` offline if `session` still holds it; deleted after the retention period. */
  release(name: string, session: string, reason: string): Promise<boolean> {
    return this.setState(name, session, "offline", reason);
  }

  /** The row of `name` while a live session holds it (not offline, server not dropped). */
  ownerOf(name: string): DirectoryRow | undefined {
    const row = this.#rows.get(encodeKey(name));
    return row && row.state !== "offline" ? publicRow(row) : undefined;
  }

  /** Every record known, offline ones included. */
  list(): DirectoryRow[] {
    return [...this.#rows.values()].map(publicRow);
  }

  /** The records held by sessions of `serverName`. */
  forServer(serverName: string): DirectoryRow[] {
    return this.list().filter((r) => r.record.server === serverName);
  }

  /**
   * The registry declared the server with `serverId` dead: its agents count as offline from now
   * (`orphaned` events), and their records are deleted after the retention period unless a new
   * session claims them first. Returns their names.
   */
  dropServer(serverId: string): string[] {
    this.#dropped.add(serverId);
    const now = this.#o.clock.now();
    const names: string[] = [];
    for (const row of this.#rows.values()) {
      if (row.record.serverId !== serverId || row.state === "offline") continue;
      row.state = "offline";
      row.offlineAt = now;
      names.push(row.name);
      this.#emit({ type: "orphaned", name: row.name, record: row.record });
    }
    return names;
  }

  /** Undoes `dropServer` (the server was only unreachable): its records count as written. */
  restoreServer(serverId: string): void {
    if (!this.#dropped.delete(serverId)) return;
    for (const row of this.#rows.values()) {
      if (row.record.serverId !== serverId) continue;
      row.state = row.record.state;
      row.offlineAt = row.state === "offline" ? this.#o.clock.now() : undefined;
    }
  }

  /** Calls `fn` for every event; returns a function that stops it. */
  on(fn: (e: DirectoryEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #onEntry(e: KvEntry): void {
    const prev = this.#rows.get(e.key);
    const name = decodeKey(e.key);
    if (e.operation !== "PUT") {
      this.#rows.delete(e.key);
      this.#emit({ type: "removed", name, ...(prev && { previous: prev.record }) });
      return;
    }
    const record = parseAgentRecord(e.value);
    if (record === undefined) {
      this.#o.logger.warn({ key: e.key }, "ignoring a malformed agent record");
      return;
    }
    const state = this.#dropped.has(record.serverId) ? "offline" : record.state;
    const row: Row = { name, record, revision: e.revision, state };
    if (state === "offline") row.offlineAt = prev?.state === "offline" ? prev.offlineAt : this.#o.clock.now();
    this.#rows.set(e.key, row);
    const previous = prev?.record;
    if (previous === undefined || previous.session !== record.session) {
      const takenFromUs = previous?.serverId === this.#o.serverId && record.serverId !== this.#o.serverId;
      this.#emit({ type: "claimed", name, record, ...(previous && { previous }), takenFromUs });
    } else if (record.state === "offline" && previous.state !== "offline") {
      this.#emit({ type: "released", name, record, previous });
    } else if (
      record.state !== previous.state ||
      JSON.stringify(record.labels) !== JSON.stringify(previous.labels)
    ) {
      this.#emit({ type: "changed", name, record, previous });
    }
  }

  #scheduleSweep(): void {
    const every = Math.max(1000, Math.min(60_000, this.#o.offlineRetentionMs / 2));
    this.#sweep = this.#o.clock.setTimeout(() => {
      this.#cleanup();
      if (this.#sweep !== undefined) this.#scheduleSweep();
    }, every);
    this.#sweep.unref();
  }

  /** Deletes, by compare-and-set, offline records past retention that this server must clean. */
  #cleanup(): void {
    if (this.#o.bus.status !== "connected" || this.#bucket === undefined) return;
    const now = this.#o.clock.now();
    for (const [key, row] of this.#rows) {
      if (row.offlineAt === undefined || now - row.offlineAt < this.#o.offlineRetentionMs) continue;
      const ours = row.record.serverId === this.#o.serverId;
      if (!ours && !this.#dropped.has(row.record.serverId)) continue;
      row.offlineAt = undefined; // false (someone wrote it since): the new record decides
      this.#bucket.delete(key, row.revision).catch((err: unknown) => {
        this.#o.logger.debug({ err, agent: row.name }, "could not delete an offline agent record");
        if (this.#rows.get(key) === row) row.offlineAt = now; // tried again after another period
      });
    }
  }

  #encode(name: string, record: AgentRecord): Uint8Array {
    if (typeof name !== "string" || name.length === 0) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "an agent name is required");
    }
    const bytes = utf8.encode(JSON.stringify(record));
    if (bytes.length > this.#o.maxRecordBytes) {
      throw new MusterError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `the directory record of ${name} is ${bytes.length} bytes (labels included): more than ${this.#o.maxRecordBytes}`,
      );
    }
    return bytes;
  }

  #open(): KvBucket {
    if (this.#bucket === undefined)
      throw new MusterError(ErrorCode.UNAVAILABLE, "the directory is not started");
    return this.#bucket;
  }

  #contended(what: string, name: string): MusterError {
    return new MusterError(
      ErrorCode.UNAVAILABLE,
      `${what} of ${name}: ${this.#o.maxCasAttempts} compare-and-set attempts lost to other writers`,
    );
  }

  #emit(e: DirectoryEvent): void {
    for (const fn of [...this.#listeners]) {
      try {
        fn(e);
      } catch (err) {
        this.#o.logger.error({ err }, "a directory listener threw");
      }
    }
  }
}

/** True when session `a` is newer than `b`: later epoch, or the same epoch and a greater id. */
export function isNewer(
  a: { epoch: number; session: string },
  b: { epoch: number; session: string },
): boolean {
  return a.epoch > b.epoch || (a.epoch === b.epoch && a.session > b.session);
}

function publicRow(row: Row): DirectoryRow {
  return { name: row.name, record: row.record, revision: row.revision, state: row.state };
}

const STATES = new Set<string>(["connected", "suspect", "resuming", "offline"]);

/** A record read from the bucket, or undefined when it is not one. */
export function parseAgentRecord(bytes: Uint8Array): AgentRecord | undefined {
  let r: unknown;
  try {
    r = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof r !== "object" || r === null) return undefined;
  const o = r as Record<string, unknown>;
  const labelsOk =
    typeof o.labels === "object" &&
    o.labels !== null &&
    !Array.isArray(o.labels) &&
    Object.values(o.labels).every((v) => typeof v === "string");
  const ok =
    o.v === 1 &&
    typeof o.server === "string" &&
    typeof o.serverId === "string" &&
    typeof o.session === "string" &&
    typeof o.epoch === "number" &&
    Number.isFinite(o.epoch) &&
    labelsOk &&
    typeof o.version === "string" &&
    typeof o.state === "string" &&
    STATES.has(o.state) &&
    typeof o.since === "number" &&
    (o.reason === undefined || typeof o.reason === "string");
  return ok ? (o as unknown as AgentRecord) : undefined;
}
