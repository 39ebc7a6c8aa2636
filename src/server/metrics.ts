import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { AgentInfo, PresenceEvent } from "../presence/presence.js";
import type { CallOutcome } from "../rpc/types.js";
import type { TrafficCounters } from "../transport/traffic.js";

/** What the metrics read from the server when scraped. */
export interface MetricsSource {
  readonly admission: {
    open: number;
    refused: Readonly<{ max_connections: number; max_connections_per_ip: number; handshake_rate: number }>;
  };
  agents(): AgentInfo[];
  /** Bytes and frames held for replay, summed over every session. */
  replay(): { frames: number; bytes: number };
  onEvent(fn: (e: PresenceEvent) => void): () => void;
  /**
   * Frames and bytes through the listeners, by transport kind (`TrafficStats.entries()` of the
   * stats given to listenAll). Without it the four traffic counters are not exposed.
   */
  traffic?(): Array<[string, TrafficCounters]>;
  /**
   * The server's readiness, as /readyz reports it ("starting", "ready", "degraded", "draining"): exposed as
   * the gauge `muster_ready`, 1 when "ready" or "degraded". Without it `muster_ready` is not exposed.
   */
  readiness?(): string;
}

/** Distinct method names kept as label values; beyond, calls count under `method="other"`. */
const MAX_METHODS = 200;
/** Distinct reasons (auth failures) and roles (denials) kept as label values; beyond, "other". */
const MAX_REASONS = 32;

/** Handshake outcomes: a new session, a resumed one, a resume too late, a refusal. */
export type HandshakeResult = "new" | "resumed" | "expired" | "refused";
const HANDSHAKE_RESULTS: readonly HandshakeResult[] = ["new", "resumed", "expired", "refused"];

/** Label values kept as they come until `max` distinct ones are seen; later ones read "other". */
class BoundedLabel {
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  value(v: string): string {
    if (this.#seen.has(v)) return v;
    if (this.#seen.size >= this.#max) return "other";
    this.#seen.add(v);
    return v;
  }
}

type TrafficField = keyof TrafficCounters;

/** The four traffic counters: name, help, and the field of TrafficCounters each one reads. */
const TRAFFIC: ReadonlyArray<[string, string, TrafficField]> = [
  ["muster_frames_received_total", "Frames received on accepted links, by transport kind.", "framesIn"],
  ["muster_frames_sent_total", "Frames sent on accepted links, by transport kind.", "framesOut"],
  [
    "muster_bytes_received_total",
    "Bytes of the frames received on accepted links (no length prefix or WebSocket framing), by transport kind.",
    "bytesIn",
  ],
  [
    "muster_bytes_sent_total",
    "Bytes of the frames sent on accepted links (no length prefix or WebSocket framing), by transport kind.",
    "bytesOut",
  ],
];

/**
 * The server's Prometheus metrics, on a registry of its own (two servers in one process do
 * not mix). Gauges are read from the server when scraped; counters and the call latency
 * histogram are updated as things happen. Names and labels follow Prometheus conventions:
 * `_total` counters, base units (seconds, bytes), snake_case.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly #calls: Counter<"method" | "outcome">;
  readonly #callSeconds: Histogram<"method">;
  readonly #methods = new BoundedLabel(MAX_METHODS);
  readonly #handshakes: Counter<"result">;
  readonly #authFailures: Counter<"reason">;
  readonly #authReasons = new BoundedLabel(MAX_REASONS);
  readonly #denied: Counter<"role">;
  readonly #deniedRoles = new BoundedLabel(MAX_REASONS);
  readonly #expired: Counter;
  readonly #stop: () => void;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client names these gauges with a `_total` suffix, which Prometheus keeps for
    // counters (promtool refuses them); the handle and request counts are not worth a rename.
    for (const name of [
      "nodejs_active_handles_total",
      "nodejs_active_requests_total",
      "nodejs_active_resources_total",
    ])
      this.registry.removeSingleMetric(name);
    new Gauge({
      name: "muster_connections_open",
      help: "Connections held now (agents, operators, links still in their handshake, HTTP connections).",
      registers,
      collect() {
        this.set(source.admission.open);
      },
    });
    new Counter({
      name: "muster_connections_refused_total",
      help: "Connections refused at admission, by reason.",
      labelNames: ["reason"],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(source.admission.refused)) this.inc({ reason }, n);
      },
    });
    new Gauge({
      name: "muster_agents",
      help: "Agents known to the server, by state (offline: left recently).",
      labelNames: ["state"],
      registers,
      collect() {
        const counts: Record<string, number> = { connected: 0, suspect: 0, resuming: 0, offline: 0 };
        for (const a of source.agents()) counts[a.state] = (counts[a.state] ?? 0) + 1;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "muster_replay_buffer_bytes",
      help: "Bytes of sent frames held for replay until acknowledged, over every session.",
      registers,
      collect() {
        this.set(source.replay().bytes);
      },
    });
    const events = new Counter({
      name: "muster_agent_events_total",
      help: "Agent presence events: join, disconnect, resume, suspect, recover, replace, leave (a leave after expiry or close).",
      labelNames: ["event"],
      registers,
    });
    for (const event of ["join", "disconnect", "resume", "suspect", "recover", "replace", "leave"])
      events.inc({ event }, 0);
    this.#stop = source.onEvent((e) => events.inc({ event: e.type }));
    const traffic = source.traffic?.bind(source);
    if (traffic) {
      for (const [name, help, field] of TRAFFIC) {
        new Counter({
          name,
          help,
          labelNames: ["transport"],
          registers,
          collect() {
            this.reset();
            for (const [transport, counters] of traffic()) this.inc({ transport }, counters[field]);
          },
        });
      }
    }
    const readiness = source.readiness?.bind(source);
    if (readiness) {
      new Gauge({
        name: "muster_ready",
        help: "1 when the server is ready or degraded (as /readyz answers 200), 0 while starting or draining.",
        registers,
        collect() {
          const r = readiness();
          this.set(r === "ready" || r === "degraded" ? 1 : 0);
        },
      });
    }
    this.#handshakes = new Counter({
      name: "muster_handshakes_total",
      help: "Handshakes by result: new session, resumed session, resume after expiry, refused.",
      labelNames: ["result"],
      registers,
    });
    for (const result of HANDSHAKE_RESULTS) this.#handshakes.inc({ result }, 0);
    this.#authFailures = new Counter({
      name: "muster_auth_failures_total",
      help: `Authentications that failed, by reason (after ${MAX_REASONS} distinct reasons, "other").`,
      labelNames: ["reason"],
      registers,
    });
    this.#denied = new Counter({
      name: "muster_permission_denied_total",
      help: `Calls and requests refused to a role or grant, by role (after ${MAX_REASONS} distinct roles, "other").`,
      labelNames: ["role"],
      registers,
    });
    this.#expired = new Counter({
      name: "muster_sessions_expired_total",
      help: "Sessions ended because they were not resumed within the resume window.",
      registers,
    });
    this.#calls = new Counter({
      name: "muster_calls_total",
      help: "Calls from the server to agents (fan-outs count one per agent), by method and outcome.",
      labelNames: ["method", "outcome"],
      registers,
    });
    this.#callSeconds = new Histogram({
      name: "muster_call_duration_seconds",
      help: "Time from the start of a call to its outcome, by method.",
      labelNames: ["method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }

  #method(method: string): string {
    return this.#methods.value(method);
  }

  /** Counts one handshake's result. */
  recordHandshake(result: HandshakeResult): void {
    this.#handshakes.inc({ result });
  }

  /** Counts one failed authentication; `reason` is a short snake_case word (e.g. "expired_token"). */
  recordAuthFailure(reason: string): void {
    this.#authFailures.inc({ reason: this.#authReasons.value(reason) });
  }

  /** Counts one call or request refused for lack of a role or grant, under the caller's role. */
  recordDenied(role: string): void {
    this.#denied.inc({ role: this.#deniedRoles.value(role) });
  }

  /** Counts one session that expired unresumed. */
  recordSessionExpired(): void {
    this.#expired.inc();
  }

  /** Counts one call's outcome (`ok`, `error`, `timeout`, `not_connected`) and its duration. */
  recordCall(method: string, outcome: CallOutcome["status"], durationMs: number): void {
    const m = this.#method(method);
    this.#calls.inc({ method: m, outcome });
    if (outcome === "ok" || outcome === "error") this.#callSeconds.observe({ method: m }, durationMs / 1000);
  }

  /**
   * Counts the outcomes of a fan-out: one label lookup per outcome kind and one for the
   * histogram, not one per agent (a fan-out to 10,000 agents records in about a millisecond).
   */
  recordOutcomes(
    method: string,
    outcomes: Iterable<{ status: CallOutcome["status"]; durationMs: number }>,
  ): void {
    const m = this.#method(method);
    const counts = new Map<CallOutcome["status"], number>();
    const seconds = this.#callSeconds.labels({ method: m });
    for (const o of outcomes) {
      counts.set(o.status, (counts.get(o.status) ?? 0) + 1);
      if (o.status === "ok" || o.status === "error") seconds.observe(o.durationMs / 1000);
    }
    for (const [outcome, n] of counts) this.#calls.inc({ method: m, outcome }, n);
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  close(): void {
    this.#stop();
    this.registry.clear();
  }
}
