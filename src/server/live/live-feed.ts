import type { AgentInfo, AgentState } from "../../presence/presence.js";
import type { OutcomeSummary } from "../../rpc/types.js";
import type { RunEvent } from "../../run/events.js";
import type { FlagChanged } from "../flags.js";
import { LiveLog, type LiveLogLimits } from "./live-log.js";
import { liveRunEvent } from "./run-events.js";

/** What the feed reads from its server. */
export interface LiveSource {
  agent(name: string): AgentInfo | undefined;
  agents(): AgentInfo[];
  /** Calls `fn` with the name of each agent whose listing may have changed (cluster-wide); returns the unsubscribe. */
  watchAgents(fn: (name: string) => void): () => void;
  onFlagChange(fn: (change: FlagChanged) => void): () => void;
  /** Calls `fn` with every event of every run submitted to this server; returns the unsubscribe. */
  onRunEvent(fn: (run: string, e: RunEvent) => void): () => void;
}

/** A fan-out as the feed reports it. */
export interface CallReport {
  target: string;
  method: string;
  /** Who asked: a token's subject, the application, a run. */
  by: string;
  expected: number;
}

/** Longest target text an event keeps (a target may be 64 KiB of names). */
const TARGET_SHOWN = 1000;

function clip(text: string): string {
  return text.length > TARGET_SHOWN ? `${text.slice(0, TARGET_SHOWN - 1)}…` : text;
}

/** Changes of agents are gathered for this long, then logged (one event per agent changed). */
const FLEET_BATCH_MS = 50;

/**
 * The server's live events, logged for the dashboard's streams: the fleet (one `agent` event
 * with the whole row, or `gone`, per agent whose listing changed, with the state it was in),
 * fan-outs (`call-start`, `call-done`), runs (each run event, an interval as its figures), and
 * the server's own (`flag`, `ready`, `draining`). Changes of one
 * agent within FLEET_BATCH_MS make one event: an agent that flaps fast costs one event a batch.
 */
export class LiveFeed {
  readonly log: LiveLog;
  readonly #source: LiveSource;
  /** The state each listed agent was last logged in: what `was` of its next event says. */
  readonly #states = new Map<string, AgentState>();
  readonly #changed = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #calls = 0;
  readonly #offs: Array<() => void> = [];

  constructor(source: LiveSource, limits: LiveLogLimits = {}) {
    this.#source = source;
    this.log = new LiveLog(limits);
    for (const a of source.agents()) this.#states.set(a.name, a.state);
    this.#offs.push(
      source.watchAgents((name) => {
        this.#changed.add(name);
        this.#timer ??= setTimeout(() => this.#flush(), FLEET_BATCH_MS).unref();
      }),
      source.onFlagChange((c) =>
        this.log.append("server", "flag", {
          flag: c.flag,
          from: c.from,
          to: c.to,
          by: c.by,
          ...(c.server !== undefined ? { server: c.server } : {}),
        }),
      ),
      source.onRunEvent((run, e) => this.log.append("runs", e.t, liveRunEvent(run, e))),
    );
  }

  /** Logs a server event (readiness, shutdown, caches cleared) with what it says. */
  server(type: string, data: Record<string, unknown>): void {
    this.log.append("server", type, data);
  }

  /** Logs a fan-out's start now and its counts when `done` settles; returns the call's id in the log. */
  call(report: CallReport, done: Promise<{ summary: OutcomeSummary }>): number {
    const call = ++this.#calls;
    const started = performance.now();
    const target = clip(report.target);
    this.log.append("calls", "call-start", { call, ...report, target });
    done.then(
      (r) =>
        this.log.append("calls", "call-done", {
          call,
          method: report.method,
          target,
          ms: Math.round(performance.now() - started),
          summary: r.summary,
        }),
      () => {},
    );
    return call;
  }

  /** Logs what is pending now (tests, and a stream that must not wait for the batch). */
  flush(): void {
    this.#flush();
  }

  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const off of this.#offs.splice(0)) off();
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const names = [...this.#changed];
    this.#changed.clear();
    for (const name of names) {
      const was = this.#states.get(name);
      const agent = this.#source.agent(name);
      if (agent === undefined) {
        if (was === undefined) continue;
        this.#states.delete(name);
        this.log.append("fleet", "gone", { name, was });
        continue;
      }
      this.#states.set(name, agent.state);
      this.log.append("fleet", "agent", { agent, ...(was !== undefined ? { was } : {}) });
    }
  }
}
