import type { AgentInfo } from "../../presence/presence.js";
import { matcher, parseTarget } from "../../rpc/target.js";
import type { RunStatus } from "../../run/events.js";
import type { Readiness } from "../admin-host.js";
import { type AdminRequest, fail, quote } from "../admin-http.js";
import type { EnrolmentRequest } from "../enrolment.js";
import type { FlagInfo } from "../flags.js";
import type { ServerInfo } from "../server-info.js";
import type { LiveFeed } from "./live-feed.js";
import { eventId, type LiveEvent, parseEventId } from "./live-log.js";
import { SseWriter } from "./sse.js";

/** The pages a live stream is for: `GET /api/live/:page`. */
export const LIVE_PAGES = ["fleet", "events", "runs", "servers"] as const;
export type LivePage = (typeof LIVE_PAGES)[number];

/** What the live streams read from their server. */
export interface LiveHost {
  readonly feed: LiveFeed;
  agents(): AgentInfo[];
  enrolments(): EnrolmentRequest[];
  runs(): RunStatus[];
  servers(): ServerInfo[];
  readiness(): Readiness;
  flags(): FlagInfo[];
  /** This server's key figures: uptime, memory, load, connections, streams. */
  health(): Record<string, unknown>;
  readonly maxTargetBytes: number;
}

export interface LiveLimits {
  /** Live streams open at once on the server; more are refused with 429. @default 64 */
  maxStreams?: number;
  /** Bytes a stream may leave unsent (beyond its snapshot) before it is cut. @default 8 MiB */
  maxBufferedBytes?: number;
  /** How often the servers page gets the servers' figures. @default 2000 */
  serversEveryMs?: number;
}

/** Events the events page starts with. */
const EVENTS_SNAPSHOT = 500;
/** Run events the runs page starts with (the latest runs' intervals, for their charts). */
const RUNS_SNAPSHOT = 5000;

/**
 * The dashboard's live streams, one per page: server-sent events, a snapshot first and then
 * deltas, each delta with an id (`<epoch>-<n>`). A client that reconnects with `Last-Event-ID`
 * gets what it missed from the server's bounded log, or a fresh snapshot when the log no
 * longer holds it — never a gap. Deltas logged in one tick leave in one write.
 */
export class LiveStreams {
  readonly #host: LiveHost;
  readonly #maxStreams: number;
  readonly #maxBuffered: number;
  readonly #serversEveryMs: number;
  readonly #open = new Set<SseWriter>();

  constructor(host: LiveHost, limits: LiveLimits = {}) {
    this.#host = host;
    this.#maxStreams = limits.maxStreams ?? 64;
    this.#maxBuffered = limits.maxBufferedBytes ?? 8 * 1024 * 1024;
    this.#serversEveryMs = limits.serversEveryMs ?? 2000;
  }

  /** Streams open now. */
  get open(): number {
    return this.#open.size;
  }

  /** `GET /api/live/:page` (`?target=` on the fleet page). */
  handle(c: AdminRequest): void {
    const page = c.param as LivePage;
    if (!(LIVE_PAGES as readonly string[]).includes(page)) {
      fail(c.res, 404, "not_found", `no live page ${quote(c.param)}; pages: ${LIVE_PAGES.join(", ")}`);
      return;
    }
    const targetText = c.query.get("target");
    if (targetText !== null && page !== "fleet") {
      fail(c.res, 400, "invalid_argument", `target filters the fleet page only, not ${page}`);
      return;
    }
    const match =
      targetText === null || targetText === ""
        ? undefined
        : matcher(parseTarget(targetText, this.#host.maxTargetBytes));
    if (this.#open.size >= this.#maxStreams) {
      fail(
        c.res,
        429,
        "resource_exhausted",
        `${this.#maxStreams} live streams are open on this server; close one (another tab?)`,
        {
          "retry-after": "5",
        },
      );
      return;
    }
    const header = c.req.headers["last-event-id"];
    const log = this.#host.feed.log;
    const last = parseEventId(typeof header === "string" ? header : undefined, log.epoch);
    const w = new SseWriter(c.res, {}, this.#maxBuffered);
    this.#open.add(w);
    const replay = last === undefined ? undefined : log.since(last);
    if (replay?.kind === "events") this.#deltas(w, page, match, replay.events);
    else this.#snapshot(w, page, match);
    let queue: LiveEvent[] = [];
    const off = log.subscribe((e) => {
      if (queue.length === 0)
        setImmediate(() => {
          const batch = queue;
          queue = [];
          this.#deltas(w, page, match, batch);
        });
      queue.push(e);
    });
    let timer: NodeJS.Timeout | undefined;
    if (page === "servers")
      timer = setInterval(
        () => w.send(JSON.stringify({ type: "servers", ...this.#serverState() })),
        this.#serversEveryMs,
      ).unref();
    w.onClose(() => {
      off();
      if (timer !== undefined) clearInterval(timer);
      this.#open.delete(w);
    });
  }

  /** Ends every stream (the server stops). */
  closeAll(why: string): void {
    for (const w of [...this.#open]) w.close(why);
  }

  #snapshot(w: SseWriter, page: LivePage, match: ((a: AgentInfo) => boolean) | undefined): void {
    const log = this.#host.feed.log;
    const id = eventId(log.epoch, log.lastId);
    let data: string;
    if (page === "fleet") {
      const all = this.#host.agents();
      const agents = match === undefined ? all : all.filter(match);
      data = JSON.stringify({
        type: "snapshot",
        page,
        total: all.length,
        agents,
        enrolments: this.#host.enrolments(),
      });
    } else if (page === "events") {
      const events = log.recent(EVENTS_SNAPSHOT).map((e) => e.json);
      data = `{"type":"snapshot","page":"events","events":[${events.join(",")}]}`;
    } else if (page === "runs") {
      const events = log
        .recent(Number.MAX_SAFE_INTEGER)
        .filter((e) => e.topic === "runs")
        .slice(-RUNS_SNAPSHOT)
        .map((e) => e.json);
      data = `{"type":"snapshot","page":"runs","runs":${JSON.stringify(this.#host.runs())},"events":[${events.join(",")}]}`;
    } else {
      data = JSON.stringify({ type: "snapshot", page, ...this.#serverState(), flags: this.#host.flags() });
    }
    // A snapshot may be larger than the usual bound: it is allowed on top of it.
    w.allow(data.length);
    w.send(data, id);
  }

  #deltas(
    w: SseWriter,
    page: LivePage,
    match: ((a: AgentInfo) => boolean) | undefined,
    events: readonly LiveEvent[],
  ): void {
    if (w.closed) return;
    const epoch = this.#host.feed.log.epoch;
    const out: Array<{ data: string; id: string }> = [];
    for (const e of events) {
      const id = eventId(epoch, e.id);
      if (!wanted(page, e)) {
        // The id still moves on, so that a reconnect does not replay what this page skips.
        if (e === events[events.length - 1]) out.push({ data: `{"type":"skip"}`, id });
        continue;
      }
      if (page === "fleet" && match !== undefined && e.type === "agent") {
        const agent = e.data.agent as AgentInfo;
        if (!match(agent)) {
          out.push({
            data: JSON.stringify({
              id: e.id,
              at: e.at,
              topic: e.topic,
              type: "gone",
              data: { name: agent.name },
            }),
            id,
          });
          continue;
        }
      }
      out.push({ data: e.json, id });
    }
    w.sendAll(out);
  }

  #serverState(): Record<string, unknown> {
    return { servers: this.#host.servers(), readiness: this.#host.readiness(), health: this.#host.health() };
  }
}

function wanted(page: LivePage, e: LiveEvent): boolean {
  if (page === "fleet") return e.topic === "fleet";
  if (page === "servers") return e.topic === "server";
  if (page === "runs") return e.topic === "runs";
  return true;
}
