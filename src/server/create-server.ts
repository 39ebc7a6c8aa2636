import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import { hostname } from "node:os";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { checkIpv6PrefixBits } from "../internal/address-key.js";
import { type Clock, systemClock } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { formatHostPort, splitHostPort } from "../internal/host-port.js";
import { optionLimit } from "../internal/limits.js";
import { truncateForLog } from "../internal/log-safe.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { VERSION } from "../internal/version.js";
import { type AgentInfo, Presence, type PresenceEvent } from "../presence/presence.js";
import type { CallHandle } from "../rpc/endpoint.js";
import { type FanOut, FanOutCall } from "../rpc/fan-out.js";
import { failedStream, type MusterStream, type StreamHandler, type StreamOptions } from "../rpc/stream.js";
import { formatTarget, matcher, parseTarget, type Target } from "../rpc/target.js";
import type { CallOptions, Handler, OutcomeStatus, PeerInfo } from "../rpc/types.js";
import { resolveSessionLimits, type SessionLimits, type SessionState } from "../session/session.js";
import { listenTextAll, type TextListener } from "../text/endpoint.js";
import { TextService } from "../text/service.js";
import { createHttpListener, type HttpLimits } from "../transport/http-server.js";
import { listenAll } from "../transport/listen.js";
import { TrafficStats } from "../transport/traffic.js";
import type { Listener, Transport, TransportCloseInfo } from "../transport/types.js";
import { type DecodeLimits, decodeFrame, encodeFrame, encodeValue } from "../wire/codec.js";
import { describeFrame } from "../wire/describe.js";
import {
  type CloseBody,
  CloseCode,
  type Frame,
  type FrameOf,
  FrameType,
  HEADER_BYTES,
  type HelloBody,
} from "../wire/frame.js";
import { createAdminHandler } from "./admin.js";
import type { AdminHost, AdminIdentity, Readiness } from "./admin-host.js";
import { Admission } from "./admission.js";
import { AuthGate, type GateVerdict, type Identity, roleCovers } from "./auth-gate.js";
import type { EnrolmentRequest } from "./enrolment.js";
import { RuntimeFlags } from "./flags.js";
import { httpLimits, resolveAllowedOrigins, upgradeOriginCheck } from "./http-guard.js";
import { ServerMetrics } from "./metrics.js";
import { operatorHandlers, operatorStreams, relayLimiter } from "./operator-methods.js";
import type { ServerOptions } from "./options.js";
import { Peer, type PeerHost } from "./peer.js";
import type { RelayGate } from "./relay-limiter.js";
import { type RpcLimits, resolveRpcLimits } from "./rpc-limits.js";
import { defineServerFlags } from "./server-flags.js";
import { createTextGuard, serverTextEndpoints } from "./text-access.js";
import { createTextRouter } from "./text-router.js";

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
  ): FanOut<T>;
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
  /** Enrolment requests waiting for a decision (servers with `auth.approve`). */
  pendingEnrolments(): EnrolmentRequest[];
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
  /** Stops listening, ends every session (pending calls fail with CLOSED), closes links. */
  close(): Promise<void>;
}

/** How a drain ended. */
export interface DrainResult {
  /** Calls and streams still running when the drain timeout passed (0: all finished). */
  abandoned: number;
  /** How long the drain took, in ms. */
  tookMs: number;
}

/**
 * The handler of one accepted connection: the handshake until a HELLO arrives, then its
 * peer's session. A class, not closures: a server holds one per connection.
 */
class Link {
  peer: Peer | undefined;
  timer: ReturnType<Clock["setTimeout"]> | undefined;
  /** The HELLO is in and the WELCOME not yet written: any frame now closes the link. */
  verifying = false;
  gone = false;
  constructor(
    readonly transport: Transport,
    readonly server: Server,
    /** What the connection counts under at admission (see `addressKey`). */
    readonly key: string,
  ) {}
  stopTimer(clock: Clock): void {
    if (this.timer) clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
  onFrame(bytes: Uint8Array): void {
    if (this.peer) this.peer.session.receive(this.transport, bytes);
    else if (this.verifying) this.server.linkEarlyFrame(this);
    else this.server.linkHello(this, bytes);
  }
  onClose(info: TransportCloseInfo): void {
    this.gone = true;
    this.server.linkGone(this);
    this.peer?.session.linkClosed(this.transport, info);
  }
  onDrain(): void {
    this.peer?.session.linkDrained(this.transport);
  }
}

/**
 * An immediate runs after the reads of its loop iteration: one queued from it runs after the
 * next iteration's reads, which take whatever arrived meanwhile.
 */
function afterNextRead(
  server: Server,
  link: Link,
  frame: FrameOf<typeof FrameType.HELLO>,
  verdict: GateVerdict,
): void {
  setImmediate(applyVerdict, server, link, frame, verdict);
}

function applyVerdict(
  server: Server,
  link: Link,
  frame: FrameOf<typeof FrameType.HELLO>,
  verdict: GateVerdict,
): void {
  server.linkVerdict(link, frame, verdict);
}

/** Creates a server. Call `start()` to listen. */
export function createServer(options: ServerOptions = {}): MusterServer {
  return new Server(options);
}

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
  readonly #gate: AuthGate;
  readonly #traffic = new TrafficStats();
  #draining: Promise<DrainResult> | undefined;
  readonly #closedDone: { promise: Promise<void>; resolve(): void };
  readonly maxIncomingCalls: number;
  readonly rpcLimits: RpcLimits;
  /** Operators' handler views (`ctx.peer`) to their peers, for relay refusals. */
  readonly #operatorOf = new WeakMap<PeerInfo, Peer>();
  readonly #o: ServerOptions;
  readonly #name: string;
  readonly #presence = new Presence();
  readonly #handlers = new Map<string, Handler>();
  readonly #operatorHandlers: Map<string, Handler>;
  readonly #streamHandlers = new Map<string, StreamHandler>();
  readonly #operatorStreams: Map<string, StreamHandler>;
  readonly #byToken = new Map<string, Peer>();
  readonly #byName = new Map<string, Peer>();
  readonly #peers = new Set<Peer>();
  readonly #pending = new Set<Transport>();
  readonly #admission: Admission;
  /** Timeouts and admission of HTTP connections; the origins whose pages may use WebSockets. */
  readonly #http: Required<HttpLimits>;
  readonly #allowedOrigins: ReadonlySet<string>;
  readonly #slowBytes: number;
  readonly #slowMs: number;
  #listeners: Listener[] = [];
  #sweep: ReturnType<Clock["setTimeout"]> | undefined;
  #closed = false;
  readonly text: TextService;
  #textListeners: TextListener[] = [];
  readonly metrics: ServerMetrics;
  #readiness: Readiness = "starting";
  #admin: HttpServer | undefined;
  #adminUrl: string | undefined;

  constructor(options: ServerOptions) {
    this.#o = options;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.#name = options.name ?? hostname();
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
    let resolveClosed!: () => void;
    const closedPromise = new Promise<void>((r) => {
      resolveClosed = r;
    });
    this.#closedDone = { promise: closedPromise, resolve: resolveClosed };
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
    this.#operatorHandlers = operatorHandlers(this, relays);
    this.#operatorStreams = operatorStreams(this, relays);
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
    this.#http = httpLimits(options, this.#admission, () => this.clock.now(), this.logger);
    this.#allowedOrigins = resolveAllowedOrigins(options.allowedOrigins, this.standalone);
    this.#slowBytes = optionLimit(options.slowConsumerBytes, DEFAULTS.slowConsumerBytes, "slowConsumerBytes");
    this.#slowMs = optionLimit(options.slowConsumerMs, DEFAULTS.slowConsumerMs, "slowConsumerMs");
    this.metrics = new ServerMetrics({
      admission: this.#admission,
      agents: () => this.agents(),
      replay: () => {
        let frames = 0;
        let bytes = 0;
        for (const p of this.#peers) {
          const r = p.session.replayStats;
          frames += r.frames + r.backlogFrames;
          bytes += r.bytes + r.backlogBytes;
        }
        return { frames, bytes };
      },
      onEvent: (fn) => this.#presence.on(fn),
      traffic: () => this.#traffic.entries(),
    });
    this.#gate = new AuthGate(options.auth, this.standalone, {
      logger: this.logger.child({ component: "auth" }),
      onFailure: (reason) => this.metrics.recordAuthFailure(reason),
      now: () => this.clock.now(),
      keyOf: (address) => this.#admission.keyOf(address),
    });
    this.flags = defineServerFlags(new RuntimeFlags(this.logger), this, options);
    this.text = new TextService({
      logger: this.logger.child({ component: "text" }),
      hooks: options.text?.hooks ?? {},
      router: createTextRouter(this, {
        serverName: this.#name,
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
  }

  get readiness(): Readiness {
    return this.#readiness;
  }

  get adminUrl(): string | undefined {
    return this.#adminUrl;
  }

  get textListeners(): readonly TextListener[] {
    return this.#textListeners;
  }

  /** Connections refused at admission, by reason, and connections open now. */
  get admission(): { open: number; refused: Readonly<Admission["refused"]> } {
    return { open: this.#admission.open, refused: { ...this.#admission.refused } };
  }

  get listeners(): readonly Listener[] {
    return this.#listeners;
  }

  async start(): Promise<void> {
    if (this.#closed) throw new MusterError(ErrorCode.CLOSED, "server is closed");
    // A standalone server has no authentication: by default it listens on loopback only.
    const host = this.standalone ? "127.0.0.1" : "0.0.0.0";
    const urls =
      this.#o.listen ??
      (this.#o.tls
        ? [`wss://${host}:${DEFAULTS.wsPort}`, `tls://${host}:${DEFAULTS.tcpPort}`]
        : [`ws://${host}:${DEFAULTS.wsPort}`, `tcp://${host}:${DEFAULTS.tcpPort}`]);
    this.#listeners = await listenAll(urls, {
      tls: this.#o.tls,
      memory: this.#o.memory,
      maxFrameBytes: this.maxFrameBytes,
      // Nobody may make the server buffer more than a HELLO before saying who they are.
      firstFrameMaxBytes: Math.min(this.maxFrameBytes, HEADER_BYTES + this.decodeLimits.maxHelloBytes),
      accept: (t) => this.accept(t),
      onHttpRequest: this.#adminHandler(),
      http: this.#http,
      checkUpgrade: upgradeOriginCheck(this.#allowedOrigins, this.standalone, this.logger),
      traffic: this.#traffic,
    });
    for (const l of this.#listeners) this.logger.info({ url: l.url }, "listening");
    const text = this.#o.text;
    if (text?.listen !== undefined && text.listen.length > 0) {
      try {
        this.#textListeners = await listenTextAll(
          text.listen,
          serverTextEndpoints(this.#o, this.text, this.logger),
        );
      } catch (err) {
        await Promise.all(this.#listeners.map((l) => l.close()));
        this.#listeners = [];
        throw err;
      }
    }
    const admin = this.#o.admin?.listen;
    if (admin !== undefined) {
      try {
        this.#adminUrl = await this.#listenAdmin(admin);
      } catch (err) {
        await Promise.all([...this.#listeners, ...this.#textListeners].map((l) => l.close()));
        this.#listeners = [];
        this.#textListeners = [];
        throw err;
      }
    }
    this.#o.auth?.revocations?.watch((added) => this.#onRevoked(added));
    if (this.standalone) {
      this.logger.warn(
        "STANDALONE MODE: no authentication; only loopback addresses may connect. Do not use it on a shared machine.",
      );
    } else {
      this.logger.info(
        { key: this.#gate.keyFingerprint, approve: this.#o.auth?.approve === true },
        "authentication on: every peer presents a token",
      );
    }
    this.#scheduleSweep();
    if (!this.#closed && this.#draining === undefined) this.#readiness = "ready";
  }

  #adminHandler(): (req: IncomingMessage, res: ServerResponse) => void {
    return createAdminHandler(this.#adminHost());
  }

  async #listenAdmin(hostPort: string): Promise<string> {
    const hp = splitHostPort(hostPort);
    if (hp === undefined || hp.port > 65535)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `admin address ${JSON.stringify(hostPort)}: expected host:port`,
      );
    const { host, port } = hp;
    const server = createHttpListener(this.#adminHandler(), undefined, this.#http).server as HttpServer;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(
          new MusterError(
            ErrorCode.UNAVAILABLE,
            `cannot listen on ${hostPort} (admin): ${err.code ?? err.message}`,
          ),
        ),
      );
      server.listen(port, host, resolve);
    });
    this.#admin = server;
    const bound = (server.address() as { port: number }).port;
    const url = `http://${formatHostPort(host, bound)}`;
    this.logger.info({ url }, "admin API listening");
    return url;
  }

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

  openStream<T>(
    agent: string,
    name: string,
    request?: unknown,
    options: StreamOptions = {},
  ): MusterStream<T> {
    const peer = this.#byName.get(agent);
    if (!peer || peer.ended) {
      const known = this.#presence.get(agent) !== undefined;
      return failedStream(
        name,
        new MusterError(
          known ? ErrorCode.UNAVAILABLE : ErrorCode.NOT_FOUND,
          known ? `agent ${agent} is not connected` : `no agent named ${agent} is known`,
        ),
      );
    }
    return peer.rpc.openStream<T>(name, request, options);
  }

  agents(): AgentInfo[] {
    const list = this.#presence.list();
    const book = this.#gate.enrolment;
    if (book === undefined || book.size === 0) return list;
    return [...list, ...book.rows()];
  }

  agent(name: string): AgentInfo | undefined {
    const known = this.#presence.get(name);
    if (known !== undefined) return known;
    return this.#gate.enrolment?.rows().find((r) => r.name === name);
  }

  pendingEnrolments(): EnrolmentRequest[] {
    return this.#gate.enrolment?.pending() ?? [];
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
    for (const peer of this.#byName.values()) {
      if (peer.ended) continue;
      peer.rpc.call("muster.config", config, { timeoutMs: this.callTimeoutMs }).catch((err: unknown) => {
        this.logger.debug(
          { name: peer.name, err: (err as Error).message },
          "agent did not take the new settings",
        );
      });
    }
  }

  // --- the admin API's view (AdminHost) -------------------------------------------------------

  /** The admin API's view of this server. */
  #adminHost(): AdminHost {
    return {
      logger: this.logger,
      metrics: this.metrics,
      standalone: this.standalone,
      metricsPublic: this.metricsPublic,
      flags: this.flags,
      readiness: () => this.#readiness,
      authenticate: (req: IncomingMessage) => this.#gate.checkHttp(req),
      agents: () => this.agents(),
      agentDetails: (name: string) => this.agentDetails(name),
      caches: () => this.caches(),
      clearCache: (name: string | undefined, who: AdminIdentity) => this.clearCache(name, who),
      shutdown: (who: AdminIdentity) => this.shutdown(who),
      enrolments: () => this.pendingEnrolments(),
      decideEnrolment: (action, name, who, fingerprint) =>
        this.decideEnrolment(action, name, who.subject, fingerprint),
    };
  }

  agentDetails(name: string): Record<string, unknown> | undefined {
    const peer = this.#byName.get(name);
    const info = this.agent(name);
    if (info === undefined) return undefined;
    if (peer === undefined || peer.ended) return { ...info };
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
        entries: this.#presence.list().filter((a) => a.state === "offline").length,
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
      const before = this.#presence.list().length;
      this.#presence.prune(Number.POSITIVE_INFINITY);
      out.push({ name: "offline-agents", cleared: before - this.#presence.list().length });
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

  get closed(): Promise<void> {
    return this.#closedDone.promise;
  }

  events(): AsyncIterableIterator<PresenceEvent> {
    return this.#presence.events();
  }

  onEvent(fn: (e: PresenceEvent) => void): () => void {
    return this.#presence.on(fn);
  }

  /** With `gate` (relays of an operator), each agent's call is admitted by it first. */
  call<T>(
    target: string | Target,
    method: string,
    request?: unknown,
    options: CallOptions = {},
    gate?: RelayGate,
  ): FanOut<T> {
    const t = typeof target === "string" ? parseTarget(target, this.rpcLimits.maxTargetBytes) : target;
    const payload = encodeValue(request);
    const timeoutMs = options.timeoutMs ?? this.callTimeoutMs;
    let expected: string[];
    if (t !== "all" && "names" in t) expected = [...t.names];
    else {
      const match = matcher(t);
      expected = this.#presence
        .list()
        .filter(match)
        .map((a) => a.name);
    }
    if (this.logger.isLevelEnabled("debug"))
      this.logger.debug(
        {
          target: truncateForLog(formatTarget(t)),
          method: truncateForLog(method),
          expected: expected.length,
        },
        "fan-out",
      );
    const fanOut = new FanOutCall<T>(
      expected,
      { clock: this.clock, timeoutMs, signal: options.signal, method, decodeLimits: this.decodeLimits },
      (name, cb) => {
        const peer = this.#byName.get(name);
        if (!peer || peer.ended) return undefined;
        const admitted = gate === undefined ? cb : gate.admit(name, cb);
        if (admitted instanceof MusterError) {
          cb.onSettle(admitted, undefined); // answered here: the call never reaches the agent
          return SETTLED;
        }
        return peer.rpc.start(method, payload, timeoutMs, admitted, false);
      },
    );
    // Recorded after whoever awaits the fan-out has run, so as not to add to its latency.
    void fanOut.done.then((outcomes) => {
      setImmediate(() => this.metrics.recordOutcomes(method, outcomes.values()));
    });
    return fanOut;
  }

  callAgent<T>(name: string, method: string, request?: unknown, options: CallOptions = {}): Promise<T> {
    const peer = this.#byName.get(name);
    if (!peer || peer.ended) {
      const known = this.#presence.get(name) !== undefined;
      return Promise.reject(
        new MusterError(
          known ? ErrorCode.UNAVAILABLE : ErrorCode.NOT_FOUND,
          known ? `agent ${name} is not connected` : `no agent named ${name} is known`,
        ),
      );
    }
    const started = performance.now();
    const record = (status: OutcomeStatus) =>
      this.metrics.recordCall(method, status, performance.now() - started);
    const o = options.timeoutMs === undefined ? { ...options, timeoutMs: this.callTimeoutMs } : options;
    return (peer.rpc.call(method, request, o) as Promise<T>).then(
      (value) => {
        record("ok");
        return value;
      },
      (err: unknown) => {
        record(err instanceof MusterError && err.code === ErrorCode.DEADLINE_EXCEEDED ? "timeout" : "error");
        throw err;
      },
    );
  }

  // --- connections and handshake ---------------------------------------------------------

  accept(transport: Transport): void {
    if (this.#closed) {
      transport.close(CloseCode.SHUTDOWN, "server is shutting down");
      return;
    }
    const verdict = this.#admission.admit(transport.remoteAddress, this.clock.now());
    if (!verdict.ok) {
      // A storm's refusals are expected (the rate limit doing its job): debug, not warn.
      const level = verdict.reason === "handshake_rate" ? "debug" : "warn";
      this.logger[level](
        { remote: transport.remoteAddress, reason: verdict.reason, retryAfterMs: verdict.retryAfterMs },
        "connection refused",
      );
      this.#reject(transport, CloseCode.BUSY, verdict.message, verdict.retryAfterMs);
      return;
    }
    this.#pending.add(transport);
    const link = new Link(transport, this, verdict.key);
    link.timer = this.clock.setTimeout(() => {
      link.timer = undefined;
      if (link.peer) return;
      this.logger.warn({ remote: transport.remoteAddress }, "no HELLO within the handshake timeout: closing");
      this.#reject(transport, CloseCode.HANDSHAKE_TIMEOUT, "no HELLO within the handshake timeout");
    }, this.#o.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs);
    link.timer.unref();
    transport.setHandler(link);
  }

  /** The first frame on a link (methods rather than closures per link: see Link). */
  linkHello(link: Link, bytes: Uint8Array): void {
    link.stopTimer(this.clock);
    const frame = this.#decodeHello(link.transport, bytes);
    if (frame === undefined) {
      this.#pending.delete(link.transport);
      return;
    }
    link.verifying = true;
    const hello = frame.hello;
    const resuming = hello.token !== undefined && this.#byToken.get(hello.token)?.ended === false;
    this.#gate
      .checkHello(hello, link.transport, this.clock.now(), resuming)
      .then((verdict) => {
        // The verdict may come in the very read that brought the HELLO (a cached or standalone
        // check resolves at once): the WELCOME then waits for the next turn of I/O, so that a
        // frame the dialer sent with or right behind its HELLO is read first and refused
        // (protocol §6.1) however the bytes were split, rather than refused or served by chance.
        setImmediate(afterNextRead, this, link, frame, verdict);
      })
      .catch((err: unknown) => this.linkFailed(link, err));
  }

  /** The HELLO's verdict, one turn of I/O after it came (see linkHello). */
  linkVerdict(link: Link, frame: FrameOf<typeof FrameType.HELLO>, verdict: GateVerdict): void {
    link.verifying = false;
    this.#pending.delete(link.transport);
    // Gone, or closing (a frame came before the WELCOME): no session for it.
    if (link.gone || this.#closed || !link.transport.open) return;
    try {
      link.peer = this.#admitHello(link.transport, frame.hello, frame.ack, verdict);
    } catch (err) {
      this.linkFailed(link, err);
    }
  }

  /** The handshake failed inside the server: this connection ends, the rest go on. */
  linkFailed(link: Link, err: unknown): void {
    // Nothing a peer sends may take the process down.
    const e = MusterError.from(err);
    this.logger.error(
      { remote: link.transport.remoteAddress, err: e.rawMessage },
      "handshake failed: closing",
    );
    link.verifying = false;
    this.#pending.delete(link.transport);
    if (!link.gone)
      this.#reject(
        link.transport,
        CloseCode.REJECTED,
        "the server could not complete the handshake (an internal error, which it logged)",
      );
  }

  /** A frame arrived after the HELLO, before the WELCOME was written: the dialer did not wait. */
  linkEarlyFrame(link: Link): void {
    this.logger.warn({ remote: link.transport.remoteAddress }, "frame before the WELCOME: closing");
    this.#reject(link.transport, CloseCode.PROTOCOL_ERROR, "a frame arrived before the WELCOME: wait for it");
  }

  linkGone(link: Link): void {
    link.stopTimer(this.clock);
    this.#pending.delete(link.transport);
    this.#admission.release(link.key);
  }

  #reject(transport: Transport, code: CloseCode, message: string, retryAfterMs?: number): void {
    const close: CloseBody = { code, message };
    if (retryAfterMs !== undefined) close.retryAfterMs = retryAfterMs;
    transport.send(encodeFrame({ type: FrameType.CLOSE, seq: 0, ack: 0, close }));
    transport.close(code, message);
  }

  #decodeHello(transport: Transport, bytes: Uint8Array): FrameOf<typeof FrameType.HELLO> | undefined {
    let frame: Frame;
    try {
      frame = decodeFrame(bytes, this.decodeLimits);
    } catch (err) {
      const e = MusterError.from(err, ErrorCode.PROTOCOL_ERROR);
      this.logger.warn(
        { remote: transport.remoteAddress, err: truncateForLog(e.rawMessage) },
        "bad handshake: closing",
      );
      this.#reject(transport, CloseCode.PROTOCOL_ERROR, e.rawMessage);
      return undefined;
    }
    if (this.logger.isLevelEnabled("trace")) {
      this.logger.trace({ dir: "in", remote: transport.remoteAddress, frame: describeFrame(frame) }, "frame");
    }
    if (frame.type !== FrameType.HELLO) {
      this.logger.warn(
        { remote: transport.remoteAddress, type: frame.type },
        "first frame is not HELLO: closing",
      );
      this.#reject(transport, CloseCode.PROTOCOL_ERROR, "the first frame must be HELLO");
      return undefined;
    }
    return frame;
  }

  /** A HELLO whose credential was checked: a refusal, a resume, or a new session. */
  #admitHello(
    transport: Transport,
    hello: HelloBody,
    peerAck: number,
    verdict: GateVerdict,
  ): Peer | undefined {
    if (!verdict.ok) {
      const quiet = verdict.reason === "pending" || verdict.reason === "rate_limited";
      // Never the credential itself: who, from where, and why.
      this.logger[quiet ? "debug" : "warn"](
        {
          remote: transport.remoteAddress,
          name: hello.name,
          role: hello.role,
          reason: verdict.reason,
          why: truncateForLog(verdict.message),
        },
        "connection refused by authentication",
      );
      this.metrics.recordHandshake("refused");
      this.#reject(transport, verdict.close, verdict.message, verdict.retryAfterMs);
      return undefined;
    }
    const identity = verdict.identity;
    let expired = false;
    if (hello.token !== undefined) {
      const old = this.#byToken.get(hello.token);
      // The window is exact: a session past it is gone even if the sweep has not run yet.
      if (old && !old.ended) this.#expireIfPast(old, this.clock.now());
      if (
        old &&
        !old.ended &&
        old.name === hello.name &&
        old.role === hello.role &&
        old.identity.role === identity.role &&
        old.identity.subject === identity.subject &&
        old.session.canResumeFrom(peerAck)
      ) {
        old.setIdentity(identity);
        this.metrics.recordHandshake("resumed");
        return this.#resume(old, transport, peerAck);
      }
      expired = true;
      this.logger.info(
        { name: hello.name, remote: transport.remoteAddress },
        "resume refused: session unknown or expired",
      );
    }
    if (this.#draining !== undefined) {
      this.metrics.recordHandshake("refused");
      this.#reject(
        transport,
        CloseCode.SHUTDOWN,
        "the server is draining: connect to another server",
        DEFAULTS.drainRetryAfterMs,
      );
      return undefined;
    }
    this.metrics.recordHandshake(expired ? "expired" : "new");
    return this.#newSession(hello, transport, expired, identity, verdict.issued);
  }

  #welcome(
    peer: Peer,
    transport: Transport,
    resumed: boolean,
    expired: boolean,
    replaying: number,
    issued?: string,
  ): void {
    const frame: Frame = {
      type: FrameType.WELCOME,
      seq: 0,
      ack: peer.session.lastReceived,
      welcome: {
        sessionId: peer.id,
        token: peer.token,
        resumed,
        expired,
        replaying,
        heartbeatIntervalMs: this.sessionLimits.heartbeatIntervalMs,
        resumeWindowMs: this.resumeWindowMs,
        server: { name: this.#name, version: VERSION },
        ...(issued !== undefined ? { auth: issued } : {}),
      },
    };
    if (this.logger.isLevelEnabled("trace")) {
      this.logger.trace(
        { dir: "out", remote: transport.remoteAddress, frame: describeFrame(frame) },
        "frame",
      );
    }
    transport.send(encodeFrame(frame));
  }

  #resume(peer: Peer, transport: Transport, peerAck: number): Peer {
    const downtimeMs = peer.detachedAt > 0 ? Math.round(this.clock.now() - peer.detachedAt) : 0;
    peer.address = transport.remoteAddress;
    peer.transportKind = transport.kind;
    this.#welcome(peer, transport, true, false, peer.session.lastSent - peerAck);
    const replayed = peer.session.attach(transport, peerAck);
    peer.detachedAt = 0;
    peer.disconnectReason = undefined;
    this.logger.info({ name: peer.name, role: peer.role, replayed, downtimeMs }, "session resumed");
    if (peer.role === "agent")
      this.#presence.emit({ type: "resume", agent: peer.info(), replayed, downtimeMs });
    return peer;
  }

  #newSession(
    hello: HelloBody,
    transport: Transport,
    expired: boolean,
    identity: Identity,
    issued: string | undefined,
  ): Peer {
    const peer = new Peer(this, hello, transport, identity);
    this.#peers.add(peer);
    if (hello.role === "operator") this.#operatorOf.set(peer.peerInfo, peer);
    this.#byToken.set(peer.token, peer);
    let previous: Peer | undefined;
    if (hello.role === "agent") {
      previous = this.#byName.get(hello.name);
      this.#byName.set(hello.name, peer);
      if (previous) {
        this.logger.warn(
          { name: hello.name, old: previous.address, new: transport.remoteAddress },
          "a newer connection replaces the agent's previous session",
        );
        this.#endPeer(
          previous,
          ErrorCode.REPLACED,
          `replaced by a newer connection from ${transport.remoteAddress}`,
          CloseCode.REPLACED,
          false,
        );
      }
      this.#presence.setLive(hello.name, peer);
    }
    this.#welcome(peer, transport, false, expired, 0, issued);
    peer.session.attach(transport, 0);
    this.logger.info(
      {
        name: peer.name,
        role: peer.role,
        remote: transport.remoteAddress,
        transport: transport.kind,
        session: peer.id,
        as: `${identity.role}:${identity.subject} (${identity.via})`,
      },
      hello.role === "agent" ? "agent joined" : "operator connected",
    );
    if (hello.role === "agent") {
      if (previous)
        this.#presence.emit({ type: "replace", agent: peer.info(), previousSessionId: previous.id });
      else this.#presence.emit({ type: "join", agent: peer.info() });
    }
    return peer;
  }

  /** Ends a peer's session and updates presence. */
  #endPeer(peer: Peer, code: ErrorCode, message: string, closeCode: CloseCode, emitLeave = true): void {
    if (peer.ended) return;
    peer.end(code, message, closeCode);
    this.#peers.delete(peer);
    this.#byToken.delete(peer.token);
    if (peer.role !== "agent") return;
    if (this.#byName.get(peer.name) === peer) this.#byName.delete(peer.name);
    const info = this.#presence.setOffline(peer.name, peer, message, Date.now());
    if (info && emitLeave) this.#presence.emit({ type: "leave", agent: info, reason: message });
  }

  // --- peer hooks --------------------------------------------------------------------------

  onPeerState(peer: Peer, state: SessionState, previous: SessionState): void {
    if (peer.role !== "agent" || peer.ended) return;
    if (state === "suspect") {
      this.logger.warn({ name: peer.name }, "agent silent: suspect (kept, calls continue)");
      this.#presence.emit({ type: "suspect", agent: peer.info() });
    } else if (state === "connected" && previous === "suspect") {
      this.logger.info({ name: peer.name }, "agent heard from again");
      this.#presence.emit({ type: "recover", agent: peer.info() });
    }
  }

  onPeerLinkDown(peer: Peer, info: TransportCloseInfo): void {
    if (peer.ended) return;
    peer.detachedAt = this.clock.now();
    peer.disconnectReason = `${info.code}: ${info.message}`;
    this.logger.info(
      { name: peer.name, role: peer.role, reason: peer.disconnectReason },
      "link lost: waiting for resume",
    );
    if (peer.role === "agent")
      this.#presence.emit({ type: "disconnect", agent: peer.info(), reason: peer.disconnectReason });
  }

  onPeerClose(peer: Peer, close: CloseBody): void {
    const message = truncateForLog(close.message);
    if (LINK_SCOPED.has(close.code)) {
      // The peer dropped this link (it received something broken, or heard nothing for too
      // long), not the session: it will resume, and the replay window covers what was lost.
      peer.warn(
        { name: peer.name, role: peer.role, code: close.code, message },
        "peer dropped the link: waiting for resume",
      );
      const info = { code: close.code, message };
      peer.session.detach(info);
      this.onPeerLinkDown(peer, info);
      return;
    }
    this.logger.info(
      { name: peer.name, role: peer.role, code: close.code, message },
      "peer closed its session",
    );
    this.#endPeer(peer, ErrorCode.UNAVAILABLE, `closed by the ${peer.role}: ${message}`, CloseCode.NORMAL);
  }

  /** Closes a peer's link with CLOSE `code` (the session stays resumable). */
  dropLink(peer: Peer, code: CloseCode, message: string): void {
    const t = peer.session.transport;
    if (t === undefined || peer.ended) return;
    peer.warn({ name: peer.name, role: peer.role, code, message }, "closing the peer's link");
    const close: CloseBody = { code, message };
    t.send(encodeFrame({ type: FrameType.CLOSE, seq: 0, ack: peer.session.lastReceived, close }));
    peer.session.detach(close);
    this.onPeerLinkDown(peer, close);
  }

  // --- maintenance ---------------------------------------------------------------------------

  #scheduleSweep(): void {
    const hb = this.sessionLimits.heartbeatIntervalMs;
    const every = Math.max(10, Math.min(1000, Math.floor(hb / 4)));
    this.#sweep = this.clock.setTimeout(() => {
      this.#tick();
      if (!this.#closed) this.#scheduleSweep();
    }, every);
    this.#sweep.unref();
  }

  #tick(): void {
    const now = this.clock.now();
    const wall = Date.now();
    this.#gate.enrolment?.prune(wall);
    for (const peer of this.#peers) {
      const exp = peer.identity.expiresAt;
      if (exp !== undefined && exp <= wall) {
        this.#endForCredential(peer, `its credential expired at ${new Date(exp).toISOString()}`);
        continue;
      }
      if (peer.session.state === "resuming") {
        this.#expireIfPast(peer, now);
      } else {
        peer.session.tick(now);
        this.#checkSlowConsumer(peer, now);
      }
      peer.rpc.expireIncoming(now);
    }
    this.#presence.prune(Date.now() - (this.#o.offlineRetentionMs ?? DEFAULTS.offlineRetentionMs));
  }

  /** Ends a session whose credential no longer holds (expired or revoked). */
  #endForCredential(peer: Peer, why: string): void {
    this.logger.warn(
      { name: peer.name, role: peer.role, as: peer.identity.subject, token: peer.identity.tokenId, why },
      "session ended: credential no longer valid",
    );
    this.#endPeer(peer, ErrorCode.UNAUTHENTICATED, why, CloseCode.UNAUTHENTICATED);
  }

  /** Token ids newly revoked: sessions using them end now. */
  #onRevoked(ids: string[]): void {
    const revoked = new Set(ids);
    for (const peer of [...this.#peers]) {
      const id = peer.identity.tokenId;
      if (id !== undefined && revoked.has(id)) this.#endForCredential(peer, `its token ${id} was revoked`);
    }
  }

  // --- authorization -------------------------------------------------------------------------

  authorize(peer: Peer, method: string, stream: boolean): MusterError | undefined {
    if (this.#draining !== undefined) {
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
    const from = this.#operatorOf.get(peer);
    if (from !== undefined) from.warn(log, "relay refused: permission denied");
    else this.logger.warn(log, "relay refused: permission denied");
    this.metrics.recordDenied(id.role);
    throw new MusterError(ErrorCode.PERMISSION_DENIED, why);
  }

  /** Ends a detached peer's session once its resume window has passed. */
  #expireIfPast(peer: Peer, now: number): void {
    const window = this.resumeWindowMs;
    if (peer.session.state !== "resuming" || now - peer.detachedAt < window) return;
    this.logger.info({ name: peer.name, role: peer.role }, "resume window passed: session expired");
    this.metrics.recordSessionExpired();
    this.#endPeer(peer, ErrorCode.SESSION_EXPIRED, `did not come back within ${window} ms`, CloseCode.NORMAL);
  }

  /**
   * A peer that does not read: back-pressure (`writable` false) comes first; a link still
   * holding more than slowConsumerBytes unsent after slowConsumerMs, or four times as much at
   * any moment, is dropped. Its session stays resumable; the link's buffers are freed.
   */
  #checkSlowConsumer(peer: Peer, now: number): void {
    const t = peer.session.transport;
    if (t === undefined || this.#slowBytes === 0) return;
    const buffered = t.bufferedBytes;
    if (buffered <= this.#slowBytes) {
      peer.slowSince = 0;
      return;
    }
    if (peer.slowSince === 0) peer.slowSince = now;
    const forMs = now - peer.slowSince;
    if (forMs < this.#slowMs && buffered <= 4 * this.#slowBytes) return;
    peer.slowSince = 0;
    const message = `slow consumer: ${buffered} bytes unsent for ${Math.round(forMs)} ms`;
    this.logger.warn(
      {
        name: peer.name,
        role: peer.role,
        remote: t.remoteAddress,
        bufferedBytes: buffered,
        forMs: Math.round(forMs),
      },
      "slow consumer: dropping the link (the session stays resumable)",
    );
    const info = { code: CloseCode.SLOW_CONSUMER, message };
    peer.session.detach(info);
    this.onPeerLinkDown(peer, info);
  }

  drain(options: { timeoutMs?: number } = {}): Promise<DrainResult> {
    if (this.#draining !== undefined) return this.#draining;
    const timeoutMs = optionLimit(options.timeoutMs, this.drainTimeoutMs, "timeoutMs");
    this.#draining = this.#drain(timeoutMs);
    return this.#draining;
  }

  async #drain(timeoutMs: number): Promise<DrainResult> {
    const started = performance.now();
    this.#readiness = "draining";
    const inFlight = (): number => {
      let n = 0;
      for (const p of this.#peers) n += p.rpc.pendingOutgoing + p.rpc.runningIncoming;
      return n;
    };
    this.logger.info(
      { inFlight: inFlight(), timeoutMs },
      "draining: no new sessions or calls, waiting for calls in flight",
    );
    let left = inFlight();
    while (left > 0 && performance.now() - started < timeoutMs && !this.#closed) {
      await new Promise((r) => setTimeout(r, 20));
      left = inFlight();
    }
    if (left > 0)
      this.logger.warn({ abandoned: left, timeoutMs }, "drain timeout: ending calls still in flight");
    const result = { abandoned: left, tookMs: Math.round(performance.now() - started) };
    // Logged before closing: whoever waits for `closed` (the CLI exits then) has seen it.
    this.logger.info(result, "drained: closing");
    await this.close();
    return result;
  }

  async close(): Promise<void> {
    if (this.#closed) return this.#closedDone.promise;
    this.#closed = true;
    this.#readiness = "draining";
    this.#admin?.close();
    this.#admin?.closeAllConnections();
    if (this.#sweep) this.clock.clearTimeout(this.#sweep);
    this.#o.auth?.revocations?.close();
    await Promise.all([...this.#listeners, ...this.#textListeners].map((l) => l.close()));
    for (const peer of [...this.#peers]) {
      this.#endPeer(
        peer,
        ErrorCode.CLOSED,
        "server is shutting down: reconnect to another server",
        CloseCode.SHUTDOWN,
      );
    }
    for (const t of this.#pending) t.close(CloseCode.SHUTDOWN, "server is shutting down");
    this.#pending.clear();
    this.#presence.end();
    this.metrics.close();
    this.logger.info("server closed");
    this.#closedDone.resolve();
  }
}

/** The role each operator method needs (others: `operator`). */
const OPERATOR_ROLES = new Map<string, "operator" | "admin">([["muster.enrol", "admin"]]);

/** The handle of a call answered without being started. */
const SETTLED: CallHandle = { id: 0, cancel: () => {} };

/** CLOSE codes that end the link only: the session stays resumable (docs/protocol.md §7). */
const LINK_SCOPED = new Set<string>([
  CloseCode.PROTOCOL_ERROR,
  CloseCode.FRAME_TOO_LARGE,
  CloseCode.HEARTBEAT_TIMEOUT,
  CloseCode.SLOW_CONSUMER,
  CloseCode.TRANSPORT_ERROR,
  CloseCode.REMOTE_CLOSED,
]);
