import type { IncomingMessage, ServerResponse } from "node:http";
import { hostname } from "node:os";
import type { Revocation } from "../auth/revocations.js";
import { ClusterNode } from "../cluster/cluster-node.js";
import { checkClusterName } from "../cluster/node-subjects.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { checkIpv6PrefixBits } from "../internal/address-key.js";
import { type Clock, systemClock } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { optionLimit } from "../internal/limits.js";
import { truncateForLog } from "../internal/log-safe.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { VERSION } from "../internal/version.js";
import type { AgentInfo, PresenceEvent } from "../presence/presence.js";
import type { ServerFanOut } from "../rpc/fan-out.js";
import type { MusterStream, StreamHandler, StreamOptions } from "../rpc/stream.js";
import { formatTarget, type Target } from "../rpc/target.js";
import type { CallOptions, Handler, PeerInfo } from "../rpc/types.js";
import { endpointCaller } from "../run/instance-port.js";
import { RunService } from "../run/run-service.js";
import { resolveSessionLimits, type SessionLimits, type SessionState } from "../session/session.js";
import type { TextListener } from "../text/endpoint.js";
import { TextService } from "../text/service.js";
import type { HttpLimits } from "../transport/http-server.js";
import { TrafficStats } from "../transport/traffic.js";
import type { Listener, Transport, TransportCloseInfo } from "../transport/types.js";
import type { DecodeLimits } from "../wire/codec.js";
import {
  type CloseBody,
  type CloseCode,
  HEADER_BYTES,
  type HelloBody,
  type WelcomeServers,
} from "../wire/frame.js";
import { createAdminHandler } from "./admin.js";
import type { AdminHost, AdminIdentity, Readiness } from "./admin-host.js";
import { Admission } from "./admission.js";
import { AuthGate, type Identity, roleCovers } from "./auth-gate.js";
import type { EnrolmentRequest } from "./enrolment.js";
import { RuntimeFlags } from "./flags.js";
import { Fleet } from "./fleet.js";
import { Handshake, type Takeover } from "./handshake.js";
import { httpLimits, resolveAllowedOrigins } from "./http-guard.js";
import { type Attachment, type DrainResult, Lifecycle } from "./lifecycle.js";
import { Dashboard } from "./live/dashboard.js";
import { ServerMetrics } from "./metrics.js";
import type { MusterServer } from "./muster-server.js";
import { operatorHandlers, operatorStreams, originOf, relayer, relayLimiter } from "./operator-methods.js";
import type { ServerOptions } from "./options.js";
import type { Peer, PeerHost } from "./peer.js";
import type { RelayGate, RelayLimiter } from "./relay-limiter.js";
import { FleetRouter, LocalReach, type Reach, type Router } from "./router.js";
import { type RpcLimits, resolveRpcLimits } from "./rpc-limits.js";
import { defineServerFlags } from "./server-flags.js";
import type { ServerInfo } from "./server-info.js";
import { type EnrolmentDecision, type RevocationOutcome, SharedOps } from "./shared-ops.js";
import { createTextGuard } from "./text-access.js";
import { createTextRouter } from "./text-router.js";

export type { DrainResult, HandoffResult } from "./lifecycle.js";
export type { MusterServer } from "./muster-server.js";

/** Creates a server. Call `start()` to listen. */
export function createServer(options: ServerOptions = {}): MusterServer {
  return new Server(options);
}

/**
 * The composition root: it resolves the options and wires the parts — the handshake (from a
 * connection to a session), the fleet (who is connected), the router (calls and streams to
 * agents) and the lifecycle (listeners, drain, close) — and answers for them as one server.
 */
class Server implements MusterServer, PeerHost {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Shared by every session, and changed in place by runtime flags (sessions read it live). */
  readonly sessionLimits: { -readonly [K in keyof SessionLimits]: SessionLimits[K] };
  /** Decoding limits shared by every peer. */
  readonly decodeLimits: Readonly<Required<DecodeLimits>>;
  readonly maxFrameBytes: number;
  callTimeoutMs: number;
  resumeWindowMs: number;
  drainTimeoutMs: number;
  readonly standalone: boolean;
  readonly metricsPublic: boolean;
  readonly flags: RuntimeFlags;
  readonly maxIncomingCalls: number;
  readonly rpcLimits: RpcLimits;
  readonly serverName: string;
  readonly text: TextService;
  readonly metrics: ServerMetrics;
  readonly #o: ServerOptions;
  readonly #gate: AuthGate;
  readonly #admission: Admission;
  readonly #fleet: Fleet;
  readonly #handshake: Handshake;
  readonly #reach: Reach;
  readonly #cluster: ClusterNode | undefined;
  readonly #shared: SharedOps;
  readonly announce: (() => WelcomeServers | undefined) | undefined;
  /** In a cluster, resume tokens start with this server's id (`<id>.`): another server can tell whose session it is. */
  tokenPrefix = "";
  readonly takeover: Takeover | undefined;
  readonly #router: Router;
  readonly #lifecycle: Lifecycle;
  readonly #handlers = new Map<string, Handler>();
  readonly #operatorHandlers: Map<string, Handler>;
  readonly #streamHandlers = new Map<string, StreamHandler>();
  readonly #operatorStreams: Map<string, StreamHandler>;
  /** Coordinated runs submitted here. */
  readonly runs: RunService;
  /** The web dashboard and its live event log. */
  readonly dashboard: Dashboard;
  readonly #relays: RelayLimiter;

  constructor(options: ServerOptions) {
    this.#o = options;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.serverName = options.name ?? hostname();
    this.callTimeoutMs = options.callTimeoutMs ?? DEFAULTS.callTimeoutMs;
    this.maxIncomingCalls = options.maxIncomingCalls ?? 1000;
    this.maxFrameBytes = optionLimit(
      options.maxFrameBytes,
      DEFAULTS.maxFrameBytes,
      "maxFrameBytes",
      HEADER_BYTES,
    );
    this.decodeLimits = Object.freeze({
      maxJsonDepth: optionLimit(options.maxJsonDepth, DEFAULTS.maxJsonDepth, "maxJsonDepth", 1),
      maxHelloBytes: optionLimit(options.maxHelloBytes, DEFAULTS.maxHelloBytes, "maxHelloBytes", 1),
    });
    this.standalone = options.standalone === true;
    this.metricsPublic = options.admin?.metricsPublic === true;
    this.resumeWindowMs = optionLimit(options.resumeWindowMs, DEFAULTS.resumeWindowMs, "resumeWindowMs", 1);
    this.drainTimeoutMs = optionLimit(options.drainTimeoutMs, DEFAULTS.drainTimeoutMs, "drainTimeoutMs");
    this.sessionLimits = {
      ...resolveSessionLimits({
        maxJsonDepth: this.decodeLimits.maxJsonDepth,
        replayMaxFrames: options.replayMaxFrames,
        replayMaxBytes: options.replayMaxBytes,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        suspectAfterMs: options.suspectAfterMs,
        deadAfterMs: options.deadAfterMs,
      }),
    };
    this.rpcLimits = resolveRpcLimits(options);
    const relays = relayLimiter(this);
    this.#relays = relays;
    this.#operatorHandlers = operatorHandlers(this, relays);
    this.#operatorStreams = operatorStreams(this, relays);
    this.runs = new RunService({
      logger: this.logger,
      agents: () => this.agents(),
      callAgent: (name, method, request, o) => this.callAgent(name, method, request, o),
      openStream: (agent, name, request, o) => this.openStream(agent, name, request, o),
      operator: (peer) => {
        const op = this.#fleet.operatorOf(peer);
        return op === undefined || op.ended ? undefined : endpointCaller(op.rpc);
      },
      authorizeRelay: (peer, method) => this.authorizeRelay(peer, method),
      onPresence: (fn) => this.onEvent(fn),
    });
    for (const [name, h] of this.runs.methods()) this.#operatorHandlers.set(name, h);
    for (const [name, h] of this.runs.streams()) this.#operatorStreams.set(name, h);
    this.#admission = new Admission(
      {
        maxConnections: optionLimit(options.maxConnections, DEFAULTS.maxConnections, "maxConnections"),
        maxConnectionsPerIp: optionLimit(
          options.maxConnectionsPerIp,
          DEFAULTS.maxConnectionsPerIp,
          "maxConnectionsPerIp",
        ),
        handshakesPerSecond: optionLimit(
          options.handshakesPerSecond,
          DEFAULTS.handshakesPerSecond,
          "handshakesPerSecond",
        ),
        handshakeBurst: Math.max(
          1,
          optionLimit(options.handshakeBurst, DEFAULTS.handshakeBurst, "handshakeBurst"),
        ),
        maxRetryAfterMs: DEFAULTS.maxRetryAfterMs,
        ipv6PrefixBits: checkIpv6PrefixBits(options.ipv6PrefixBits),
      },
      this.clock.now(),
    );
    const http: Required<HttpLimits> = httpLimits(
      options,
      this.#admission,
      () => this.clock.now(),
      this.logger,
    );
    const traffic = new TrafficStats();
    this.#gate = new AuthGate(options.auth, this.standalone, {
      logger: this.logger.child({ component: "auth" }),
      onFailure: (reason) => this.metrics.recordAuthFailure(reason),
      now: () => this.clock.now(),
      keyOf: (address) => this.#admission.keyOf(address),
    });
    this.#fleet = new Fleet(this, this.#gate, {
      slowBytes: optionLimit(options.slowConsumerBytes, DEFAULTS.slowConsumerBytes, "slowConsumerBytes"),
      slowMs: optionLimit(options.slowConsumerMs, DEFAULTS.slowConsumerMs, "slowConsumerMs"),
      offlineRetentionMs: options.offlineRetentionMs,
    });
    this.metrics = new ServerMetrics({
      admission: this.#admission,
      agents: () => this.agents(),
      replay: () => this.#fleet.replayTotals(),
      onEvent: (fn) => this.#fleet.presence.on(fn),
      traffic: () => traffic.entries(),
    });
    this.#handshake = new Handshake(
      this,
      this.#fleet,
      this.#gate,
      this.#admission,
      options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
    );
    const local = new LocalReach(this.#fleet);
    this.#shared = new SharedOps({
      serverName: this.serverName,
      standalone: this.standalone,
      revocations: options.auth?.revocations,
      gate: this.#gate,
      fleet: this.#fleet,
      logger: this.logger,
      shared: () => this.#cluster?.shared,
    });
    const attachments: Attachment[] = [];
    if (options.cluster === undefined) this.#reach = local;
    else {
      this.#cluster = new ClusterNode({
        bus: options.cluster.bus,
        clusterName: checkClusterName(options.cluster.name ?? "muster"),
        serverName: this.serverName,
        logger: this.logger.child({ component: "cluster" }),
        fleet: this.#fleet,
        local,
        agents: () => this.#fleet.liveAgents,
        advertiseHost: options.cluster.advertiseHost,
        advertise: options.cluster.advertise,
        refreshMs: options.cluster.refreshMs,
        shared: this.#shared.host(() => this.flags),
      });
      this.#reach = this.#cluster.reach;
      this.tokenPrefix = `${this.#cluster.id}.`;
      attachments.push(this.#cluster);
    }
    const node = this.#cluster;
    this.takeover = node?.handoff;
    this.announce = node !== undefined ? () => node.welcomeServers() : options.announce;
    this.#router = new FleetRouter(this, this.#fleet, this.#reach);
    this.flags = defineServerFlags(new RuntimeFlags(this.logger), this, options);
    this.text = new TextService({
      logger: this.logger.child({ component: "text" }),
      hooks: options.text?.hooks ?? {},
      router: createTextRouter(this, {
        serverName: this.serverName,
        timeoutMs: optionLimit(
          options.text?.deliveryTimeoutMs,
          this.callTimeoutMs,
          "text.deliveryTimeoutMs",
          1,
        ),
        logger: this.logger,
      }),
      guard: createTextGuard(this.#gate, {
        openCommands: options.text?.openCommands,
        logger: this.logger.child({ component: "text" }),
      }),
    });
    this.dashboard = new Dashboard(
      {
        serverName: this.serverName,
        maxTargetBytes: this.rpcLimits.maxTargetBytes,
        callTimeoutMs: this.callTimeoutMs,
        agent: (name) => this.agent(name),
        agents: () => this.agents(),
        watchAgents: (fn) => this.watchAgents(fn),
        onFlagChange: (fn) => this.flags.onChange(fn),
        onRunEvent: (fn) => this.runs.watch(fn),
        runs: () => this.runs.list(),
        enrolments: () => this.pendingEnrolments(),
        servers: () => this.servers(),
        readiness: () => this.#lifecycle.readiness,
        flags: () => this.flags.list(),
        connections: () => this.#admission.open,
        callFor: (who, target, method, args, o) => this.#callFor(who, target, method, args, o),
      },
      options.dashboard,
    );
    attachments.push(this.dashboard);
    this.#lifecycle = new Lifecycle({
      options,
      clock: this.clock,
      logger: this.logger,
      maxFrameBytes: this.maxFrameBytes,
      decodeLimits: this.decodeLimits,
      standalone: this.standalone,
      sessionLimits: this.sessionLimits,
      http,
      allowedOrigins: resolveAllowedOrigins(options.allowedOrigins, this.standalone),
      traffic,
      text: this.text,
      gate: this.#gate,
      fleet: this.#fleet,
      handshake: this.#handshake,
      metrics: this.metrics,
      adminHandler: () => this.#adminHandler(),
      accept: (t) => this.accept(t),
      attachments,
    });
  }

  // --- the lifecycle ---------------------------------------------------------------------------

  get readiness(): Readiness {
    return this.#lifecycle.readiness;
  }
  get adminUrl(): string | undefined {
    return this.#lifecycle.adminUrl;
  }
  get textListeners(): readonly TextListener[] {
    return this.#lifecycle.textListeners;
  }
  get listeners(): readonly Listener[] {
    return this.#lifecycle.listeners;
  }
  get isClosed(): boolean {
    return this.#lifecycle.isClosed;
  }
  get isDraining(): boolean {
    return this.#lifecycle.isDraining;
  }
  get closed(): Promise<void> {
    return this.#lifecycle.closed;
  }
  /** Connections refused at admission, by reason, and connections open now. */
  get admission(): { open: number; refused: Readonly<Admission["refused"]> } {
    return { open: this.#admission.open, refused: { ...this.#admission.refused } };
  }

  start(): Promise<void> {
    return this.#lifecycle.start();
  }

  drain(options: { timeoutMs?: number } = {}): Promise<DrainResult> {
    this.runs.stopAll("the server is draining");
    return this.#lifecycle.drain(options, this.drainTimeoutMs);
  }

  close(): Promise<void> {
    this.runs.stopAll("the server is closing");
    return this.#lifecycle.close();
  }

  accept(transport: Transport): void {
    this.#handshake.accept(transport);
  }

  // --- handlers ----------------------------------------------------------------------------------

  handle<Req, Res>(method: string, handler: Handler<Req, Res>): this {
    if (method.startsWith("muster.")) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `method names starting with "muster." are reserved`);
    }
    this.#handlers.set(method, handler as Handler);
    return this;
  }

  handlersFor(role: HelloBody["role"]): ReadonlyMap<string, Handler> {
    return role === "operator" ? this.#operatorHandlers : this.#handlers;
  }

  handleStream<Req, Item>(name: string, handler: StreamHandler<Req, Item>): this {
    if (name.startsWith("muster.")) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `stream names starting with "muster." are reserved`);
    }
    this.#streamHandlers.set(name, handler as StreamHandler);
    return this;
  }

  streamHandlersFor(role: HelloBody["role"]): ReadonlyMap<string, StreamHandler> {
    return role === "operator" ? this.#operatorStreams : this.#streamHandlers;
  }

  // --- calls and streams to agents (the router) ----------------------------------------------

  call<T>(
    target: string | Target,
    method: string,
    request?: unknown,
    options: CallOptions = {},
    gate?: RelayGate,
  ): ServerFanOut<T> {
    const fanOut = this.#router.call<T>(target, method, request, options, gate);
    const o = options.origin;
    const shown = typeof target === "string" ? target : formatTarget(target);
    this.dashboard.trackCall(shown, method, o?.subject ?? o?.name ?? "the application", fanOut);
    return fanOut;
  }

  /** A dashboard user's fan-out: their grants checked, counted against their relays per agent. */
  #callFor(
    who: AdminIdentity,
    target: Target,
    method: string,
    args: unknown,
    o: { timeoutMs: number; signal: AbortSignal },
  ): ServerFanOut {
    const id: Identity = {
      role: who.role,
      subject: who.subject,
      via: this.standalone ? "standalone" : "token",
      ...(who.methods !== undefined ? { methods: who.methods } : {}),
    };
    // Admitted as an operator's relayed call (muster.call) is: the same grants, origin and relay limits.
    const peer: PeerInfo = {
      role: "operator",
      name: "dashboard",
      labels: {},
      sessionId: "",
      remoteAddress: "",
      identity: id,
    };
    this.authorizeRelay(peer, method);
    const { key, label } = relayer(peer);
    const options = { ...o, origin: originOf(peer, this.serverName) };
    return this.call(target, method, args, options, this.#relays.gate(key, label));
  }

  callAgent<T>(name: string, method: string, request?: unknown, options: CallOptions = {}): Promise<T> {
    return this.#router.callAgent<T>(name, method, request, options);
  }

  openStream<T>(
    agent: string,
    name: string,
    request?: unknown,
    options: StreamOptions = {},
  ): MusterStream<T> {
    return this.#router.openStream<T>(agent, name, request, options);
  }

  // --- who is connected (the fleet) -------------------------------------------------------------

  agents(): AgentInfo[] {
    return [...this.#reach.agents(), ...this.#shared.enrolmentRows()];
  }

  /** The cluster's servers, or this one alone. */
  servers(): ServerInfo[] {
    if (this.#cluster !== undefined) return this.#cluster.servers();
    return [
      {
        name: this.serverName,
        urls: this.listeners.map((l) => l.url),
        state: "self",
        agents: this.#fleet.liveAgents,
        lagMs: 0,
        version: VERSION,
        lastHeartbeatMs: 0,
      },
    ];
  }

  agent(name: string): AgentInfo | undefined {
    return this.#reach.agent(name) ?? this.#shared.enrolmentRows().find((r) => r.name === name);
  }

  watchAgents(fn: (name: string) => void): () => void {
    return this.#reach.watch(fn);
  }

  events(): AsyncIterableIterator<PresenceEvent> {
    return this.#fleet.presence.events();
  }

  onEvent(fn: (e: PresenceEvent) => void): () => void {
    return this.#fleet.presence.on(fn);
  }

  pendingEnrolments(): EnrolmentRequest[] {
    return this.#shared.pendingEnrolments();
  }

  decideEnrolmentInCluster(
    action: "accept" | "reject",
    name: string,
    by = "the application",
    fingerprint?: string,
  ): Promise<EnrolmentDecision> {
    return this.#shared.decideEnrolment(action, name, by, fingerprint);
  }

  revoke(id: string, reason?: string, by = "the application"): Promise<RevocationOutcome> {
    return this.#shared.revoke(id, reason, by);
  }

  revocations(): Revocation[] {
    return this.#shared.revoked();
  }

  decideEnrolment(
    action: "accept" | "reject",
    name: string,
    by = "the application",
    fingerprint?: string,
  ): EnrolmentRequest {
    return this.#gate.decide(action, name, by, Date.now(), fingerprint);
  }

  /** Tells every connected agent a new setting (agents that predate `muster.config` ignore it). */
  pushConfig(config: { heartbeatIntervalMs: number }): void {
    this.#fleet.pushConfig(config);
  }

  // --- the peers' hooks (PeerHost) ------------------------------------------------------------

  onPeerState(peer: Peer, state: SessionState, previous: SessionState): void {
    this.#fleet.onPeerState(peer, state, previous);
  }

  onPeerLinkDown(peer: Peer, info: TransportCloseInfo): void {
    this.#fleet.onPeerLinkDown(peer, info);
  }

  onPeerClose(peer: Peer, close: CloseBody): void {
    this.#fleet.onPeerClose(peer, close);
  }

  dropLink(peer: Peer, code: CloseCode, message: string): void {
    this.#fleet.dropLink(peer, code, message);
  }

  // --- the admin API's view (AdminHost) -------------------------------------------------------

  /** The admin API's view of this server. */
  #adminHandler(): (req: IncomingMessage, res: ServerResponse) => void {
    return createAdminHandler(this.#adminHost());
  }

  #adminHost(): AdminHost {
    return {
      logger: this.logger,
      metrics: this.metrics,
      standalone: this.standalone,
      metricsPublic: this.metricsPublic,
      serverName: this.serverName,
      flags: this.flags,
      readiness: () => this.#lifecycle.readiness,
      authenticate: (req: IncomingMessage) => this.#gate.checkHttp(req),
      agents: () => this.agents(),
      servers: () => this.servers(),
      agentDetails: (name: string) => this.agentDetails(name),
      caches: () => this.caches(),
      clearCache: (name: string | undefined, who: AdminIdentity) => this.clearCache(name, who),
      shutdown: (who: AdminIdentity) => this.shutdown(who),
      enrolments: () => this.pendingEnrolments(),
      decideEnrolment: (action, name, who, fingerprint) =>
        this.decideEnrolmentInCluster(action, name, who.subject, fingerprint),
      revocations: () => this.revocations(),
      revoke: (id, reason, who) => this.revoke(id, reason, who.subject),
      dashboard: this.dashboard,
    };
  }

  agentDetails(name: string): Record<string, unknown> | undefined {
    const peer = this.#fleet.live(name);
    const info = this.agent(name);
    if (info === undefined) return undefined;
    if (peer === undefined) return { ...info };
    const s = peer.session;
    const id = peer.identity;
    return {
      ...info,
      identity: {
        role: id.role,
        subject: id.subject,
        via: id.via,
        ...(id.tokenId !== undefined ? { tokenId: id.tokenId } : {}),
        ...(id.expiresAt !== undefined ? { expiresAt: new Date(id.expiresAt).toISOString() } : {}),
        ...(id.methods !== undefined ? { methods: id.methods } : {}),
      },
      session: {
        state: s.state,
        lastSent: s.lastSent,
        lastReceived: s.lastReceived,
        replay: s.replayStats,
        resumeWindowMs: this.resumeWindowMs,
        ...(peer.detachedAt > 0 ? { detachedForMs: Math.round(this.clock.now() - peer.detachedAt) } : {}),
      },
      calls: { toAgent: peer.rpc.pendingOutgoing, fromAgent: peer.rpc.runningIncoming },
    };
  }

  caches(): Array<{ name: string; entries: number; description: string }> {
    return [
      {
        name: "offline-agents",
        entries: this.#fleet.presence.list().filter((a) => a.state === "offline").length,
        description: "agents that left recently, listed as offline and reported not connected by fan-outs",
      },
      {
        name: "verified-tokens",
        entries: this.#gate.verifiedTokens,
        description: "tokens whose signature was verified, kept until they expire so that resumes are cheap",
      },
    ];
  }

  clearCache(name: string | undefined, who: AdminIdentity): Array<{ name: string; cleared: number }> {
    const known = this.caches().map((c) => c.name);
    if (name !== undefined && !known.includes(name)) {
      throw new MusterError(ErrorCode.NOT_FOUND, `no cache named ${name}; caches: ${known.join(", ")}`);
    }
    const out: Array<{ name: string; cleared: number }> = [];
    if (name === undefined || name === "offline-agents") {
      const before = this.#fleet.presence.list().length;
      this.#fleet.presence.prune(Number.POSITIVE_INFINITY);
      out.push({ name: "offline-agents", cleared: before - this.#fleet.presence.list().length });
    }
    if (name === undefined || name === "verified-tokens") {
      out.push({ name: "verified-tokens", cleared: this.#gate.clearVerifiedTokens() });
    }
    this.logger.info({ by: who.subject, caches: out }, "caches cleared");
    return out;
  }

  shutdown(who: AdminIdentity): { drainTimeoutMs: number } {
    this.logger.info({ by: who.subject }, "shutdown requested through the admin API");
    // After this request's answer is on its way: closing ends the admin API's connections.
    setImmediate(() => void this.drain());
    return { drainTimeoutMs: this.drainTimeoutMs };
  }

  // --- authorization -------------------------------------------------------------------------

  authorize(peer: Peer, method: string, stream: boolean): MusterError | undefined {
    // Draining: calls are refused, but for agents whose sessions are being handed over to other
    // servers, which serve here until each moves.
    if (this.#lifecycle.isDraining && !(peer.role === "agent" && this.#lifecycle.isHandingOver)) {
      return new MusterError(
        ErrorCode.UNAVAILABLE,
        `the server is draining: ${method} refused, call another server`,
      );
    }
    const id = peer.identity;
    const shown = truncateForLog(method, 80);
    let why: string | undefined;
    if (peer.role === "operator") {
      const needed = OPERATOR_ROLES.get(method) ?? "operator";
      if (!roleCovers(id.role, needed))
        why = `${shown} needs the ${needed} role; ${id.subject} has ${id.role}`;
    } else if (!this.#gate.allows(id, method)) {
      why =
        id.methods === undefined
          ? `agent ${peer.name} may not call ${stream ? "stream " : ""}"${shown}": the server grants agents ${this.#o.auth?.agentMethods?.join(",") || "no methods"}`
          : `agent ${peer.name} may not call ${stream ? "stream " : ""}"${shown}": its token grants ${id.methods.join(",")}`;
    }
    if (why === undefined) return undefined;
    // Sampled per peer: a peer repeating a refused call costs a few lines, not one a call.
    peer.warn(
      { who: id.subject, role: id.role, remote: peer.address, method: truncateForLog(method), why },
      "call refused: permission denied",
    );
    this.metrics.recordDenied(id.role);
    return new MusterError(ErrorCode.PERMISSION_DENIED, why);
  }

  /** For operator relays (`muster.call`, `muster.stream`): may this operator call `method` on agents? */
  authorizeRelay(peer: PeerInfo, method: string): void {
    const id = peer.identity as Identity | undefined;
    if (id === undefined || this.#gate.allows(id, method)) return;
    const why = `${id.subject} may not call "${truncateForLog(method, 80)}" on agents: its token grants ${id.methods?.join(",")}`;
    const log = { who: id.subject, role: id.role, method: truncateForLog(method), why };
    const from = this.#fleet.operatorOf(peer);
    if (from !== undefined) from.warn(log, "relay refused: permission denied");
    else this.logger.warn(log, "relay refused: permission denied");
    this.metrics.recordDenied(id.role);
    throw new MusterError(ErrorCode.PERMISSION_DENIED, why);
  }
}

/** The role each operator method needs (others: `operator`). */
const OPERATOR_ROLES = new Map<string, "operator" | "admin">([["muster.enrol", "admin"]]);
