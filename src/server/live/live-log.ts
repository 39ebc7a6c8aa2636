import { randomBytes } from "node:crypto";

/** What an event is about: the dashboard's pages each follow some of these. */
export type LiveTopic = "fleet" | "calls" | "runs" | "server";

/** One event of the log, as the live streams send it (`data:` of a server-sent event). */
export interface LiveEvent {
  /** Consecutive from 1 within one log. */
  readonly id: number;
  /** When it was logged, epoch ms. */
  readonly at: number;
  readonly topic: LiveTopic;
  readonly type: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** The event as JSON, made once however many streams send it. */
  readonly json: string;
}

export interface LiveLogLimits {
  /** Events kept for replay. @default 20000 */
  maxEvents?: number;
  /** Bytes of JSON kept for replay. @default 16 MiB */
  maxBytes?: number;
}

/** What `since` finds: the events after an id, or `gap` when some of them are no longer kept. */
export type Since = { kind: "events"; events: LiveEvent[] } | { kind: "gap" };

/**
 * The server's recent events, in order, with consecutive ids, bounded in count and bytes: a
 * live stream that reconnects with the last id it saw replays what it missed, or learns that
 * it must start from a snapshot again (`gap`). `epoch` names this log: ids of another log (a
 * server restarted) are never taken for this one's.
 */
export class LiveLog {
  readonly epoch = randomBytes(6).toString("hex");
  readonly #maxEvents: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  /** Kept events; `#events[i]` has id `#firstId + i`. */
  #events: LiveEvent[] = [];
  #head = 0;
  #firstId = 1;
  #nextId = 1;
  #bytes = 0;
  readonly #listeners = new Set<(e: LiveEvent) => void>();

  constructor(limits: LiveLogLimits = {}, now: () => number = Date.now) {
    this.#maxEvents = Math.max(1, limits.maxEvents ?? 20_000);
    this.#maxBytes = Math.max(1, limits.maxBytes ?? 16 * 1024 * 1024);
    this.#now = now;
  }

  /** The id of the last event logged (0 before the first). */
  get lastId(): number {
    return this.#nextId - 1;
  }

  /** Events kept, and their bytes. */
  get size(): { events: number; bytes: number } {
    return { events: this.#events.length - this.#head, bytes: this.#bytes };
  }

  /** Logs an event and hands it to every listener. */
  append(topic: LiveTopic, type: string, data: Record<string, unknown>): LiveEvent {
    const id = this.#nextId++;
    const at = this.#now();
    const json = JSON.stringify({ id, at, topic, type, data });
    const e: LiveEvent = { id, at, topic, type, data, json };
    this.#events.push(e);
    this.#bytes += json.length;
    while (
      this.#events.length - this.#head > 1 &&
      (this.#events.length - this.#head > this.#maxEvents || this.#bytes > this.#maxBytes)
    ) {
      this.#bytes -= this.#events[this.#head]!.json.length;
      this.#head++;
      this.#firstId++;
    }
    // Drop the evicted slots now and then, not on every append.
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head);
      this.#head = 0;
    }
    for (const fn of this.#listeners) fn(e);
    return e;
  }

  /** The events after `id`, or `gap` when one of them has been dropped (or `id` is not this log's yet). */
  since(id: number): Since {
    if (!Number.isSafeInteger(id) || id < 0 || id > this.lastId) return { kind: "gap" };
    if (id < this.#firstId - 1) return { kind: "gap" };
    return { kind: "events", events: this.#events.slice(this.#head + (id - this.#firstId + 1)) };
  }

  /** The last `n` events kept (fewer when fewer are kept), oldest first. */
  recent(n: number): LiveEvent[] {
    const start = Math.max(this.#head, this.#events.length - Math.max(0, n));
    return this.#events.slice(start);
  }

  /** Calls `fn` with every event logged from now on; returns the unsubscribe. */
  subscribe(fn: (e: LiveEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
}

/** The `id:` of a server-sent event: the log's epoch and the event's id. */
export function eventId(epoch: string, id: number): string {
  return `${epoch}-${id}`;
}

/**
 * The event id a reconnecting stream sent (`Last-Event-ID`), when it names an event of the log
 * of `epoch`; undefined for anything else (absent, malformed, another epoch).
 */
export function parseEventId(header: string | undefined, epoch: string): number | undefined {
  if (header === undefined || header.length > 64) return undefined;
  const m = /^([0-9a-f]{12})-(\d{1,15})$/.exec(header.trim());
  if (m === null || m[1] !== epoch) return undefined;
  return Number(m[2]);
}
