import type { IncomingMessage } from "node:http";
import type { AgentInfo } from "../../presence/presence.js";
import type { ServerFanOut } from "../../rpc/fan-out.js";
import type { RunEvent, RunStatus } from "../../run/events.js";
import type { Readiness } from "../admin-host.js";
import type { EnrolmentRequest } from "../enrolment.js";
import type { FlagChanged, FlagInfo } from "../flags.js";
import type { Attachment } from "../lifecycle.js";
import type { ServerInfo } from "../server-info.js";
import type { CallsHost } from "./calls-http.js";
import { LiveFeed } from "./live-feed.js";
import { type LiveLimits, LiveStreams } from "./live-streams.js";
import { UiFiles } from "./ui-static.js";

/** What the dashboard reads from its server. */
export interface DashboardSource extends CallsHost {
  readonly serverName: string;
  agent(name: string): AgentInfo | undefined;
  agents(): AgentInfo[];
  watchAgents(fn: (name: string) => void): () => void;
  onFlagChange(fn: (change: FlagChanged) => void): () => void;
  onRunEvent(fn: (run: string, e: RunEvent) => void): () => void;
  runs(): RunStatus[];
  enrolments(): EnrolmentRequest[];
  servers(): ServerInfo[];
  readiness(): Readiness;
  flags(): FlagInfo[];
  /** Connections open now (agents, operators, HTTP). */
  connections(): number;
}

/**
 * The web dashboard of a server: its static files (`/ui/`), its live streams
 * (`/api/live/:page`) over the server's event log, and the call console (`POST /api/calls`).
 * Attached to the server's life: it logs the server's own events (ready, draining) and ends
 * every stream when the server stops.
 */
export class Dashboard implements Attachment {
  readonly feed: LiveFeed;
  readonly streams: LiveStreams;
  readonly ui = new UiFiles();
  readonly calls: CallsHost;
  readonly health = "ok" as const;
  readonly #source: DashboardSource;
  #elu = performance.eventLoopUtilization();

  constructor(source: DashboardSource, limits: LiveLimits = {}) {
    this.#source = source;
    this.feed = new LiveFeed(source);
    this.calls = source;
    this.streams = new LiveStreams(
      {
        feed: this.feed,
        maxTargetBytes: source.maxTargetBytes,
        agents: () => source.agents(),
        enrolments: () => source.enrolments(),
        runs: () => source.runs(),
        servers: () => source.servers(),
        readiness: () => source.readiness(),
        flags: () => source.flags(),
        health: () => this.#health(),
      },
      limits,
    );
  }

  async start(): Promise<void> {
    this.feed.server("ready", { server: this.#source.serverName });
  }

  draining(): void {
    this.feed.server("draining", { server: this.#source.serverName });
  }

  async stop(): Promise<void> {
    this.streams.closeAll("the server stops");
    this.feed.close();
  }

  /** Logs a fan-out (called by the server for each one it starts). */
  trackCall(target: string, method: string, by: string, fanOut: ServerFanOut): void {
    this.feed.call({ target, method, by, expected: fanOut.expectedNames.length }, fanOut.done);
  }

  #health(): Record<string, unknown> {
    const elu = performance.eventLoopUtilization(this.#elu);
    this.#elu = performance.eventLoopUtilization();
    const mem = process.memoryUsage();
    return {
      server: this.#source.serverName,
      uptimeS: Math.round(process.uptime()),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      eventLoopUtilization: Math.round(elu.utilization * 1000) / 1000,
      connections: this.#source.connections(),
      liveStreams: this.streams.open,
      logEvents: this.feed.log.size.events,
    };
  }
}

/**
 * True for a request a browser sent from a page of this very server reached by a loopback
 * name (`localhost`, `127.x.x.x`, `[::1]`): how a standalone server tells its own dashboard
 * from a web page of another site (whose requests name another origin, or — by DNS rebinding —
 * another host).
 */
export function fromOwnLoopbackPage(req: IncomingMessage): boolean {
  if (req.headers["sec-fetch-site"] !== "same-origin") return false;
  const host = req.headers.host ?? "";
  const m = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i.exec(host);
  if (m === null) return false;
  const origin = req.headers.origin;
  return origin === undefined || origin === `http://${host}` || origin === `https://${host}`;
}
