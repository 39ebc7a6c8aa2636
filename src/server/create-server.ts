import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { hostname } from "node:os";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { type Clock, systemClock } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { formatHostPort, splitHostPort } from "../internal/host-port.js";
import { optionLimit } from "../internal/limits.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { VERSION } from "../internal/version.js";
import { type AgentInfo, Presence, type PresenceEvent } from "../presence/presence.js";
import { type FanOut, FanOutCall } from "../rpc/fan-out.js";
import { failedStream, type MusterStream, type StreamHandler, type StreamOptions } from "../rpc/stream.js";
import { formatTarget, matcher, parseTarget, type Target } from "../rpc/target.js";
import type { CallOptions, Handler, OutcomeStatus } from "../rpc/types.js";
import { resolveSessionLimits, type SessionLimits, type SessionState } from "../session/session.js";
import { listenTextAll, type TextListener } from "../text/endpoint.js";
import { TextService } from "../text/service.js";
import { listenAll } from "../transport/listen.js";
import type { Listener, Transport, TransportCloseInfo } from "../transport/types.js";
import { type DecodeLimits, decodeFrame, encodeFrame, encodeValue } from "../wire/codec.js";
import { describeFrame } from "../wire/describe.js";
import {
  type CloseBody,
  CloseCode,
  type Frame,
  FrameType,
  HEADER_BYTES,
  type HelloBody,
} from "../wire/frame.js";
import { createAdminHandler, type Readiness } from "./admin.js";
import { Admission, ipOf } from "./admission.js";
import { ServerMetrics } from "./metrics.js";
import { operatorHandlers, operatorStreams } from "./operator-methods.js";
import type { ServerOptions } from "./options.js";
import { Peer, type PeerHost } from "./peer.js";
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
  /** Stops listening, ends every session (pending calls fail with CLOSED), closes links. */
  close(): Promise<void>;
}

/**
 * The handler of one accepted connection: the handshake until a HELLO arrives, then its
 * peer's session. A class, not closures: a server holds one per connection.
 */
class Link {
  peer: Peer | undefined;
  timer: ReturnType<Clock["setTimeout"]> | undefined;
  constructor(
    readonly transport: Transport,
    readonly server: Server,
  ) {}
  stopTimer(clock: Clock): void {
    if (this.timer) clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
  onFrame(bytes: Uint8Array): void {
    if (this.peer) this.peer.session.receive(this.transport, bytes);
    else this.server.linkHello(this, bytes);
  }
  onClose(info: TransportCloseInfo): void {
    this.server.linkGone(this);
    this.peer?.session.linkClosed(this.transport, info);
  }
  onDrain(): void {
    this.peer?.session.linkDrained(this.transport);
  }
}

/** Creates a server. Call `start()` to listen. */
export function createServer(options: ServerOptions = {}): MusterServer {
  return new Server(options);
}

class Server implements MusterServer, PeerHost {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly sessionLimits: SessionLimits;
  /** Decoding limits shared by every peer. */
  readonly decodeLimits: Readonly<Required<DecodeLimits>>;
  readonly maxFrameBytes: number;
  readonly callTimeoutMs: number;
  readonly maxIncomingCalls: number;
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
    this.sessionLimits = resolveSessionLimits({
      maxJsonDepth: this.decodeLimits.maxJsonDepth,
      replayMaxFrames: options.replayMaxFrames,
      replayMaxBytes: options.replayMaxBytes,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      suspectAfterMs: options.suspectAfterMs,
      deadAfterMs: options.deadAfterMs,
    });
    this.#operatorHandlers = operatorHandlers(this);
    this.#operatorStreams = operatorStreams(this);
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
      },
      this.clock.now(),
    );
    this.#slowBytes = optionLimit(options.slowConsumerBytes, DEFAULTS.slowConsumerBytes, "slowConsumerBytes");
    this.#slowMs = optionLimit(options.slowConsumerMs, DEFAULTS.slowConsumerMs, "slowConsumerMs");
    this.metrics = new ServerMetrics({
      admission: this.#admission,
      agents: () => this.#presence.list(),
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
    });
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
    const urls =
      this.#o.listen ??
      (this.#o.tls
        ? [`wss://0.0.0.0:${DEFAULTS.wsPort}`, `tls://0.0.0.0:${DEFAULTS.tcpPort}`]
        : [`ws://0.0.0.0:${DEFAULTS.wsPort}`, `tcp://0.0.0.0:${DEFAULTS.tcpPort}`]);
    this.#listeners = await listenAll(urls, {
      tls: this.#o.tls,
      memory: this.#o.memory,
      maxFrameBytes: this.maxFrameBytes,
      // Nobody may make the server buffer more than a HELLO before saying who they are.
      firstFrameMaxBytes: Math.min(this.maxFrameBytes, HEADER_BYTES + this.decodeLimits.maxHelloBytes),
      accept: (t) => this.accept(t),
      onHttpRequest: this.#adminHandler(),
    });
    for (const l of this.#listeners) this.logger.info({ url: l.url }, "listening");
    const text = this.#o.text;
    if (text?.listen !== undefined && text.listen.length > 0) {
      try {
        this.#textListeners = await listenTextAll(text.listen, {
          service: this.text,
          logger: this.logger,
          ...(this.#o.tls ? { tls: this.#o.tls } : {}),
          ...(text.secretCode !== undefined ? { secretCode: text.secretCode } : {}),
        });
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
    this.#scheduleSweep();
    if (!this.#closed) this.#readiness = "ready";
  }

  #adminHandler(): (req: IncomingMessage, res: ServerResponse) => void {
    return createAdminHandler({
      metrics: this.metrics,
      readiness: () => this.#readiness,
      metricsPublic: this.#o.admin?.metricsPublic === true,
    });
  }

  async #listenAdmin(hostPort: string): Promise<string> {
    const hp = splitHostPort(hostPort);
    if (hp === undefined || hp.port > 65535)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `admin address ${JSON.stringify(hostPort)}: expected host:port`,
      );
    const { host, port } = hp;
    const server = createHttpServer(this.#adminHandler());
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
    return this.#presence.list();
  }

  agent(name: string): AgentInfo | undefined {
    return this.#presence.get(name);
  }

  events(): AsyncIterableIterator<PresenceEvent> {
    return this.#presence.events();
  }

  onEvent(fn: (e: PresenceEvent) => void): () => void {
    return this.#presence.on(fn);
  }

  call<T>(target: string | Target, method: string, request?: unknown, options: CallOptions = {}): FanOut<T> {
    const t = typeof target === "string" ? parseTarget(target) : target;
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
    this.logger.debug({ target: formatTarget(t), method, expected: expected.length }, "fan-out");
    const fanOut = new FanOutCall<T>(
      expected,
      { clock: this.clock, timeoutMs, signal: options.signal, method, decodeLimits: this.decodeLimits },
      (name, cb) => {
        const peer = this.#byName.get(name);
        if (!peer || peer.ended) return undefined;
        return peer.rpc.start(method, payload, timeoutMs, cb, false);
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
    return (peer.rpc.call(method, request, options) as Promise<T>).then(
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
    const link = new Link(transport, this);
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
    this.#pending.delete(link.transport);
    link.peer = this.#handshake(link.transport, bytes);
  }

  linkGone(link: Link): void {
    link.stopTimer(this.clock);
    this.#pending.delete(link.transport);
    this.#admission.release(ipOf(link.transport.remoteAddress));
  }

  #reject(transport: Transport, code: CloseCode, message: string, retryAfterMs?: number): void {
    const close: CloseBody = { code, message };
    if (retryAfterMs !== undefined) close.retryAfterMs = retryAfterMs;
    transport.send(encodeFrame({ type: FrameType.CLOSE, seq: 0, ack: 0, close }));
    transport.close(code, message);
  }

  #handshake(transport: Transport, bytes: Uint8Array): Peer | undefined {
    let frame: Frame;
    try {
      frame = decodeFrame(bytes, this.decodeLimits);
    } catch (err) {
      const e = MusterError.from(err, ErrorCode.PROTOCOL_ERROR);
      this.logger.warn({ remote: transport.remoteAddress, err: e.rawMessage }, "bad handshake: closing");
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
    const hello = frame.hello;
    if (hello.role === "operator" && !transport.isLoopback && !this.#o.allowRemoteOperators) {
      this.logger.warn(
        { remote: transport.remoteAddress },
        "operator connection from a non-loopback address refused",
      );
      this.#reject(
        transport,
        CloseCode.REJECTED,
        "operator connections are accepted only from loopback while no authentication is configured",
      );
      return undefined;
    }
    const peerAck = frame.ack;
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
        old.session.canResumeFrom(peerAck)
      ) {
        return this.#resume(old, transport, peerAck);
      }
      expired = true;
      this.logger.info(
        { name: hello.name, remote: transport.remoteAddress },
        "resume refused: session unknown or expired",
      );
    }
    return this.#newSession(hello, transport, expired);
  }

  #welcome(peer: Peer, transport: Transport, resumed: boolean, expired: boolean, replaying: number): void {
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
        resumeWindowMs: this.#o.resumeWindowMs ?? DEFAULTS.resumeWindowMs,
        server: { name: this.#name, version: VERSION },
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

  #newSession(hello: HelloBody, transport: Transport, expired: boolean): Peer {
    const peer = new Peer(this, hello, transport);
    this.#peers.add(peer);
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
    this.#welcome(peer, transport, false, expired, 0);
    peer.session.attach(transport, 0);
    this.logger.info(
      {
        name: peer.name,
        role: peer.role,
        remote: transport.remoteAddress,
        transport: transport.kind,
        session: peer.id,
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
    if (LINK_SCOPED.has(close.code)) {
      // The peer dropped this link (it received something broken, or heard nothing for too
      // long), not the session: it will resume, and the replay window covers what was lost.
      this.logger.warn(
        { name: peer.name, role: peer.role, code: close.code, message: close.message },
        "peer dropped the link: waiting for resume",
      );
      const info = { code: close.code, message: close.message };
      peer.session.detach(info);
      this.onPeerLinkDown(peer, info);
      return;
    }
    this.logger.info(
      { name: peer.name, role: peer.role, code: close.code, message: close.message },
      "peer closed its session",
    );
    this.#endPeer(
      peer,
      ErrorCode.UNAVAILABLE,
      `closed by the ${peer.role}: ${close.message}`,
      CloseCode.NORMAL,
    );
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
    for (const peer of this.#peers) {
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

  /** Ends a detached peer's session once its resume window has passed. */
  #expireIfPast(peer: Peer, now: number): void {
    const window = this.#o.resumeWindowMs ?? DEFAULTS.resumeWindowMs;
    if (peer.session.state !== "resuming" || now - peer.detachedAt < window) return;
    this.logger.info({ name: peer.name, role: peer.role }, "resume window passed: session expired");
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#readiness = "draining";
    this.#admin?.close();
    this.#admin?.closeAllConnections();
    if (this.#sweep) this.clock.clearTimeout(this.#sweep);
    await Promise.all([...this.#listeners, ...this.#textListeners].map((l) => l.close()));
    for (const peer of [...this.#peers]) {
      this.#endPeer(peer, ErrorCode.CLOSED, "server is shutting down", CloseCode.SHUTDOWN);
    }
    for (const t of this.#pending) t.close(CloseCode.SHUTDOWN, "server is shutting down");
    this.#pending.clear();
    this.#presence.end();
    this.metrics.close();
    this.logger.info("server closed");
  }
}

/** CLOSE codes that end the link only: the session stays resumable (docs/protocol.md §7). */
const LINK_SCOPED = new Set<string>([
  CloseCode.PROTOCOL_ERROR,
  CloseCode.FRAME_TOO_LARGE,
  CloseCode.HEARTBEAT_TIMEOUT,
  CloseCode.SLOW_CONSUMER,
  CloseCode.TRANSPORT_ERROR,
  CloseCode.REMOTE_CLOSED,
]);
