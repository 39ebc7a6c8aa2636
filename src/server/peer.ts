import { randomBytes } from "node:crypto";
import type { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock } from "../internal/clock.js";
import { LogSampler } from "../internal/log-sampler.js";
import type { Logger } from "../internal/logger.js";
import type { AgentInfo, PresenceSource } from "../presence/presence.js";
import { type Authorizer, RpcEndpoint } from "../rpc/endpoint.js";
import type { StreamHandler } from "../rpc/stream.js";
import type { Handler, PeerInfo } from "../rpc/types.js";
import {
  type SequencedFrame,
  Session,
  type SessionHooks,
  type SessionLimits,
  type SessionState,
} from "../session/session.js";
import type { Transport, TransportCloseInfo } from "../transport/types.js";
import type { DecodeLimits } from "../wire/codec.js";
import { type CloseBody, CloseCode, type HelloBody } from "../wire/frame.js";
import { ORIGIN_FEATURE } from "../wire/origin.js";
import type { Identity } from "./auth-gate.js";
import type { RpcLimits } from "./rpc-limits.js";

type LogArgs = [object | string, string?];
type AnyLog = (...args: LogArgs) => void;

/**
 * A peer's logger: the level checks go to the server's logger, and the child logger that
 * names the peer is made when the first line is written. Most peers never log a line.
 */
class PeerLog implements Logger {
  constructor(
    readonly peer: Peer,
    readonly parent: Logger,
  ) {}
  trace(...args: LogArgs): void {
    if (this.parent.isLevelEnabled("trace")) (this.peer.logger().trace as AnyLog)(...args);
  }
  debug(...args: LogArgs): void {
    if (this.parent.isLevelEnabled("debug")) (this.peer.logger().debug as AnyLog)(...args);
  }
  info(...args: LogArgs): void {
    if (this.parent.isLevelEnabled("info")) (this.peer.logger().info as AnyLog)(...args);
  }
  /** Warnings a peer causes (refusals, broken rules) are sampled: see `Peer.warn`. */
  warn(...args: LogArgs): void {
    if (!this.parent.isLevelEnabled("warn")) return;
    const [first, msg] = args;
    if (typeof first === "string") this.peer.warn({}, first);
    else this.peer.warn(first, msg ?? "");
  }
  error(...args: LogArgs): void {
    if (this.parent.isLevelEnabled("error")) (this.peer.logger().error as AnyLog)(...args);
  }
  isLevelEnabled(level: string): boolean {
    return this.parent.isLevelEnabled(level);
  }
  child(bindings: Record<string, unknown>): Logger {
    return this.peer.logger().child(bindings);
  }
}

/** What a peer needs from its server. */
export interface PeerHost {
  clock: Clock;
  logger: Logger;
  /** Shared by every peer's session. */
  sessionLimits: SessionLimits;
  decodeLimits: DecodeLimits;
  callTimeoutMs: number;
  maxIncomingCalls: number;
  /** Largest frame a peer accepts: larger results and items fail their call instead. */
  maxFrameBytes: number;
  rpcLimits: RpcLimits;
  /** Starts every resume token (a cluster puts the server's id there; empty alone). */
  readonly tokenPrefix: string;
  handlersFor(role: HelloBody["role"]): ReadonlyMap<string, Handler>;
  streamHandlersFor(role: HelloBody["role"]): ReadonlyMap<string, StreamHandler>;
  onPeerState(peer: Peer, state: SessionState, previous: SessionState): void;
  onPeerLinkDown(peer: Peer, info: TransportCloseInfo): void;
  onPeerClose(peer: Peer, close: CloseBody): void;
  /** The peer broke the protocol in a way that costs it its link (the session stays resumable). */
  dropLink(peer: Peer, code: CloseCode, message: string): void;
  /** Whether the peer may call or open `method` now; an error is the call's answer. */
  authorize(peer: Peer, method: string, stream: boolean): MusterError | undefined;
}

/**
 * The server's side of one agent's (or operator's) session. It is its session's hooks itself
 * (methods, not closures). The child logger that names the peer is made only when something
 * is logged (see PeerLog). A server holds one per agent, so per-peer bytes count.
 */
export class Peer implements PresenceSource, SessionHooks, Authorizer {
  readonly id: string;
  /** The resume token: the host's prefix (in a cluster, which server holds the session), then 24 random bytes. */
  readonly token: string;
  readonly role: HelloBody["role"];
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly version: string;
  readonly session: Session;
  readonly rpc: RpcEndpoint;
  readonly connectedSince: number;
  /** Who the peer authenticated as; renewed by every resume's credential (`setIdentity`). */
  identity: Identity;
  /** What handlers see as `ctx.peer`. */
  readonly #info: PeerInfo & { identity: Identity };
  address: string;
  transportKind: string;
  /** Clock time the link was lost, while resuming. */
  detachedAt = 0;
  disconnectReason: string | undefined;
  ended = false;
  /** Told to resume on another server (its server drains): no new calls start here. */
  moving = false;
  /** Clock time the link first held more than the slow-consumer limit (0: it does not). */
  slowSince = 0;
  readonly #clock: Clock;
  readonly #host: PeerHost;
  #logger: Logger | undefined;
  /** Made on the first warning this peer causes. */
  #warnings: LogSampler | undefined;

  /** `carried`: the session id and start of a session handed over from another server. */
  constructor(
    host: PeerHost,
    hello: HelloBody,
    transport: Transport,
    identity: Identity,
    carried?: { id: string; connectedSince: number; token?: string },
  ) {
    this.id = carried?.id ?? randomBytes(8).toString("hex");
    this.token = carried?.token ?? host.tokenPrefix + randomBytes(24).toString("base64url");
    this.connectedSince = carried?.connectedSince ?? Date.now();
    this.#clock = host.clock;
    this.identity = identity;
    this.#host = host;
    this.role = hello.role;
    this.name = hello.name;
    this.labels = hello.labels;
    this.version = hello.version;
    this.address = transport.remoteAddress;
    this.transportKind = transport.kind;
    const log = new PeerLog(this, host.logger);
    // A plain object (no accessor: V8 would keep one with a getter as a dictionary, ~400 bytes).
    this.#info = {
      role: this.role,
      name: this.name,
      labels: this.labels,
      sessionId: this.id,
      remoteAddress: this.address,
      identity,
    };
    this.session = new Session({ clock: host.clock, logger: log, limits: host.sessionLimits }, this);
    this.rpc = new RpcEndpoint(this.session, {
      clock: host.clock,
      logger: log,
      handlers: host.handlersFor(this.role),
      streamHandlers: host.streamHandlersFor(this.role),
      peer: this.#info,
      authorizer: this,
      defaultTimeoutMs: host.callTimeoutMs,
      maxIncomingCalls: host.maxIncomingCalls,
      describeSelf: "the server",
      decodeLimits: host.decodeLimits,
      maxFrameBytes: host.maxFrameBytes,
      sendOrigin: hello.role === "agent" && hello.features?.includes(ORIGIN_FEATURE) === true,
    });
  }

  /** What handlers see as `ctx.peer`. */
  get peerInfo(): PeerInfo {
    return this.#info;
  }

  /**
   * Writes a warning this peer caused (a refusal, a broken rule), naming the peer; past
   * `refusalLogBurst` in an interval they are counted instead, and one line sums them up when
   * the next interval starts or the session ends. A peer repeating a refused request costs a
   * few lines, not a line a request.
   */
  warn(obj: object, msg: string): void {
    if (!this.#host.logger.isLevelEnabled("warn")) return;
    const limits = this.#host.rpcLimits;
    this.#warnings ??= new LogSampler(limits.refusalLogBurst, limits.refusalLogIntervalMs);
    const now = this.#clock.now();
    if (!this.#warnings.admit(now, msg)) return;
    this.#writeSuppressed(now);
    this.logger().warn(obj, msg);
  }

  #writeSuppressed(now: number): void {
    const held = this.#warnings?.takeSuppressed(now);
    if (held !== undefined)
      this.logger().warn(held, `suppressed ${held.suppressed} warnings caused by this peer`);
  }

  flowControlBroken(streams: number, err: MusterError): void {
    const limit = this.#host.rpcLimits.streamViolationsBeforeClose;
    if (streams < limit) return;
    this.#host.dropLink(
      this,
      CloseCode.PROTOCOL_ERROR,
      `${streams} streams broke flow control (items beyond window + credit), the last: ${err.rawMessage}`,
    );
  }

  /** The logger naming this peer (made on first use). */
  logger(): Logger {
    this.#logger ??= this.#host.logger.child({ peer: this.name, role: this.role, session: this.id });
    return this.#logger;
  }

  /** The credential of a resume: handlers see it from now on. */
  setIdentity(identity: Identity): void {
    this.identity = identity;
    this.#info.identity = identity;
  }

  authorize(method: string, stream: boolean): MusterError | undefined {
    return this.#host.authorize(this, method, stream);
  }

  onMessage(frame: SequencedFrame): void {
    this.rpc.receive(frame);
  }
  onState(state: SessionState, previous: SessionState): void {
    this.#host.onPeerState(this, state, previous);
  }
  onLinkDown(info: TransportCloseInfo): void {
    this.#host.onPeerLinkDown(this, info);
  }
  onPeerClose(close: CloseBody): void {
    this.#host.onPeerClose(this, close);
  }

  info(): AgentInfo {
    const state = this.session.state;
    const info: AgentInfo = {
      name: this.name,
      labels: this.labels,
      version: this.version,
      state: state === "closed" ? "offline" : state,
      address: this.address,
      transport: this.transportKind,
      sessionId: this.id,
      connectedSince: this.connectedSince,
      lastSeen: Date.now() - Math.max(0, this.#clock.now() - this.session.lastReceivedAt),
      pendingCalls: this.rpc.pendingOutgoing,
      rttMs: Math.round(this.session.rttMs * 100) / 100,
    };
    if (this.disconnectReason !== undefined && state !== "connected")
      info.disconnectReason = this.disconnectReason;
    return info;
  }

  /** Ends the session for good: pending calls fail with `code`, the link gets CLOSE `closeCode`. */
  end(code: ErrorCode, message: string, closeCode: CloseCode): void {
    if (this.ended) return;
    this.ended = true;
    this.disconnectReason = message;
    this.#writeSuppressed(this.#clock.now());
    this.rpc.fail(new MusterError(code, `${this.role} ${this.name}: ${message}`));
    this.session.close(closeCode, message);
  }
}
