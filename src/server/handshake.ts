import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { truncateForLog } from "../internal/log-safe.js";
import { VERSION } from "../internal/version.js";
import type { SessionSnapshot } from "../session/session.js";
import type { Transport, TransportCloseInfo } from "../transport/types.js";
import { decodeFrame, encodeFrame } from "../wire/codec.js";
import { describeFrame } from "../wire/describe.js";
import {
  type CloseBody,
  CloseCode,
  type Frame,
  type FrameOf,
  FrameType,
  type HelloBody,
  type WelcomeServers,
} from "../wire/frame.js";
import type { Admission } from "./admission.js";
import { welcomeServers } from "./announce.js";
import type { AuthGate, GateVerdict, Identity } from "./auth-gate.js";
import type { Fleet } from "./fleet.js";
import type { ServerMetrics } from "./metrics.js";
import { Peer, type PeerHost } from "./peer.js";

/** What the handshake needs of its server besides the fleet, the gate and admission. */
export interface HandshakeHost extends PeerHost {
  /** The server's name, told to every peer in WELCOME. */
  readonly serverName: string;
  readonly resumeWindowMs: number;
  readonly metrics: ServerMetrics;
  /** Closed: new links are turned away. */
  readonly isClosed: boolean;
  /** Draining: new sessions are refused with a retry hint (resumes are still taken). */
  readonly isDraining: boolean;
  /** The servers to announce in WELCOME (a cluster's live ones), if any. */
  readonly announce: (() => WelcomeServers | undefined) | undefined;
  /** In a cluster: where a session held by another server is taken over from. */
  readonly takeover: Takeover | undefined;
}

/** A session handed over by the server that held it (see docs/cluster.md, handoff). */
export interface Handoff {
  /** The session's id and start, kept across servers. */
  id: string;
  connectedSince: number;
  /** Who the session belonged to: the new credential must be the same subject and role. */
  subject: string;
  role: string;
  nextCallId: number;
  snapshot: SessionSnapshot;
}

/** Takes sessions over from other servers of a cluster. */
export interface Takeover {
  /** True when `token` names a session another live server holds (worth asking for). */
  claimable(token: string): boolean;
  /** Asks its server for the session; undefined when it cannot be had (gone, busy, too large). */
  take(token: string, hello: HelloBody): Promise<Handoff | undefined>;
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
    readonly handshake: Handshake,
    /** What the connection counts under at admission (see `addressKey`). */
    readonly key: string,
  ) {}
  stopTimer(clock: Clock): void {
    if (this.timer) clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
  onFrame(bytes: Uint8Array): void {
    if (this.peer) this.peer.session.receive(this.transport, bytes);
    else if (this.verifying) this.handshake.linkEarlyFrame(this);
    else this.handshake.linkHello(this, bytes);
  }
  onClose(info: TransportCloseInfo): void {
    this.gone = true;
    this.handshake.linkGone(this);
    this.peer?.session.linkClosed(this.transport, info);
  }
  onDrain(): void {
    this.peer?.session.linkDrained(this.transport);
  }
}

/** Marks a takeover that was asked for and refused: the HELLO goes on as a resume of nothing. */
const NO_HANDOFF: Handoff = {
  id: "",
  connectedSince: 0,
  subject: "",
  role: "",
  nextCallId: 1,
  snapshot: { lastReceived: 0, lastSent: 0, firstSeq: 1, frames: [], backlog: [] },
};

/**
 * An immediate runs after the reads of its loop iteration: one queued from it runs after the
 * next iteration's reads, which take whatever arrived meanwhile.
 */
function applyVerdict(
  handshake: Handshake,
  link: Link,
  frame: FrameOf<typeof FrameType.HELLO>,
  verdict: GateVerdict,
): void {
  handshake.linkVerdict(link, frame, verdict);
}

/**
 * From an accepted connection to a session: admission, the HELLO, its credential, then a
 * refusal, a resume of a session the fleet holds, or a new session registered in the fleet.
 */
export class Handshake {
  /** Connections accepted and not yet past their handshake. */
  readonly #pending = new Set<Transport>();

  constructor(
    readonly host: HandshakeHost,
    readonly fleet: Fleet,
    readonly gate: AuthGate,
    readonly admission: Admission,
    readonly timeoutMs: number,
  ) {}

  accept(transport: Transport): void {
    const { clock, logger } = this.host;
    if (this.host.isClosed) {
      transport.close(CloseCode.SHUTDOWN, "server is shutting down");
      return;
    }
    const verdict = this.admission.admit(transport.remoteAddress, clock.now());
    if (!verdict.ok) {
      // A storm's refusals are expected (the rate limit doing its job): debug, not warn.
      const level = verdict.reason === "handshake_rate" ? "debug" : "warn";
      logger[level](
        { remote: transport.remoteAddress, reason: verdict.reason, retryAfterMs: verdict.retryAfterMs },
        "connection refused",
      );
      this.#reject(transport, CloseCode.BUSY, verdict.message, verdict.retryAfterMs);
      return;
    }
    this.#pending.add(transport);
    const link = new Link(transport, this, verdict.key);
    link.timer = clock.setTimeout(() => {
      link.timer = undefined;
      if (link.peer) return;
      logger.warn({ remote: transport.remoteAddress }, "no HELLO within the handshake timeout: closing");
      this.#reject(transport, CloseCode.HANDSHAKE_TIMEOUT, "no HELLO within the handshake timeout");
    }, this.timeoutMs);
    link.timer.unref();
    transport.setHandler(link);
  }

  /** Closes every connection still in its handshake (the server is closing). */
  closePending(): void {
    for (const t of this.#pending) t.close(CloseCode.SHUTDOWN, "server is shutting down");
    this.#pending.clear();
  }

  /** The first frame on a link (methods rather than closures per link: see Link). */
  linkHello(link: Link, bytes: Uint8Array): void {
    link.stopTimer(this.host.clock);
    const frame = this.#decodeHello(link.transport, bytes);
    if (frame === undefined) {
      this.#pending.delete(link.transport);
      return;
    }
    link.verifying = true;
    const hello = frame.hello;
    const resuming = hello.token !== undefined && this.fleet.byToken(hello.token)?.ended === false;
    this.gate
      .checkHello(hello, link.transport, this.host.clock.now(), resuming)
      .then((verdict) => {
        // The verdict may come in the very read that brought the HELLO (a cached or standalone
        // check resolves at once): the WELCOME then waits for the next turn of I/O, so that a
        // frame the dialer sent with or right behind its HELLO is read first and refused
        // (protocol §6.1) however the bytes were split, rather than refused or served by chance.
        setImmediate(applyVerdict, this, link, frame, verdict);
      })
      .catch((err: unknown) => this.linkFailed(link, err));
  }

  /** The HELLO's verdict, one turn of I/O after it came (see linkHello). */
  linkVerdict(
    link: Link,
    frame: FrameOf<typeof FrameType.HELLO>,
    verdict: GateVerdict,
    handoff?: Handoff,
  ): void {
    const hello = frame.hello;
    const takeover = this.host.takeover;
    if (
      handoff === undefined &&
      verdict.ok &&
      takeover !== undefined &&
      hello.token !== undefined &&
      this.fleet.byToken(hello.token) === undefined &&
      takeover.claimable(hello.token)
    ) {
      // Another server of the cluster holds the session: it is asked for it (the link waits).
      takeover
        .take(hello.token, hello)
        .catch(() => undefined)
        .then((h) => {
          if (h === undefined) this.linkVerdict(link, frame, verdict, NO_HANDOFF);
          else if (link.gone || !link.transport.open) this.#parkHandoff(hello, h, verdict, link.transport);
          else this.linkVerdict(link, frame, verdict, h);
        });
      return;
    }
    link.verifying = false;
    this.#pending.delete(link.transport);
    // Gone, or closing (a frame came before the WELCOME): no session for it.
    if (link.gone || this.host.isClosed || !link.transport.open) return;
    try {
      const taken = handoff === NO_HANDOFF ? undefined : handoff;
      link.peer = this.#admitHello(link.transport, hello, frame.ack, verdict, taken);
    } catch (err) {
      this.linkFailed(link, err);
    }
  }

  /** A handed-over session whose link went meanwhile: kept here, detached, to be resumed. */
  #parkHandoff(hello: HelloBody, h: Handoff, verdict: GateVerdict, transport: Transport): void {
    this.#pending.delete(transport);
    if (!verdict.ok || this.host.isClosed) return;
    const peer = this.#adopt(hello, h, verdict.identity, transport, hello.token);
    if (peer === undefined) return;
    this.fleet.add(peer, transport.remoteAddress);
    this.fleet.onPeerLinkDown(peer, {
      code: CloseCode.REMOTE_CLOSED,
      message: "the link closed during the handoff",
    });
  }

  /** A Peer holding a handed-over session, or undefined when the credential does not match it. */
  #adopt(
    hello: HelloBody,
    h: Handoff,
    identity: Identity,
    transport: Transport,
    token?: string,
  ): Peer | undefined {
    if (identity.subject !== h.subject || identity.role !== h.role) {
      this.host.logger.warn(
        { peer: hello.name, subject: identity.subject, was: h.subject },
        "handoff refused: the credential is not the session's",
      );
      return undefined;
    }
    const peer = new Peer(this.host, hello, transport, identity, {
      id: h.id,
      connectedSince: h.connectedSince,
      token,
    });
    peer.session.restore(h.snapshot);
    peer.rpc.nextCallId = h.nextCallId;
    return peer;
  }

  /** The handshake failed inside the server: this connection ends, the rest go on. */
  linkFailed(link: Link, err: unknown): void {
    // Nothing a peer sends may take the process down.
    const e = MusterError.from(err);
    this.host.logger.error(
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
    this.host.logger.warn({ remote: link.transport.remoteAddress }, "frame before the WELCOME: closing");
    this.#reject(link.transport, CloseCode.PROTOCOL_ERROR, "a frame arrived before the WELCOME: wait for it");
  }

  linkGone(link: Link): void {
    link.stopTimer(this.host.clock);
    this.#pending.delete(link.transport);
    this.admission.release(link.key);
  }

  #reject(transport: Transport, code: CloseCode, message: string, retryAfterMs?: number): void {
    const close: CloseBody = { code, message };
    if (retryAfterMs !== undefined) close.retryAfterMs = retryAfterMs;
    transport.send(encodeFrame({ type: FrameType.CLOSE, seq: 0, ack: 0, close }));
    transport.close(code, message);
  }

  #decodeHello(transport: Transport, bytes: Uint8Array): FrameOf<typeof FrameType.HELLO> | undefined {
    const logger = this.host.logger;
    let frame: Frame;
    try {
      frame = decodeFrame(bytes, this.host.decodeLimits);
    } catch (err) {
      const e = MusterError.from(err, ErrorCode.PROTOCOL_ERROR);
      logger.warn(
        { remote: transport.remoteAddress, err: truncateForLog(e.rawMessage) },
        "bad handshake: closing",
      );
      this.#reject(transport, CloseCode.PROTOCOL_ERROR, e.rawMessage);
      return undefined;
    }
    if (logger.isLevelEnabled("trace")) {
      logger.trace({ dir: "in", remote: transport.remoteAddress, frame: describeFrame(frame) }, "frame");
    }
    if (frame.type !== FrameType.HELLO) {
      logger.warn({ remote: transport.remoteAddress, type: frame.type }, "first frame is not HELLO: closing");
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
    handoff?: Handoff,
  ): Peer | undefined {
    const { metrics, logger } = this.host;
    if (!verdict.ok) {
      const quiet = verdict.reason === "pending" || verdict.reason === "rate_limited";
      // Never the credential itself: who, from where, and why.
      logger[quiet ? "debug" : "warn"](
        {
          remote: transport.remoteAddress,
          peer: hello.name,
          role: hello.role,
          reason: verdict.reason,
          why: truncateForLog(verdict.message),
        },
        "connection refused by authentication",
      );
      metrics.recordHandshake("refused");
      this.#reject(transport, verdict.close, verdict.message, verdict.retryAfterMs);
      return undefined;
    }
    const identity = verdict.identity;
    let expired = false;
    if (hello.token !== undefined) {
      const old = this.fleet.byToken(hello.token);
      // The window is exact: a session past it is gone even if the sweep has not run yet.
      if (old && !old.ended) this.fleet.expireIfPast(old, this.host.clock.now());
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
        metrics.recordHandshake("resumed");
        return this.#resume(old, transport, peerAck);
      }
      if (handoff !== undefined) {
        const peer = this.#adopt(hello, handoff, identity, transport);
        if (peer?.session.canResumeFrom(peerAck)) {
          this.fleet.add(peer, transport.remoteAddress);
          peer.detachedAt = this.host.clock.now();
          metrics.recordHandshake("resumed");
          logger.info({ peer: hello.name, session: peer.id }, "session taken over from another server");
          return this.#resume(peer, transport, peerAck);
        }
        peer?.session.close(CloseCode.NORMAL, "handoff: the dialer's ack is outside the replay window");
      }
      expired = true;
      logger.info(
        { peer: hello.name, remote: transport.remoteAddress },
        "resume refused: session unknown or expired",
      );
    }
    if (this.host.isDraining) {
      metrics.recordHandshake("refused");
      this.#reject(
        transport,
        CloseCode.SHUTDOWN,
        "the server is draining: connect to another server",
        DEFAULTS.drainRetryAfterMs,
      );
      return undefined;
    }
    metrics.recordHandshake(expired ? "expired" : "new");
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
        heartbeatIntervalMs: this.host.sessionLimits.heartbeatIntervalMs,
        resumeWindowMs: this.host.resumeWindowMs,
        server: { name: this.host.serverName, version: VERSION },
        ...(issued !== undefined ? { auth: issued } : {}),
        ...welcomeServers(this.host.announce, this.host.logger),
      },
    };
    const logger = this.host.logger;
    if (logger.isLevelEnabled("trace")) {
      logger.trace({ dir: "out", remote: transport.remoteAddress, frame: describeFrame(frame) }, "frame");
    }
    transport.send(encodeFrame(frame));
  }

  #resume(peer: Peer, transport: Transport, peerAck: number): Peer {
    const now = this.host.clock.now();
    const downtimeMs = peer.detachedAt > 0 ? Math.round(now - peer.detachedAt) : 0;
    peer.address = transport.remoteAddress;
    peer.transportKind = transport.kind;
    this.#welcome(peer, transport, true, false, peer.session.lastSent - peerAck);
    const replayed = peer.session.attach(transport, peerAck);
    peer.detachedAt = 0;
    peer.disconnectReason = undefined;
    this.host.logger.info({ peer: peer.name, role: peer.role, replayed, downtimeMs }, "session resumed");
    this.fleet.announceResume(peer, replayed, downtimeMs);
    return peer;
  }

  #newSession(
    hello: HelloBody,
    transport: Transport,
    expired: boolean,
    identity: Identity,
    issued: string | undefined,
  ): Peer {
    const peer = new Peer(this.host, hello, transport, identity);
    const previous = this.fleet.add(peer, transport.remoteAddress);
    this.#welcome(peer, transport, false, expired, 0, issued);
    peer.session.attach(transport, 0);
    this.host.logger.info(
      {
        peer: peer.name,
        role: peer.role,
        remote: transport.remoteAddress,
        transport: transport.kind,
        session: peer.id,
        as: `${identity.role}:${identity.subject} (${identity.via})`,
      },
      hello.role === "agent" ? "agent joined" : "operator connected",
    );
    this.fleet.announce(peer, previous);
    return peer;
  }
}
