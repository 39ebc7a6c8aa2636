import type { ErrorCode } from "../errors/codes.js";
import { ErrorCode as Codes } from "../errors/codes.js";
import type { Clock } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { truncateForLog } from "../internal/log-safe.js";
import type { Logger } from "../internal/logger.js";
import { Presence } from "../presence/presence.js";
import type { PeerInfo } from "../rpc/types.js";
import type { SessionState } from "../session/session.js";
import type { TransportCloseInfo } from "../transport/types.js";
import { encodeFrame } from "../wire/codec.js";
import { type CloseBody, CloseCode, FrameType } from "../wire/frame.js";
import type { AuthGate } from "./auth-gate.js";
import type { ServerMetrics } from "./metrics.js";
import type { Peer } from "./peer.js";

/** What the fleet reads from its server (live: runtime flags change some of these). */
export interface FleetHost {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  readonly resumeWindowMs: number;
  readonly callTimeoutMs: number;
}

export interface FleetOptions {
  /** A link holding more than this many unsent bytes for `slowMs` is dropped (0: never). */
  slowBytes: number;
  slowMs: number;
  /** How long a departed agent stays listed as offline. */
  offlineRetentionMs?: number;
}

/**
 * Who is connected to this server: every session (agents and operators) by resume token, the
 * agents by name, and their presence. It ends sessions (replacement, expiry, revocation,
 * shutdown) and runs the periodic sweep over them. It knows nothing of links being accepted
 * (the handshake) or of calls being delivered (the router).
 */
export class Fleet {
  readonly presence = new Presence();
  readonly #byToken = new Map<string, Peer>();
  readonly #byName = new Map<string, Peer>();
  readonly #peers = new Set<Peer>();
  /** Operators' handler views (`ctx.peer`) to their peers, for relay refusals. */
  readonly #operatorOf = new WeakMap<PeerInfo, Peer>();

  constructor(
    readonly host: FleetHost,
    readonly gate: AuthGate,
    readonly options: FleetOptions,
  ) {}

  /** The live session of agent `name` (not ended, not moving to another server), if any. */
  live(name: string): Peer | undefined {
    const peer = this.#byName.get(name);
    return peer === undefined || peer.ended || peer.moving ? undefined : peer;
  }

  /** The session a resume token names (ended or not). */
  byToken(token: string): Peer | undefined {
    return this.#byToken.get(token);
  }

  /** The operator whose handler view is `info`. */
  operatorOf(info: PeerInfo): Peer | undefined {
    return this.#operatorOf.get(info);
  }

  /** Agents with a session here now (resuming ones included). */
  get liveAgents(): number {
    return this.#byName.size;
  }

  get peers(): ReadonlySet<Peer> {
    return this.#peers;
  }

  /**
   * Registers a new session. An agent's earlier session under the same name is ended with
   * REPLACED and returned; presence lists the new one.
   */
  add(peer: Peer, remote: string): Peer | undefined {
    this.#peers.add(peer);
    if (peer.role === "operator") this.#operatorOf.set(peer.peerInfo, peer);
    this.#byToken.set(peer.token, peer);
    if (peer.role !== "agent") return undefined;
    const previous = this.#byName.get(peer.name);
    this.#byName.set(peer.name, peer);
    if (previous) {
      this.host.logger.warn(
        { peer: peer.name, old: previous.address, new: remote },
        "a newer connection replaces the agent's previous session",
      );
      this.end(
        previous,
        Codes.REPLACED,
        `replaced by a newer connection from ${remote}`,
        CloseCode.REPLACED,
        false,
      );
    }
    this.presence.setLive(peer.name, peer);
    return previous;
  }

  /** Announces a session that `add` registered and that is now welcomed. */
  announce(peer: Peer, previous: Peer | undefined): void {
    if (peer.role !== "agent") return;
    if (previous) this.presence.emit({ type: "replace", agent: peer.info(), previousSessionId: previous.id });
    else this.presence.emit({ type: "join", agent: peer.info() });
  }

  /** Announces a resumed session. */
  announceResume(peer: Peer, replayed: number, downtimeMs: number): void {
    if (peer.role === "agent")
      this.presence.emit({ type: "resume", agent: peer.info(), replayed, downtimeMs });
  }

  /** Ends a peer's session and updates presence. */
  end(peer: Peer, code: ErrorCode, message: string, closeCode: CloseCode, emitLeave = true): void {
    if (peer.ended) return;
    peer.end(code, message, closeCode);
    this.#peers.delete(peer);
    this.#byToken.delete(peer.token);
    if (peer.role !== "agent") return;
    if (this.#byName.get(peer.name) === peer) this.#byName.delete(peer.name);
    const info = this.presence.setOffline(peer.name, peer, message, Date.now());
    if (info && emitLeave) this.presence.emit({ type: "leave", agent: info, reason: message });
  }

  /** Ends every session (the server is closing). */
  endAll(code: ErrorCode, message: string, closeCode: CloseCode): void {
    for (const peer of [...this.#peers]) this.end(peer, code, message, closeCode);
  }

  // --- the views --------------------------------------------------------------------------

  /** Calls and streams in flight, both ways, over every session. */
  inFlight(): number {
    let n = 0;
    for (const p of this.#peers) n += p.rpc.pendingOutgoing + p.rpc.runningIncoming;
    return n;
  }

  /** Frames and bytes held for replay over every session. */
  replayTotals(): { frames: number; bytes: number } {
    let frames = 0;
    let bytes = 0;
    for (const p of this.#peers) {
      const r = p.session.replayStats;
      frames += r.frames + r.backlogFrames;
      bytes += r.bytes + r.backlogBytes;
    }
    return { frames, bytes };
  }

  /** Tells every connected agent a new setting (agents that predate `muster.config` ignore it). */
  pushConfig(config: { heartbeatIntervalMs: number }): void {
    this.tellAgents("muster.config", config, "the new settings");
  }

  /**
   * Calls built-in `method` on every connected agent with `request`, answers ignored (an agent
   * that predates the method answers UNIMPLEMENTED; logged at debug as not taking `what`).
   */
  tellAgents(method: string, request: unknown, what: string): void {
    for (const peer of this.#byName.values()) {
      if (peer.ended || peer.moving) continue;
      peer.rpc.call(method, request, { timeoutMs: this.host.callTimeoutMs }).catch((err: unknown) => {
        this.host.logger.debug(
          { peer: peer.name, err: (err as Error).message },
          `agent did not take ${what}`,
        );
      });
    }
  }

  // --- the peers' hooks -------------------------------------------------------------------

  onPeerState(peer: Peer, state: SessionState, previous: SessionState): void {
    if (peer.role !== "agent" || peer.ended) return;
    if (state === "suspect") {
      this.host.logger.warn({ peer: peer.name }, "agent silent: suspect (kept, calls continue)");
      this.presence.emit({ type: "suspect", agent: peer.info() });
    } else if (state === "connected" && previous === "suspect") {
      this.host.logger.info({ peer: peer.name }, "agent heard from again");
      this.presence.emit({ type: "recover", agent: peer.info() });
    }
  }

  onPeerLinkDown(peer: Peer, info: TransportCloseInfo): void {
    if (peer.ended) return;
    peer.detachedAt = this.host.clock.now();
    peer.disconnectReason = `${info.code}: ${info.message}`;
    this.host.logger.info(
      { peer: peer.name, role: peer.role, reason: peer.disconnectReason },
      "link lost: waiting for resume",
    );
    if (peer.role === "agent")
      this.presence.emit({ type: "disconnect", agent: peer.info(), reason: peer.disconnectReason });
  }

  onPeerClose(peer: Peer, close: CloseBody): void {
    const message = truncateForLog(close.message);
    if (LINK_SCOPED.has(close.code)) {
      // The peer dropped this link (it received something broken, or heard nothing for too
      // long), not the session: it will resume, and the replay window covers what was lost.
      peer.warn(
        { peer: peer.name, role: peer.role, code: close.code, message },
        "peer dropped the link: waiting for resume",
      );
      const info = { code: close.code, message };
      peer.session.detach(info);
      this.onPeerLinkDown(peer, info);
      return;
    }
    this.host.logger.info(
      { peer: peer.name, role: peer.role, code: close.code, message },
      "peer closed its session",
    );
    this.end(peer, Codes.UNAVAILABLE, `closed by the ${peer.role}: ${message}`, CloseCode.NORMAL);
  }

  /** Closes the peer's link (CLOSE `code`, with `extra` fields such as `servers`); the session stays. */
  dropLink(peer: Peer, code: CloseCode, message: string, extra?: Pick<CloseBody, "servers">): void {
    const t = peer.session.transport;
    if (t === undefined || peer.ended) return;
    // A session handed over in a drain is routine, one line per agent of the fleet: the
    // handover logs its summary; anything else is worth a warning.
    if (code === CloseCode.MOVED)
      this.host.logger.debug({ peer: peer.name, role: peer.role, code }, "telling the peer to move");
    else peer.warn({ peer: peer.name, role: peer.role, code, message }, "closing the peer's link");
    const close: CloseBody = { code, message, ...extra };
    t.send(encodeFrame({ type: FrameType.CLOSE, seq: 0, ack: peer.session.lastReceived, close }));
    peer.session.detach(close);
    this.onPeerLinkDown(peer, close);
  }

  // --- the sweep ----------------------------------------------------------------------------

  /** One pass of maintenance over every session. */
  tick(): void {
    const now = this.host.clock.now();
    const wall = Date.now();
    this.gate.enrolment?.prune(wall);
    for (const peer of this.#peers) {
      const exp = peer.identity.expiresAt;
      if (exp !== undefined && exp <= wall) {
        this.endForCredential(peer, `its credential expired at ${new Date(exp).toISOString()}`);
        continue;
      }
      if (peer.session.state === "resuming") {
        this.expireIfPast(peer, now);
      } else {
        peer.session.tick(now);
        this.#checkSlowConsumer(peer, now);
      }
      peer.rpc.expireIncoming(now);
    }
    this.presence.prune(Date.now() - (this.options.offlineRetentionMs ?? DEFAULTS.offlineRetentionMs));
  }

  /** Ends a session whose credential no longer holds (expired or revoked). */
  endForCredential(peer: Peer, why: string): void {
    this.host.logger.warn(
      { peer: peer.name, role: peer.role, as: peer.identity.subject, token: peer.identity.tokenId, why },
      "session ended: credential no longer valid",
    );
    this.end(peer, Codes.UNAUTHENTICATED, why, CloseCode.UNAUTHENTICATED);
  }

  /** Token ids newly revoked: sessions using them end now. */
  onRevoked(ids: string[]): void {
    const revoked = new Set(ids);
    for (const peer of [...this.#peers]) {
      const id = peer.identity.tokenId;
      if (id !== undefined && revoked.has(id)) this.endForCredential(peer, `its token ${id} was revoked`);
    }
  }

  /** Ends a detached peer's session once its resume window has passed. */
  expireIfPast(peer: Peer, now: number): void {
    const window = this.host.resumeWindowMs;
    if (peer.session.state !== "resuming" || now - peer.detachedAt < window) return;
    this.host.logger.info({ peer: peer.name, role: peer.role }, "resume window passed: session expired");
    this.host.metrics.recordSessionExpired();
    this.end(peer, Codes.SESSION_EXPIRED, `did not come back within ${window} ms`, CloseCode.NORMAL);
  }

  /**
   * A peer that does not read: back-pressure (`writable` false) comes first; a link still
   * holding more than slowConsumerBytes unsent after slowConsumerMs, or four times as much at
   * any moment, is dropped. Its session stays resumable; the link's buffers are freed.
   */
  #checkSlowConsumer(peer: Peer, now: number): void {
    const t = peer.session.transport;
    const { slowBytes, slowMs } = this.options;
    if (t === undefined || slowBytes === 0) return;
    const buffered = t.bufferedBytes;
    if (buffered <= slowBytes) {
      peer.slowSince = 0;
      return;
    }
    if (peer.slowSince === 0) peer.slowSince = now;
    const forMs = now - peer.slowSince;
    if (forMs < slowMs && buffered <= 4 * slowBytes) return;
    peer.slowSince = 0;
    const message = `slow consumer: ${buffered} bytes unsent for ${Math.round(forMs)} ms`;
    this.host.logger.warn(
      {
        peer: peer.name,
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
