import type { Revocation } from "../auth/revocations.js";
import type { AgentInfo, PresenceEvent } from "../presence/presence.js";
import type { ServerFanOut } from "../rpc/fan-out.js";
import type { MusterStream, StreamHandler, StreamOptions } from "../rpc/stream.js";
import type { Target } from "../rpc/target.js";
import type { CallOptions, Handler } from "../rpc/types.js";
import type { RunService } from "../run/run-service.js";
import type { TextListener } from "../text/endpoint.js";
import type { TextService } from "../text/service.js";
import type { Listener, Transport } from "../transport/types.js";
import type { Readiness } from "./admin-host.js";
import type { EnrolmentRequest } from "./enrolment.js";
import type { RuntimeFlags } from "./flags.js";
import type { DrainResult } from "./lifecycle.js";
import type { ServerMetrics } from "./metrics.js";
import type { ServerInfo } from "./server-info.js";
import type { EnrolmentDecision, RevocationOutcome } from "./shared-ops.js";

/** A muster server: accepts agents and operators, calls agents, answers their calls. */
export interface MusterServer {
  /** Binds every listener in `options.listen`. Resolves when all listen. */
  start(): Promise<void>;
  /** The bound listeners (after `start`). */
  readonly listeners: readonly Listener[];
  /** Registers a method that agents can call on the server. */
  handle<Req = unknown, Res = unknown>(method: string, handler: Handler<Req, Res>): this;
  /**
   * Calls `method` on every agent of `target` (see `parseTarget` for the string forms).
   * The expected set is fixed now; every expected agent gets exactly one outcome.
   */
  call<T = unknown>(
    target: string | Target,
    method: string,
    request?: unknown,
    options?: CallOptions,
  ): ServerFanOut<T>;
  /** Calls one agent and resolves with its result; rejects with a MusterError. */
  callAgent<T = unknown>(name: string, method: string, request?: unknown, options?: CallOptions): Promise<T>;
  /** Registers a stream that agents (and operators, through `muster.stream`) can open on the server. */
  handleStream<Req = unknown, Item = unknown>(name: string, handler: StreamHandler<Req, Item>): this;
  /**
   * Opens stream `name` on agent `agent`. Errors (not connected, no such stream) arrive through
   * the iteration.
   */
  openStream<T = unknown>(
    agent: string,
    name: string,
    request?: unknown,
    options?: StreamOptions,
  ): MusterStream<T>;
  /** Every known agent (live, then recently offline). */
  agents(): AgentInfo[];
  /** One agent, or undefined. */
  agent(name: string): AgentInfo | undefined;
  /** Presence events from now on; `break` out of the loop to stop. */
  events(): AsyncIterableIterator<PresenceEvent>;
  /** Calls `fn` on every presence event; returns a function that stops it. */
  onEvent(fn: (e: PresenceEvent) => void): () => void;
  /** Hands over a connection from a custom listener; it starts with the handshake. */
  accept(transport: Transport): void;
  /** Connections open now, and those refused at admission since start, by reason. */
  readonly admission: {
    open: number;
    refused: Readonly<{ max_connections: number; max_connections_per_ip: number; handshake_rate: number }>;
  };
  /**
   * The server's text service: its own text commands (`server.text.on("DEPLOY", …)`) and the
   * router that forwards `agent/COMMAND` lines to agents.
   */
  readonly text: TextService;
  /** `starting` until `start` resolves, `ready`, then `draining` once `close` is called. */
  readonly readiness: Readiness;
  /** The server's Prometheus metrics (also served at /metrics). */
  readonly metrics: ServerMetrics;
  /** The URL of the separate admin listener (`admin.listen`), after `start`. */
  readonly adminUrl: string | undefined;
  /** The bound text endpoints (after `start`). */
  readonly textListeners: readonly TextListener[];
  /**
   * Graceful shutdown: `/readyz` turns `draining`, new sessions are refused with a retry hint
   * (resumes of existing ones are still taken), new calls are refused, calls and streams in
   * flight get `timeoutMs` (default `drainTimeoutMs`) to finish; then the server closes, telling
   * every agent to reconnect elsewhere. Resolves when closed; calling it again returns the same.
   */
  drain(options?: { timeoutMs?: number }): Promise<DrainResult>;
  /** Resolves when the server has closed (by `close`, `drain` or `/api/shutdown`). */
  readonly closed: Promise<void>;
  /** Runtime settings, readable and changeable live (also at /api/flags). */
  readonly flags: RuntimeFlags;
  /**
   * Enrolment requests waiting for a decision (servers with `auth.approve`); in a cluster,
   * those of every server, each with the server holding it (`server`).
   */
  pendingEnrolments(): EnrolmentRequest[];
  /** The servers of its cluster (`cluster` option), or this server alone. */
  servers(): ServerInfo[];
  /** Coordinated runs submitted to this server (`muster run --server`): list and stop them. */
  readonly runs: Pick<RunService, "list" | "stopAll">;
  /**
   * Accepts or rejects a waiting enrolment request; `by` is logged. `fingerprint` chooses among
   * several agents asking for the same name (required then: INVALID_ARGUMENT without it).
   */
  decideEnrolment(
    action: "accept" | "reject",
    name: string,
    by?: string,
    fingerprint?: string,
  ): EnrolmentRequest;
  /**
   * As `decideEnrolment`, on whichever server of the cluster holds the request (the one the
   * agent dialed): here, or relayed to it. Resolves with the request and the server that
   * applied the decision; NOT_FOUND when no server holds it (after at most about 2 s). Not in
   * a cluster: `decideEnrolment` on this server.
   */
  decideEnrolmentInCluster(
    action: "accept" | "reject",
    name: string,
    by?: string,
    fingerprint?: string,
  ): Promise<EnrolmentDecision>;
  /**
   * Revokes token id `id` (`by` is logged and listed): the sessions using it end at once and it
   * is refused from then on; written to the revocations file when the server has one, and in a
   * cluster to every server (a server starting later learns it too). UNIMPLEMENTED on a server
   * without a revocation list (`auth.revocations`); INVALID_ARGUMENT for a malformed id.
   */
  revoke(id: string, reason?: string, by?: string): Promise<RevocationOutcome>;
  /** The token ids revoked on this server: its file's, and in a cluster the cluster's. */
  revocations(): Revocation[];
  /** Stops listening, ends every session (pending calls fail with CLOSED), closes links. */
  close(): Promise<void>;
}
