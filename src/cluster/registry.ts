/**
 * The cluster's servers: each server keeps its record in bucket `muster_servers` (key =
 * `encodeKey(name)`) fresh, watches everybody's, and judges liveness itself.
 *
 * Liveness is this server's own failure detector, on its own clock: a record is as old as the
 * time since this server's watch last delivered a change of it, never what the record's
 * timestamps say (clocks of other hosts may be off, and nats-server 2.9 expires records
 * silently). Silent for 3 refresh intervals: `suspect`; for 5: `dead`, with one `down` event;
 * a record that changes again after that is `up` again. A new `id` under a known name is a
 * restart: `down` for the old id, `up` for the new one. Records present at start count as fresh
 * at that moment; while this server's own link to the backplane is down nobody ages (it cannot
 * see), and every record counts as fresh again when the link is back.
 *
 * Two live servers with one name: the newer start (by `startedAt`, then `id`) keeps the name,
 * as a restart would. The older one logs an error, stops writing its record (so that the
 * cluster sees one server, not a record flapping between two), and emits `conflict`; it keeps
 * serving until its host stops it. The newer one logs an error and writes its record again.
 */
import { randomUUID } from "node:crypto";
import { type Clock, systemClock, type TimerHandle } from "../internal/clock.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { type ClusterBus, encodeKey, type KvBucket, type KvEntry, type KvWatch } from "./bus.js";
import { CLUSTER_DEFAULTS } from "./defaults.js";

export const SERVERS_BUCKET = "muster_servers";

/** A server's record as stored (JSON). Times are epoch ms by that server's wall clock. */
export interface ServerRecord {
  v: 1;
  name: string;
  /** Random per process start: a new id under a name is a restart. */
  id: string;
  /** Where agents reach it (as they dial: ws://, tcp://, …). */
  urls: string[];
  version: string;
  protocol: 1;
  capabilities: string[];
  state: "ready" | "draining";
  agents: number;
  lagMs: number;
  startedAt: number;
  heartbeatAt: number;
}

/** `self`: this server; `suspect`/`dead`: silent for 3/5 refresh intervals; else as announced. */
export type ServerState = "ready" | "draining" | "suspect" | "dead" | "self";

export interface ServerRow extends Omit<ServerRecord, "v" | "state"> {
  state: ServerState;
  /** What the record says (`ready` or `draining`), whatever this server thinks of its liveness. */
  announced: "ready" | "draining";
  /** Time since this server last saw the record change, by this server's clock (0 for self). */
  lastHeartbeatMs: number;
}

/**
 * `up`: a server is known and alive (also for each one found at start); `down`: dead (silent),
 * deregistered (record deleted) or restarted (a new id replaced this one); `change`: its state
 * (ready, draining, suspect), urls, version or capabilities changed (load changes are not
 * events: read them with `list()`); `conflict`: another live server uses this server's name.
 */
export type RegistryEvent =
  | { type: "up"; server: ServerRow }
  | { type: "down"; server: ServerRow; reason: "dead" | "deregistered" | "restarted" }
  | { type: "change"; server: ServerRow }
  | { type: "conflict"; other: ServerRecord; kept: "ours" | "theirs" };

export interface ServerRegistryOptions {
  bus: ClusterBus;
  name: string;
  urls: string[];
  version: string;
  /** The bucket (one per cluster). @default SERVERS_BUCKET */
  bucket?: string;
  capabilities?: string[];
  /** The load written with every refresh. @default no agents, no lag */
  load?: () => { agents: number; lagMs: number };
  /** How often the record is rewritten; suspicion and death count in these. @default 2000 */
  refreshMs?: number;
  /** Liveness timers and ages. @default systemClock */
  clock?: Clock;
  /** Wall clock for `startedAt` and `heartbeatAt`. @default Date.now */
  wallClock?: () => number;
  /** @default a random UUID */
  id?: string;
  /** @default silentLogger */
  logger?: Logger;
}

interface Known {
  record: ServerRecord;
  revision: number;
  /** `clock.now()` when the watch last delivered a change of it. */
  seenAt: number;
  state: ServerState;
}

export class ServerRegistry {
  readonly id: string;
  readonly #o: Required<Omit<ServerRegistryOptions, "capabilities" | "load" | "id">>;
  readonly #capabilities: string[];
  readonly #load: () => { agents: number; lagMs: number };
  readonly #startedAt: number;
  /** Other servers by bucket key. */
  readonly #known = new Map<string, Known>();
  readonly #listeners = new Set<(e: RegistryEvent) => void>();
  #announced: "ready" | "draining" = "ready";
  #bucket: KvBucket | undefined;
  #watch: KvWatch | undefined;
  #revision = 0;
  #refreshTimer: TimerHandle | undefined;
  #sweepTimer: TimerHandle | undefined;
  #offStatus: (() => void) | undefined;
  /** Another server with our name started later: we no longer write our record. */
  #yielded = false;
  #running = false;
  readonly #reported = new Set<string>();

  constructor(options: ServerRegistryOptions) {
    this.id = options.id ?? randomUUID();
    this.#o = {
      bus: options.bus,
      name: options.name,
      urls: [...options.urls],
      version: options.version,
      bucket: options.bucket ?? SERVERS_BUCKET,
      refreshMs: options.refreshMs ?? CLUSTER_DEFAULTS.registryRefreshMs,
      clock: options.clock ?? systemClock,
      wallClock: options.wallClock ?? Date.now,
      logger: (options.logger ?? silentLogger).child({ registry: options.name }),
    };
    this.#capabilities = [...(options.capabilities ?? [])];
    this.#load = options.load ?? (() => ({ agents: 0, lagMs: 0 }));
    this.#startedAt = this.#o.wallClock();
  }

  /** Opens the bucket, reads every record (so `list()` is complete), writes ours, starts the timers. */
  async start(): Promise<void> {
    const { bus, refreshMs } = this.#o;
    // Expiry only collects records of servers gone for good: liveness never relies on it.
    this.#bucket = await bus.bucket(this.#o.bucket, { maxAgeMs: Math.max(60_000, 30 * refreshMs) });
    let ready!: () => void;
    const initial = new Promise<void>((resolve) => {
      ready = resolve;
    });
    this.#running = true;
    this.#watch = await this.#bucket.watch((e) => this.#onEntry(e), ready);
    await initial;
    this.#offStatus = bus.onStatus((s) => {
      if (s === "closed") this.#halt();
      if (s !== "connected") return;
      const now = this.#o.clock.now();
      for (const k of this.#known.values()) if (k.state !== "dead") k.seenAt = now;
      this.#refresh();
    });
    try {
      await this.#write();
    } catch (err) {
      this.#halt();
      throw err;
    }
    this.#scheduleRefresh();
    this.#scheduleSweep();
  }

  /** Announces `draining` (agents should go elsewhere) at once. */
  async markDraining(): Promise<void> {
    this.#announced = "draining";
    if (this.#running) await this.#write();
  }

  /** Stops the timers and the watch, and deletes this server's record (deregistration). */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#halt();
    if (this.#yielded || this.#revision === 0) return;
    try {
      await this.#bucket!.delete(encodeKey(this.#o.name), this.#revision);
    } catch (err) {
      this.#o.logger.warn({ err }, "could not delete this server's record: it will age out");
    }
  }

  /** Stops the timers and the watch (the bus closed, or `stop`). */
  #halt(): void {
    this.#running = false;
    const { clock } = this.#o;
    if (this.#refreshTimer) clock.clearTimeout(this.#refreshTimer);
    if (this.#sweepTimer) clock.clearTimeout(this.#sweepTimer);
    this.#offStatus?.();
    this.#watch?.stop();
  }

  /** Every server known, this one first. */
  list(): ServerRow[] {
    const rows = [this.#selfRow()];
    for (const k of this.#known.values()) rows.push(this.#row(k));
    return rows;
  }

  /** One server by name. */
  get(name: string): ServerRow | undefined {
    if (name === this.#o.name) return this.#selfRow();
    const k = this.#known.get(encodeKey(name));
    return k && this.#row(k);
  }

  /** Calls `fn` for every event; returns a function that stops it. */
  on(fn: (e: RegistryEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #record(): ServerRecord {
    const load = this.#load();
    return {
      v: 1,
      name: this.#o.name,
      id: this.id,
      urls: this.#o.urls,
      version: this.#o.version,
      protocol: 1,
      capabilities: this.#capabilities,
      state: this.#announced,
      agents: load.agents,
      lagMs: load.lagMs,
      startedAt: this.#startedAt,
      heartbeatAt: this.#o.wallClock(),
    };
  }

  /** Writes our record: by compare-and-set on our last revision, so a foreign write is seen. */
  async #write(): Promise<void> {
    if (this.#yielded || !this.#running) return;
    const bucket = this.#bucket!;
    const key = encodeKey(this.#o.name);
    const value = new TextEncoder().encode(JSON.stringify(this.#record()));
    let rev = this.#revision > 0 ? await bucket.update(key, value, this.#revision) : undefined;
    if (rev === undefined) {
      const cur = await bucket.get(key);
      const other = cur && parseServerRecord(cur.value);
      if (other && other.id !== this.id) {
        // At start, an older record under our name is taken for this server's previous run.
        if (this.#revision === 0 && this.#newerThan(other)) {
          this.#o.logger.info({ previousId: other.id }, "replacing the record of this server's previous run");
        } else if (!this.#resolveConflict(other)) return;
      }
      rev = await bucket.put(key, value);
    }
    this.#revision = rev;
  }

  /** True when we keep the name (and must write again); false when we yield it. */
  #resolveConflict(other: ServerRecord): boolean {
    const oursNewer = this.#newerThan(other);
    const kept = oursNewer ? "ours" : "theirs";
    if (!this.#reported.has(other.id)) {
      this.#reported.add(other.id);
      this.#o.logger.error(
        { otherId: other.id, otherStartedAt: other.startedAt, kept },
        `two servers are named ${this.#o.name}: ${oursNewer ? "this one started later and keeps the name" : "the other started later and keeps the name; this one stops announcing itself"}`,
      );
      this.#emit({ type: "conflict", other, kept });
    }
    if (!oursNewer) this.#yielded = true;
    return oursNewer;
  }

  /** This process started after `other` (by `startedAt`, then `id`). */
  #newerThan(other: ServerRecord): boolean {
    return this.#startedAt > other.startedAt || (this.#startedAt === other.startedAt && this.id > other.id);
  }

  #refresh(): void {
    this.#write().catch((err: unknown) => this.#o.logger.debug({ err }, "record refresh failed"));
  }

  #scheduleRefresh(): void {
    if (!this.#running) return;
    this.#refreshTimer = this.#o.clock.setTimeout(() => {
      this.#refresh();
      this.#scheduleRefresh();
    }, this.#o.refreshMs);
    this.#refreshTimer.unref();
  }

  #scheduleSweep(): void {
    if (!this.#running) return;
    this.#sweepTimer = this.#o.clock.setTimeout(() => {
      this.#sweep();
      this.#scheduleSweep();
    }, this.#o.refreshMs / 2);
    this.#sweepTimer.unref();
  }

  /** Ages every record by this server's clock; forgets the dead once their record expired. */
  #sweep(): void {
    if (this.#o.bus.status !== "connected") return;
    const { refreshMs, clock } = this.#o;
    const now = clock.now();
    for (const [key, k] of this.#known) {
      const age = now - k.seenAt;
      if (k.state === "dead") {
        if (age > Math.max(60_000, 30 * refreshMs)) this.#known.delete(key);
        continue;
      }
      if (age >= CLUSTER_DEFAULTS.registryDeadIntervals * refreshMs) {
        k.state = "dead";
        this.#emit({ type: "down", server: this.#row(k), reason: "dead" });
      } else if (age >= CLUSTER_DEFAULTS.registrySuspectIntervals * refreshMs && k.state !== "suspect") {
        k.state = "suspect";
        this.#emit({ type: "change", server: this.#row(k) });
      }
    }
  }

  #onEntry(e: KvEntry): void {
    if (e.operation !== "PUT") {
      const k = this.#known.get(e.key);
      if (k === undefined) return;
      this.#known.delete(e.key);
      if (k.state !== "dead") this.#emit({ type: "down", server: this.#row(k), reason: "deregistered" });
      return;
    }
    const rec = parseServerRecord(e.value);
    if (rec === undefined || encodeKey(rec.name) !== e.key) {
      this.#o.logger.warn({ key: e.key }, "ignoring a malformed server record");
      return;
    }
    if (rec.name === this.#o.name) {
      if (rec.id !== this.id && this.#revision > 0 && this.#running && this.#resolveConflict(rec)) {
        this.#refresh();
      }
      return;
    }
    const now = this.#o.clock.now();
    const prev = this.#known.get(e.key);
    const next: Known = { record: rec, revision: e.revision, seenAt: now, state: rec.state };
    this.#known.set(e.key, next);
    if (prev === undefined) {
      this.#emit({ type: "up", server: this.#row(next) });
    } else if (prev.record.id !== rec.id) {
      if (prev.state !== "dead") this.#emit({ type: "down", server: this.#row(prev), reason: "restarted" });
      this.#emit({ type: "up", server: this.#row(next) });
    } else if (prev.state === "dead") {
      this.#emit({ type: "up", server: this.#row(next) });
    } else if (
      prev.state !== next.state ||
      prev.record.version !== rec.version ||
      prev.record.urls.join(" ") !== rec.urls.join(" ") ||
      prev.record.capabilities.join(" ") !== rec.capabilities.join(" ")
    ) {
      this.#emit({ type: "change", server: this.#row(next) });
    }
  }

  #row(k: Known): ServerRow {
    const { v: _v, state, ...rest } = k.record;
    return { ...rest, state: k.state, announced: state, lastHeartbeatMs: this.#o.clock.now() - k.seenAt };
  }

  #selfRow(): ServerRow {
    const { v: _v, state, ...rest } = this.#record();
    return { ...rest, state: "self", announced: state, lastHeartbeatMs: 0 };
  }

  #emit(e: RegistryEvent): void {
    for (const fn of [...this.#listeners]) {
      try {
        fn(e);
      } catch (err) {
        this.#o.logger.error({ err }, "a registry listener threw");
      }
    }
  }
}

const MAX_URLS = 16;
const MAX_TEXT = 2048;

/** A record read from the bucket, or undefined when it is not one (checked, bounded). */
export function parseServerRecord(bytes: Uint8Array): ServerRecord | undefined {
  let r: unknown;
  try {
    r = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof r !== "object" || r === null) return undefined;
  const o = r as Record<string, unknown>;
  const text = (x: unknown): x is string => typeof x === "string" && x.length <= MAX_TEXT;
  const texts = (x: unknown): x is string[] => Array.isArray(x) && x.length <= MAX_URLS * 4 && x.every(text);
  const num = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
  const ok =
    o.v === 1 &&
    text(o.name) &&
    o.name.length > 0 &&
    text(o.id) &&
    texts(o.urls) &&
    o.urls.length <= MAX_URLS &&
    text(o.version) &&
    o.protocol === 1 &&
    texts(o.capabilities) &&
    (o.state === "ready" || o.state === "draining") &&
    num(o.agents) &&
    num(o.lagMs) &&
    num(o.startedAt) &&
    num(o.heartbeatAt);
  return ok ? (o as unknown as ServerRecord) : undefined;
}
