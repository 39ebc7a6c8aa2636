import { randomBytes } from "node:crypto";
import { decodeTokenUnverified } from "../auth/tokens.js";
import { greet, RefusedError } from "../client/greet.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { AsyncQueue } from "../internal/async-queue.js";
import { Backoff, type BackoffOptions } from "../internal/backoff.js";
import { type Clock, systemClock, type TimerHandle } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { optionLimit } from "../internal/limits.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { VERSION } from "../internal/version.js";
import { RpcEndpoint } from "../rpc/endpoint.js";
import { failedStream, type MusterStream, type StreamHandler, type StreamOptions } from "../rpc/stream.js";
import type { CallOptions, Handler } from "../rpc/types.js";
import type { AgentRunOptions } from "../run/agent-runs.js";
import { runInstance } from "../run/agent-runs.js";
import type { InstanceHost } from "../run/instance-host.js";
import { resolveSessionLimits, Session, type SessionLimits } from "../session/session.js";
import { type TextHooks, TextService } from "../text/service.js";
import type { MemoryNetwork } from "../transport/memory.js";
import { NETWORK_PROTOCOLS } from "../transport/schemes.js";
import type { TlsClientOptions, Transport } from "../transport/types.js";
import {
  checkLabels,
  checkName,
  type DecodeHooks,
  type DecodeLimits,
  readWelcomeServers,
} from "../wire/codec.js";
import { type CloseBody, CloseCode, HEADER_BYTES, type HelloBody, type WelcomeBody } from "../wire/frame.js";
import { ORIGIN_FEATURE } from "../wire/origin.js";
import { builtinHandlers } from "./builtins.js";
import { DEFAULT_SERVER_ORDER, type KnownServer, ServerList, type ServerOrder } from "./server-list.js";
import { textCallHandler } from "./text.js";

export type { KnownServer, ServerOrder } from "./server-list.js";

/** Options of `createAgent`. Durations in milliseconds; defaults in `DEFAULTS`. */
export interface AgentOptions {
  /** Public, unique name of the agent. */
  name: string;
  labels?: Record<string, string>;
  /**
   * Server URLs (ws, wss, tcp, tls, grpc, grpcs, http, https, memory). The agent also dials the servers a cluster
   * announces in WELCOME (`agent.servers` lists them all); these URLs are never forgotten.
   */
  servers: readonly string[];
  /**
   * `shuffle`: the first attempt goes to a random one of `servers`, and the list is tried in a
   * random order, so that agents given the same list spread over the servers; `ordered`:
   * `servers[0]` first, then in turn. Either way a dropped link is resumed on the same server
   * first, and a failed attempt moves on to the next server. @default "shuffle"
   */
  serverOrder?: ServerOrder;
  tls?: TlsClientOptions;
  memory?: MemoryNetwork;
  logger?: Logger;
  clock?: Clock;
  /**
   * The credential presented on every HELLO, resumes included: a token from
   * `muster token create --role agent --name NAME`, or an enrolment token (`--role enrol`) for a
   * server started with `--approve`, which then issues the agent a token of its own (event
   * `credential`). A function is called before every attempt, so a token can be rotated live.
   * Not needed with a client certificate (`tls.cert`) or a standalone server.
   */
  token?: string | (() => string | undefined | Promise<string | undefined>);
  /**
   * Answer `sys.ping`, `sys.info` and `muster.text` (text messages the server forwards to
   * `agent.text`). @default true
   */
  builtins?: boolean;
  /**
   * Take part in coordinated runs: the run methods (`muster.run.*`) are answered, for the kinds
   * of stage given. Absent: runs are refused (UNIMPLEMENTED).
   */
  runs?: AgentRunOptions;
  /** What the built-in text commands STOP, QUITTING, RESTART, READY and LOG_ROTATE do. */
  textHooks?: TextHooks;
  /** Reconnect backoff: 500 ms doubling to 30 s, ±50 % jitter after the cap, reset after 10 s connected. */
  reconnect?: BackoffOptions & { stableMs?: number };
  /** @default 10000 */
  connectTimeoutMs?: number;
  /** Default deadline of calls to the server. @default 10000 */
  callTimeoutMs?: number;
  /** A PING is sent when nothing was sent for this long. @default 5000 */
  heartbeatIntervalMs?: number;
  /** @default 12000 */
  suspectAfterMs?: number;
  /** @default 30000 */
  deadAfterMs?: number;
  /** Largest frame accepted, checked from its header before any allocation. @default 1048576 */
  maxFrameBytes?: number;
  /** Deepest nesting of arrays and objects accepted in JSON bodies and payloads. @default 1000 */
  maxJsonDepth?: number;
  /** @default 4096 */
  replayMaxFrames?: number;
  /** @default 16777216 */
  replayMaxBytes?: number;
  /** Calls from the server running at once. @default 1000 */
  maxIncomingCalls?: number;
  /** Version string sent to the server. @default this package's version */
  version?: string;
}

/** The agent's link state. */
export type AgentState = "idle" | "connecting" | "connected" | "suspect" | "resuming" | "closed";

/** What happens to an agent's link, readable with `for await (const e of agent.events())`. */
export type AgentEvent =
  | { type: "connected"; url: string; sessionId: string }
  | {
      type: "resumed";
      url: string;
      sessionId: string;
      replayedToServer: number;
      replayedFromServer: number;
      downtimeMs: number;
    }
  | { type: "expired"; previousSessionId: string }
  | { type: "disconnected"; code: string; reason: string }
  | { type: "suspect" }
  | { type: "recover" }
  | { type: "retry"; url: string; attempt: number; delayMs: number; error: string }
  | { type: "replaced"; reason: string }
  /** Enrolment: the server holds this agent as pending until an operator accepts it. */
  | { type: "pending"; message: string; retryAfterMs: number }
  /** Enrolment accepted: the server issued this token, presented from now on. Keep it. */
  | { type: "credential"; token: string }
  | { type: "closed"; reason: string };

export interface MusterAgent {
  readonly name: string;
  readonly state: AgentState;
  /** Public id of the current session, once connected. */
  readonly sessionId: string | undefined;
  /**
   * The servers this agent may dial: its `servers`, in the order it tries them, then those the
   * last WELCOME announced, with their name, load and state when known. Read-only snapshot.
   */
  readonly servers: readonly KnownServer[];
  /** Starts connecting (and reconnecting, for ever). Returns at once. */
  start(): void;
  /** Resolves when the agent is connected (now or later); rejects if it is closed first. */
  connected(options?: { signal?: AbortSignal }): Promise<void>;
  /** Registers a method the server can call. */
  handle<Req = unknown, Res = unknown>(method: string, handler: Handler<Req, Res>): this;
  /** Calls a method on the server. Queued while disconnected; sent on resume. */
  call<T = unknown>(method: string, request?: unknown, options?: CallOptions): Promise<T>;
  /** Registers a stream the server (or an operator through it) can open on this agent. */
  handleStream<Req = unknown, Item = unknown>(name: string, handler: StreamHandler<Req, Item>): this;
  /**
   * Opens stream `name` on the server. Errors arrive through the iteration; a stream outlives
   * dropped links (its session resends what they lost), not an expired session.
   */
  stream<T = unknown>(name: string, request?: unknown, options?: StreamOptions): MusterStream<T>;
  /**
   * The agent's text service: handlers for one-line text messages (`agent.text.on("HI", …)`),
   * with the built-in commands. The server delivers lines addressed to this agent (or broadcast to all) here;
   * `listenTextAll(urls, { service: agent.text })` takes them from sockets too.
   */
  readonly text: TextService;
  /** Link events from now on. */
  events(): AsyncIterableIterator<AgentEvent>;
  /** Calls `fn` on every event; returns a function that stops it. */
  onEvent(fn: (e: AgentEvent) => void): () => void;
  /** Ends the session (the server is told), stops reconnecting. */
  close(): Promise<void>;
}

/** Creates an agent. Call `start()` to connect. */
export function createAgent(options: AgentOptions): MusterAgent {
  return new Agent(options);
}

/** The most an agent told `moved` waits before resuming elsewhere (spreads a server's agents). */
const MOVED_SPREAD_MS = 250;

/** CLOSE codes after which the server has forgotten the session. */
const SESSION_ENDING = new Set<string>([
  CloseCode.NORMAL,
  CloseCode.REPLACED,
  CloseCode.REJECTED,
  CloseCode.SHUTDOWN,
  CloseCode.UNAUTHENTICATED,
]);

/** True for an enrolment token (read without verifying: the server verifies). */
function isEnrolToken(token: string): boolean {
  try {
    return decodeTokenUnverified(token).role === "enrol";
  } catch {
    return false;
  }
}

class Agent implements MusterAgent {
  readonly name: string;
  readonly text: TextService;
  readonly #labels: Record<string, string>;
  readonly #o: AgentOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #handlers = new Map<string, Handler>();
  /** Stages of coordinated runs booted or running here (with `runs`). */
  #runs: InstanceHost | undefined;
  readonly #streamHandlers = new Map<string, StreamHandler>();
  readonly #backoff: Backoff;
  readonly #subscribers = new Set<AsyncQueue<AgentEvent>>();
  readonly #listeners = new Set<(e: AgentEvent) => void>();
  #state: AgentState = "idle";
  #session!: Session;
  #rpc!: RpcEndpoint;
  #token: string | undefined;
  #sessionId: string | undefined;
  #transport: Transport | undefined;
  #linkDown: (() => void) | undefined;
  #retryAfterMs = 0;
  #wake: (() => void) | undefined;
  #dialAbort: AbortController | undefined;
  #ticker: TimerHandle | undefined;
  #detachedAt = 0;
  readonly #maxFrameBytes: number;
  readonly #decodeLimits: DecodeLimits & DecodeHooks;
  readonly #sessionLimits: { -readonly [K in keyof SessionLimits]: SessionLimits[K] };
  /** A token the server issued at enrolment: presented instead of `options.token`. */
  #issued: string | undefined;
  /** Identifies this agent while an enrolment request waits (see HelloBody.enrolId). */
  readonly #enrolId = randomBytes(18).toString("base64url");
  /** The server said it shuts down: the next attempt goes to another server, not back to it. */
  #advance = false;
  /** The server handed the session over (CLOSE moved): resume elsewhere now, not after a backoff. */
  #moved = false;
  /** The URL and server name of the last WELCOME: where a CLOSE's `servers` came from. */
  #welcomedBy: { url: string; name: string } | undefined;
  #pendingSince = 0;
  readonly #servers: ServerList;
  #waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];

  constructor(options: AgentOptions) {
    const bad = checkName(options.name) ?? checkLabels(options.labels ?? {});
    if (bad) throw new MusterError(ErrorCode.INVALID_ARGUMENT, bad);
    if (options.servers.length === 0)
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "no server URL given");
    const order = options.serverOrder ?? DEFAULT_SERVER_ORDER;
    if (order !== "shuffle" && order !== "ordered")
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `serverOrder must be "shuffle" or "ordered", got ${JSON.stringify(order)}`,
      );
    this.#servers = new ServerList({
      configured: options.servers,
      order,
      canDial: (p) => NETWORK_PROTOCOLS.has(p) || (p === "memory:" && !!options.memory),
    });
    this.name = options.name;
    this.#labels = { ...(options.labels ?? {}) };
    this.#o = options;
    this.#maxFrameBytes = optionLimit(
      options.maxFrameBytes,
      DEFAULTS.maxFrameBytes,
      "maxFrameBytes",
      HEADER_BYTES,
    );
    this.#decodeLimits = {
      maxJsonDepth: optionLimit(options.maxJsonDepth, DEFAULTS.maxJsonDepth, "maxJsonDepth", 1),
      // A bad `servers` in a WELCOME or CLOSE is dropped by the codec, said here: the link goes on.
      onDropped: (message: string) => this.#log.warn({ reason: message }, "frame field ignored"),
    };
    this.#sessionLimits = {
      ...resolveSessionLimits({
        replayMaxFrames: optionLimit(options.replayMaxFrames, DEFAULTS.replayMaxFrames, "replayMaxFrames", 1),
        replayMaxBytes: optionLimit(options.replayMaxBytes, DEFAULTS.replayMaxBytes, "replayMaxBytes", 1),
        heartbeatIntervalMs: optionLimit(
          options.heartbeatIntervalMs,
          DEFAULTS.heartbeatIntervalMs,
          "heartbeatIntervalMs",
          1,
        ),
        suspectAfterMs: optionLimit(options.suspectAfterMs, DEFAULTS.suspectAfterMs, "suspectAfterMs", 1),
        deadAfterMs: optionLimit(options.deadAfterMs, DEFAULTS.deadAfterMs, "deadAfterMs", 1),
        maxJsonDepth: this.#decodeLimits.maxJsonDepth,
      }),
    };
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? silentLogger;
    this.#backoff = new Backoff(options.reconnect);
    this.text = new TextService({
      logger: this.#log.child({ component: "text" }),
      hooks: options.textHooks ?? {},
    });
    if (options.builtins !== false) {
      for (const [k, v] of builtinHandlers(() => ({ name: this.name, labels: this.#labels })))
        this.#handlers.set(k, v);
      this.#handlers.set("muster.text", textCallHandler(this.text) as Handler);
    }
    if (options.runs !== undefined) {
      const runs = runInstance(options.runs, this.#log.child({ component: "runs" }));
      this.#runs = runs.host;
      for (const [k, v] of runs.handlers) this.#handlers.set(k, v);
      for (const [k, v] of runs.streams) this.#streamHandlers.set(k, v);
    }
    this.#handlers.set("muster.config", (req) => this.#applyConfig(req, "the server"));
    this.#handlers.set("muster.servers", (req) => this.#applyServers(req));
    this.#newSession();
  }

  get state(): AgentState {
    return this.#state;
  }
  get sessionId(): string | undefined {
    return this.#sessionId;
  }
  get servers(): readonly KnownServer[] {
    return this.#servers.servers;
  }

  handle<Req, Res>(method: string, handler: Handler<Req, Res>): this {
    this.#handlers.set(method, handler as Handler);
    return this;
  }

  handleStream<Req, Item>(name: string, handler: StreamHandler<Req, Item>): this {
    this.#streamHandlers.set(name, handler as StreamHandler);
    return this;
  }

  stream<T>(name: string, request?: unknown, options?: StreamOptions): MusterStream<T> {
    if (this.#state === "closed")
      return failedStream(name, new MusterError(ErrorCode.CLOSED, "agent is closed"));
    return this.#rpc.openStream<T>(name, request, options);
  }

  call<T>(method: string, request?: unknown, options?: CallOptions): Promise<T> {
    if (this.#state === "closed") return Promise.reject(new MusterError(ErrorCode.CLOSED, "agent is closed"));
    return this.#rpc.call(method, request, options) as Promise<T>;
  }

  events(): AsyncIterableIterator<AgentEvent> {
    const q: AsyncQueue<AgentEvent> = new AsyncQueue({
      maxItems: 10_000,
      onReturn: () => this.#subscribers.delete(q),
    });
    this.#subscribers.add(q);
    return q;
  }

  onEvent(fn: (e: AgentEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  connected(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === "connected" || this.#state === "suspect") return Promise.resolve();
    if (this.#state === "closed") return Promise.reject(new MusterError(ErrorCode.CLOSED, "agent is closed"));
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      this.#waiters.push(w);
      options.signal?.addEventListener(
        "abort",
        () => {
          this.#waiters = this.#waiters.filter((x) => x !== w);
          reject(new MusterError(ErrorCode.CANCELLED, "stopped waiting for the connection"));
        },
        { once: true },
      );
    });
  }

  start(): void {
    if (this.#state !== "idle") return;
    this.#setState("connecting");
    const tick = (): void => {
      const every = Math.max(10, Math.min(1000, Math.floor(this.#sessionLimits.heartbeatIntervalMs / 4)));
      const now = this.#clock.now();
      this.#session.tick(now);
      this.#rpc.expireIncoming(now);
      if (this.#state !== "closed") {
        this.#ticker = this.#clock.setTimeout(tick, every);
        this.#ticker.unref();
      }
    };
    tick();
    void this.#run();
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#setState("closed");
    void this.#runs?.close();
    if (this.#ticker) this.#clock.clearTimeout(this.#ticker);
    this.#dialAbort?.abort();
    this.#wake?.();
    this.#session.close(CloseCode.NORMAL, "agent closing");
    this.#rpc.fail(new MusterError(ErrorCode.CLOSED, "agent closed"));
    this.#linkDown?.();
    for (const w of this.#waiters.splice(0)) w.reject(new MusterError(ErrorCode.CLOSED, "agent closed"));
    this.#emit({ type: "closed", reason: "closed by the application" });
    for (const q of this.#subscribers) q.end();
  }

  // --- internals -----------------------------------------------------------------------------

  #newSession(): void {
    const logger = this.#log;
    this.#session = new Session(
      { clock: this.#clock, logger, limits: this.#sessionLimits },
      {
        onMessage: (f) => this.#rpc.receive(f),
        onState: (s, prev) => {
          if (s === "suspect") {
            this.#log.warn("server silent: suspect");
            this.#setState("suspect");
            this.#emit({ type: "suspect" });
          } else if (s === "connected" && prev === "suspect") {
            this.#setState("connected");
            this.#emit({ type: "recover" });
          }
        },
        onLinkDown: (info) => this.#onLinkDown(info.code, info.message),
        onPeerClose: (close) => this.#onServerClose(close),
      },
    );
    this.#rpc = new RpcEndpoint(this.#session, {
      clock: this.#clock,
      logger,
      handlers: this.#handlers,
      streamHandlers: this.#streamHandlers,
      peer: { role: "server", name: "server", labels: {}, sessionId: "", remoteAddress: "" },
      defaultTimeoutMs: this.#o.callTimeoutMs ?? DEFAULTS.callTimeoutMs,
      maxIncomingCalls: this.#o.maxIncomingCalls ?? 1000,
      describePeer: "the server",
      describeSelf: `agent ${this.name}`,
      decodeLimits: this.#decodeLimits,
      // The server announces no limit: ours (the same default on both sides) stands for it, so
      // that a result too large fails its call instead of the link.
      maxFrameBytes: this.#maxFrameBytes,
      // The server names who it relays a call for: handlers see it as ctx.caller.
      acceptOrigin: true,
    });
  }

  /** The server forgot the session (or we must forget it): pending calls fail, a new one starts. */
  #dropSession(code: ErrorCode, message: string): void {
    this.#rpc.fail(new MusterError(code, message));
    this.#session.close(CloseCode.NORMAL, message);
    this.#token = undefined;
    this.#newSession();
  }

  #onLinkDown(code: string, reason: string): void {
    this.#transport = undefined;
    this.#detachedAt = this.#clock.now();
    if (this.#state !== "closed") {
      this.#log.warn({ code, reason }, "link to the server lost: resuming");
      this.#setState("resuming");
      this.#emit({ type: "disconnected", code, reason });
    }
    this.#linkDown?.();
  }

  #onServerClose(close: CloseBody): void {
    this.#retryAfterMs = close.retryAfterMs ?? 0;
    // A draining server: go to another one (with `moved`, resuming the session there).
    if (close.code === CloseCode.SHUTDOWN || close.code === CloseCode.MOVED) {
      this.#advance = true;
      // The servers of the cluster as the one sending this agent away sees them now: newer than
      // the last WELCOME's, which may name servers since gone and miss those since started.
      if (close.servers !== undefined && this.#welcomedBy !== undefined) {
        const { url, name } = this.#welcomedBy;
        const learned = this.#servers.learn(close.servers, url, name);
        this.#log.debug(
          {
            announced: close.servers.length,
            learned: learned.learned,
            configured: learned.matchedConfigured,
          },
          "cluster servers announced on leaving",
        );
      }
    }
    if (close.code === CloseCode.MOVED) this.#moved = true;
    if (close.code === CloseCode.UNAUTHENTICATED) {
      this.#log.error({ reason: close.message }, "the server no longer accepts this agent's credential");
    }
    if (close.code === CloseCode.REPLACED) {
      this.#log.error(
        { reason: close.message },
        "another agent with the same name replaced this one: stopping",
      );
      this.#emit({ type: "replaced", reason: close.message });
      this.#rpc.fail(new MusterError(ErrorCode.REPLACED, close.message));
      void this.close();
      return;
    }
    const t = this.#transport;
    if (SESSION_ENDING.has(close.code)) {
      this.#log.warn({ code: close.code, reason: close.message }, "server ended the session");
      this.#dropSession(ErrorCode.UNAVAILABLE, `server ended the session (${close.code}): ${close.message}`);
      // The new session never had this link, so its close would reach nobody: the link is down now.
      if (t) {
        t.close(CloseCode.NORMAL, "server closed the session");
        this.#onLinkDown(close.code, close.message);
      }
      return;
    }
    if (t) t.close(CloseCode.NORMAL, "server closed the session");
  }

  async #run(): Promise<void> {
    let pick = this.#servers.first();
    this.#log.debug({ url: pick.url, why: pick.why }, "server picked");
    /** The server of the last connection, until the agent has said it moves away from it. */
    let leaving: string | undefined;
    while (!this.#isClosed()) {
      const url = pick.url;
      let error: string;
      try {
        await this.#connectOnce(url);
        leaving = url;
        const since = this.#clock.now();
        await new Promise<void>((resolve) => {
          this.#linkDown = resolve;
          if (!this.#transport) resolve();
        });
        this.#linkDown = undefined;
        if (this.#clock.now() - since >= (this.#o.reconnect?.stableMs ?? DEFAULTS.reconnectStableMs)) {
          this.#backoff.reset();
        }
        error = "link lost";
        if (this.#advance) {
          // The server shuts down or drains: straight to another one, not back to it.
          this.#advance = false;
          // A session handed over in order is no failure: attempts after it start from the
          // shortest backoff, whatever came before.
          if (this.#moved) this.#backoff.reset();
          this.#servers.draining(url);
          pick = this.#servers.next(url);
          error = "the server shuts down";
        } else pick = this.#servers.resume();
      } catch (err) {
        const e = MusterError.from(err, ErrorCode.UNAVAILABLE);
        error = e.rawMessage;
        if (err instanceof RefusedError) {
          this.#retryAfterMs = err.close.retryAfterMs ?? 0;
          this.#onRefused(url, err);
        } else this.#log.debug({ url, err: e.rawMessage }, "connect failed");
        // A pending enrolment asks the same server again; anything else tries the next one.
        if (!(err instanceof RefusedError && err.close.code === CloseCode.PENDING)) {
          if (err instanceof RefusedError && err.close.code === CloseCode.SHUTDOWN)
            this.#servers.draining(url);
          pick = this.#servers.next(url);
        }
      }
      if (this.#isClosed()) break;
      if (leaving !== undefined && pick.url !== leaving) {
        this.#log.info(
          { from: leaving, to: pick.url, why: pick.why, after: error },
          "moving to another server",
        );
        leaving = undefined;
      } else this.#log.debug({ url: pick.url, why: pick.why }, "server picked");
      // A session handed over waits on its server (10 s at most): go at once, a little spread
      // out, and without counting it as a failure.
      const delayMs = this.#moved
        ? Math.floor(Math.random() * MOVED_SPREAD_MS)
        : Math.max(this.#backoff.next(), this.#retryAfterMs);
      this.#moved = false;
      this.#retryAfterMs = 0;
      this.#emit({
        type: "retry",
        url: pick.url,
        attempt: this.#backoff.attempt,
        delayMs,
        error,
      });
      await this.#sleep(delayMs);
    }
  }

  /** A WELCOME came in on a link to `url`: it is the server to resume on, and says who else is there. */
  #welcomed(url: string, w: WelcomeBody): void {
    this.#servers.connected(url);
    this.#welcomedBy = { url, name: w.server.name };
    const learned = this.#servers.learn(w.servers, url, w.server.name);
    if (w.servers !== undefined) {
      this.#log.debug(
        {
          announced: w.servers.length,
          learned: learned.learned,
          configured: learned.matchedConfigured,
          ...(learned.unusable.length > 0 ? { unusable: learned.unusable.slice(0, 8) } : {}),
        },
        "cluster servers announced",
      );
    }
  }

  /** A server refused the handshake: say why, loudly when it is about the credential. */
  #onRefused(url: string, err: RefusedError): void {
    const close = err.close;
    if (close.code === CloseCode.PENDING) {
      // Polling at the server's pace, not the growing backoff: the wait is for a person.
      this.#backoff.reset();
      if (this.#pendingSince === 0) {
        this.#pendingSince = this.#clock.now();
        this.#log.warn(
          { url, reason: close.message },
          "enrolment pending: waiting for an operator to accept this agent",
        );
      }
      this.#emit({ type: "pending", message: close.message, retryAfterMs: close.retryAfterMs ?? 0 });
    } else if (close.code === CloseCode.UNAUTHENTICATED || close.code === CloseCode.REJECTED) {
      this.#log.error(
        { url, code: close.code, reason: close.message },
        "the server refused this agent: retrying",
      );
    } else {
      this.#log.debug({ url, code: close.code, reason: close.message }, "connect refused");
    }
  }

  /** The credential for the next HELLO: the token issued at enrolment, else `options.token`. */
  async #credential(): Promise<string | undefined> {
    if (this.#issued !== undefined) return this.#issued;
    const t = this.#o.token;
    return typeof t === "function" ? await t() : t;
  }

  /**
   * The cluster's servers, told by the server when they change (`muster.servers`, with the
   * checks and effect of a WELCOME's `servers`): a malformed list is refused, the list kept.
   */
  #applyServers(req: unknown): { servers: number } {
    const read = readWelcomeServers((req as { servers?: unknown } | undefined)?.servers);
    if ("error" in read) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `muster.servers: ${read.error}`);
    const by = this.#welcomedBy;
    if (by === undefined) throw new MusterError(ErrorCode.UNAVAILABLE, "muster.servers: not connected yet");
    const learned = this.#servers.learn(read.servers, by.url, by.name);
    this.#log.debug(
      { announced: read.servers.length, learned: learned.learned, configured: learned.matchedConfigured },
      "cluster servers announced",
    );
    return { servers: this.#servers.servers.length };
  }

  /** Settings the server pushes (`muster.config`), or announces in WELCOME. */
  #applyConfig(req: unknown, from: string): { heartbeatIntervalMs: number } {
    const hb = (req as { heartbeatIntervalMs?: unknown } | undefined)?.heartbeatIntervalMs;
    if (typeof hb !== "number" || !Number.isInteger(hb) || hb < 100 || hb > 300_000) {
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        "muster.config: heartbeatIntervalMs must be 100–300000 ms",
      );
    }
    const l = this.#sessionLimits;
    if (l.heartbeatIntervalMs !== hb) {
      l.heartbeatIntervalMs = hb;
      l.suspectAfterMs = Math.max(this.#o.suspectAfterMs ?? DEFAULTS.suspectAfterMs, Math.round(hb * 2.4));
      l.deadAfterMs = Math.max(this.#o.deadAfterMs ?? DEFAULTS.deadAfterMs, hb * 6);
      this.#log.info({ heartbeatIntervalMs: hb, from }, "heartbeat interval changed");
    }
    return { heartbeatIntervalMs: l.heartbeatIntervalMs };
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      // Not unref()ed: an agent waiting to reconnect is alive and must keep its process alive.
      const t = this.#clock.setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        this.#clock.clearTimeout(t);
        resolve();
      };
    });
  }

  async #connectOnce(url: string): Promise<void> {
    this.#dialAbort = new AbortController();
    const resuming = this.#token !== undefined;
    const auth = await this.#credential();
    const hello: HelloBody = {
      role: "agent",
      name: this.name,
      labels: this.#labels,
      version: this.#o.version ?? VERSION,
      features: [ORIGIN_FEATURE],
      ...(resuming ? { token: this.#token } : {}),
    };
    if (auth !== undefined) {
      hello.auth = auth;
      if (isEnrolToken(auth)) hello.enrolId = this.#enrolId;
    }
    const link = await greet(url, hello, resuming ? this.#session.lastReceived : 0, {
      clock: this.#clock,
      logger: this.#log,
      connectTimeoutMs: this.#o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      maxFrameBytes: this.#maxFrameBytes,
      decodeLimits: this.#decodeLimits,
      tls: this.#o.tls,
      memory: this.#o.memory,
      signal: this.#dialAbort.signal,
      onFrame: (t, bytes) => this.#session.receive(t, bytes),
      onClose: (t, info) => this.#session.linkClosed(t, info),
      onDrain: (t) => this.#session.linkDrained(t),
    });
    if (this.#isClosed()) {
      link.release();
      link.transport.close(CloseCode.NORMAL, "agent closed");
      return;
    }
    const w = link.welcome;
    const previousSessionId = this.#sessionId;
    if (resuming && !w.resumed) {
      this.#log.warn({ previousSessionId }, "session expired on the server: starting a new one");
      this.#dropSession(
        ErrorCode.SESSION_EXPIRED,
        "the server no longer had this session (resume window passed or server restarted)",
      );
      this.#emit({ type: "expired", previousSessionId: previousSessionId ?? "" });
    } else if (w.resumed && !this.#session.canResumeFrom(link.serverAck)) {
      link.release();
      link.transport.close(CloseCode.PROTOCOL_ERROR, "server ack outside the replay window");
      this.#dropSession(
        ErrorCode.SESSION_EXPIRED,
        "server resumed from a point this agent cannot replay from",
      );
      throw new MusterError(ErrorCode.PROTOCOL_ERROR, "server ack outside the replay window");
    }
    if (w.auth !== undefined) {
      this.#issued = w.auth;
      this.#log.info("enrolled: the server issued this agent a token");
      this.#emit({ type: "credential", token: w.auth });
    }
    this.#pendingSince = 0;
    this.#welcomed(url, w);
    // The server's heartbeat unless this agent was given its own.
    if (
      this.#o.heartbeatIntervalMs === undefined &&
      w.heartbeatIntervalMs >= 100 &&
      w.heartbeatIntervalMs <= 300_000
    )
      this.#applyConfig({ heartbeatIntervalMs: w.heartbeatIntervalMs }, "WELCOME");
    this.#token = w.token;
    this.#sessionId = w.sessionId;
    this.#transport = link.transport;
    const replayed = this.#session.attach(link.transport, w.resumed ? link.serverAck : 0);
    this.#setState("connected");
    link.release();
    if (w.resumed) {
      const downtimeMs = Math.round(this.#clock.now() - this.#detachedAt);
      this.#log.info(
        { url, replayedToServer: replayed, replayedFromServer: w.replaying, downtimeMs },
        "session resumed",
      );
      this.#emit({
        type: "resumed",
        url,
        sessionId: w.sessionId,
        replayedToServer: replayed,
        replayedFromServer: w.replaying,
        downtimeMs,
      });
    } else {
      this.#log.info({ url, session: w.sessionId, server: w.server.name }, "connected");
      this.#emit({ type: "connected", url, sessionId: w.sessionId });
    }
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
  }

  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #setState(s: AgentState): void {
    if (this.#state === "closed") return;
    this.#state = s;
  }

  #emit(e: AgentEvent): void {
    for (const q of this.#subscribers) q.push(e);
    for (const fn of this.#listeners) {
      try {
        fn(e);
      } catch (err) {
        this.#log.warn({ err }, "event listener threw");
      }
    }
  }
}
