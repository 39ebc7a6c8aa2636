/**
 * An in-memory backplane: one `MemoryBackplane` is the hub (what nats-server is to the NATS
 * bus), and every `connect()` is one node's `ClusterBus` on it. It runs cluster logic in one
 * process for tests and single-process set-ups, with the semantics of the NATS bus: subjects with
 * `*` and `>`, at-most-once delivery, request/reply failing with UNAVAILABLE when nobody
 * listens, buckets whose revisions count every change of the bucket (history 1: only the
 * latest entry of each key is kept, deletions as markers), compare-and-set, and watches.
 *
 * Every delivery (messages, answers, watch entries) is queued and run from a microtask, in the
 * order it was produced, never inside the call that produced it, so that code tested here does
 * not come to depend on re-entrant callbacks NATS would never make.
 *
 * `setDown(true)` cuts a node off, as a lost connection would: its status goes `disconnected`,
 * its publishes, requests and bucket operations fail with UNAVAILABLE, messages for it are
 * dropped, its requests in flight fail; `setDown(false)` restores it and its watches deliver
 * the changes they missed, in revision order.
 */
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock } from "../internal/clock.js";
import type { Logger } from "../internal/logger.js";
import type { BusSubscription, ClusterBus, KvEntry } from "./bus.js";
import { type BucketDriver, BusCore, type BusDriver, type RawMessage } from "./bus-core.js";
import { CLUSTER_DEFAULTS } from "./defaults.js";
import type { Feed, FeedSink } from "./resumable-watch.js";
import { subjectMatches } from "./subjects.js";

export interface MemoryBackplaneOptions {
  /** Largest message (body plus headers) carried, in bytes. @default 1 MiB (NATS's default) */
  maxPayload?: number;
  /** The backplane's wall clock (entries' `created`, bucket max age). @default Date.now */
  now?: () => number;
}

export interface MemoryBusOptions {
  /** Shown in logs. @default "node-<n>" */
  name?: string;
  /** @default silentLogger */
  logger?: Logger;
  /** Timers of request deadlines and watch retries. @default systemClock */
  clock?: Clock;
}

/** A node's bus on a `MemoryBackplane`. */
export interface MemoryClusterBus extends ClusterBus {
  readonly name: string;
  /** Cuts the node off the hub (true) or restores it (false). */
  setDown(down: boolean): void;
}

interface Node {
  readonly name: string;
  down: boolean;
}

interface SubRecord {
  readonly node: Node;
  readonly pattern: string;
  readonly handler: (msg: RawMessage) => void;
  active: boolean;
}

interface FeedRecord {
  readonly node: Node;
  readonly sink: FeedSink;
  active: boolean;
}

export class MemoryBackplane {
  readonly maxPayload: number;
  readonly #now: () => number;
  readonly #subs = new Set<SubRecord>();
  readonly #buckets = new Map<string, MemoryBucket>();
  readonly #queue: Array<() => void> = [];
  #draining = false;
  #nodes = 0;

  constructor(options: MemoryBackplaneOptions = {}) {
    this.maxPayload = options.maxPayload ?? CLUSTER_DEFAULTS.memoryMaxPayload;
    this.#now = options.now ?? Date.now;
  }

  /** A new node on this hub, connected. */
  connect(options: MemoryBusOptions = {}): MemoryClusterBus {
    const node: Node = { name: options.name ?? `node-${++this.#nodes}`, down: false };
    const core = new BusCore(this.#driver(node), { logger: options.logger, clock: options.clock });
    return Object.assign(core, {
      name: node.name,
      setDown: (down: boolean) => {
        if (core.status === "closed") return;
        node.down = down;
        core.setStatus(down ? "disconnected" : "connected");
      },
    });
  }

  /** Runs `task` from a microtask, after every task queued before it. */
  #enqueue(task: () => void): void {
    this.#queue.push(task);
    if (this.#draining) return;
    this.#draining = true;
    queueMicrotask(() => {
      // Tasks queued while draining run in this same pass, in order.
      for (let i = 0; i < this.#queue.length; i++) this.#queue[i]!();
      this.#queue.length = 0;
      this.#draining = false;
    });
  }

  #driver(node: Node): BusDriver {
    const mine = new Set<SubRecord>();
    return {
      maxPayload: this.maxPayload,
      publish: (subject, data, headers) => this.#deliver(subject, data.slice(), headers, undefined),
      request: (subject, data, headers, _timeoutMs, signal) =>
        new Promise<RawMessage>((resolve, reject) => {
          let settled = false;
          signal.addEventListener("abort", () => {
            settled = true;
          });
          const reply = (answer: Uint8Array, answerHeaders: Record<string, string> | undefined): boolean => {
            const msg: RawMessage = { subject, data: answer.slice(), headers: toMap(answerHeaders) };
            this.#enqueue(() => {
              if (settled || node.down) return;
              settled = true;
              resolve(msg);
            });
            return true;
          };
          if (this.#deliver(subject, data.slice(), headers, reply) === 0) {
            reject(new MusterError(ErrorCode.UNAVAILABLE, `no responders on ${subject}`));
          }
        }),
      subscribe: (pattern, handler): BusSubscription => {
        const rec: SubRecord = { node, pattern, handler, active: true };
        this.#subs.add(rec);
        mine.add(rec);
        return {
          unsubscribe: () => {
            rec.active = false;
            this.#subs.delete(rec);
            mine.delete(rec);
          },
        };
      },
      bucket: async (name, maxAgeMs) => {
        let b = this.#buckets.get(name);
        if (b === undefined) {
          b = new MemoryBucket((task) => this.#enqueue(task), maxAgeMs, this.#now);
          this.#buckets.set(name, b);
        }
        return b.driver(node);
      },
      close: async () => {
        node.down = true;
        for (const rec of mine) {
          rec.active = false;
          this.#subs.delete(rec);
        }
        mine.clear();
      },
    };
  }

  /** Queues `data` for every subscriber of `subject` on a node that is up; how many. */
  #deliver(
    subject: string,
    data: Uint8Array,
    headers: Record<string, string> | undefined,
    reply: RawMessage["reply"],
  ): number {
    let n = 0;
    const map = toMap(headers);
    for (const rec of this.#subs) {
      if (rec.node.down || !subjectMatches(rec.pattern, subject)) continue;
      n++;
      const msg: RawMessage = reply
        ? { subject, data, headers: map, reply }
        : { subject, data, headers: map };
      this.#enqueue(() => {
        if (rec.active && !rec.node.down) rec.handler(msg);
      });
    }
    return n;
  }
}

function toMap(headers: Record<string, string> | undefined): ReadonlyMap<string, string> {
  return new Map(headers ? Object.entries(headers) : []);
}

/** One bucket on the hub: the latest entry of every key, deletion markers included. */
class MemoryBucket {
  readonly #enqueue: (task: () => void) => void;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, KvEntry>();
  readonly #feeds = new Set<FeedRecord>();
  #revision = 0;

  constructor(enqueue: (task: () => void) => void, maxAgeMs: number, now: () => number) {
    this.#enqueue = enqueue;
    this.#maxAgeMs = maxAgeMs;
    this.#now = now;
  }

  driver(node: Node): BucketDriver {
    return {
      get: async (key) => {
        const e = this.#latest(key);
        return e?.operation === "PUT" ? e : undefined;
      },
      create: async (key, value) => {
        const e = this.#latest(key);
        return e === undefined || e.operation !== "PUT" ? this.#write(key, value, "PUT") : undefined;
      },
      update: async (key, value, revision) =>
        this.#latest(key)?.revision === revision ? this.#write(key, value, "PUT") : undefined,
      put: async (key, value) => this.#write(key, value, "PUT"),
      delete: async (key, revision) => {
        if (revision !== undefined && this.#latest(key)?.revision !== revision) return false;
        this.#write(key, new Uint8Array(0), "DEL");
        return true;
      },
      keys: async () => {
        this.#expire();
        return [...this.#entries.values()].filter((e) => e.operation === "PUT").map((e) => e.key);
      },
      open: async (fromRevision, sink) => this.#open(node, fromRevision, sink),
    };
  }

  #open(node: Node, fromRevision: number, sink: FeedSink): Feed {
    this.#expire();
    const rec: FeedRecord = { node, sink, active: true };
    const stored = [...this.#entries.values()]
      .filter((e) => e.revision >= fromRevision)
      .sort((a, b) => a.revision - b.revision);
    for (const e of stored) {
      this.#enqueue(() => {
        if (rec.active) sink.entry(e);
      });
    }
    this.#enqueue(() => {
      if (rec.active) sink.ready();
    });
    this.#feeds.add(rec);
    return {
      stop: () => {
        rec.active = false;
        this.#feeds.delete(rec);
      },
    };
  }

  #latest(key: string): KvEntry | undefined {
    this.#expire();
    return this.#entries.get(key);
  }

  #write(key: string, value: Uint8Array, operation: "PUT" | "DEL"): number {
    this.#expire();
    const entry: KvEntry = {
      key,
      value: value.slice(),
      revision: ++this.#revision,
      operation,
      created: this.#now(),
    };
    // Re-inserted so that the map stays in revision order.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    for (const rec of this.#feeds) {
      if (rec.node.down) continue;
      this.#enqueue(() => {
        if (rec.active && !rec.node.down) rec.sink.entry(entry);
      });
    }
    return entry.revision;
  }

  /** Max age removes entries silently, as nats-server 2.9 does: watches are not told. */
  #expire(): void {
    if (this.#maxAgeMs <= 0) return;
    const oldest = this.#now() - this.#maxAgeMs;
    for (const [key, e] of this.#entries) {
      if (e.created > oldest) break;
      this.#entries.delete(key);
    }
  }
}
