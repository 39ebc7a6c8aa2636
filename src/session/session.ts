import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock, TimerHandle } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import type { Logger } from "../internal/logger.js";
import type { Transport, TransportCloseInfo } from "../transport/types.js";
import { decodeFrame, encodeFrame, withAck } from "../wire/codec.js";
import { describeFrame } from "../wire/describe.js";
import { type CloseBody, CloseCode, type Frame, FrameType, MAX_SEQ } from "../wire/frame.js";
import { ReplayBuffer } from "./replay-buffer.js";

/**
 * Lifecycle of a session:
 * - `connected`: a link is attached and the peer was heard from recently;
 * - `suspect`: a link is attached but the peer has been silent for `suspectAfterMs` (it may
 *   be busy: its calls continue);
 * - `resuming`: no link; frames queue in the replay window until one is attached again;
 * - `closed`: final; nothing is sent or received.
 */
export type SessionState = "connected" | "suspect" | "resuming" | "closed";

/** A sequenced frame as delivered to the layer above: exactly once, in order. */
export type SequencedFrame = Extract<
  Frame,
  {
    type:
      | typeof FrameType.CALL
      | typeof FrameType.ITEM
      | typeof FrameType.RESULT
      | typeof FrameType.CANCEL
      | typeof FrameType.OPEN
      | typeof FrameType.CREDIT
      | typeof FrameType.ORIGIN;
  }
>;

export interface SessionOptions {
  clock: Clock;
  logger: Logger;
  /** @default 4096 */
  replayMaxFrames?: number;
  /** @default 16 MiB */
  replayMaxBytes?: number;
  /** @default 16 MiB */
  backlogMaxBytes?: number;
  /** @default 32 */
  ackEveryFrames?: number;
  /** @default 1000 */
  ackDelayMs?: number;
  /** @default 5000 */
  heartbeatIntervalMs?: number;
  /** @default 12000 */
  suspectAfterMs?: number;
  /** @default 30000 */
  deadAfterMs?: number;
  /** `writable` turns false once the link holds more than this many unsent bytes. @default 1 MiB */
  writeHighWaterBytes?: number;
  /** Deepest nesting accepted in a frame's JSON body. @default 1000 */
  maxJsonDepth?: number;
  /**
   * The limits above, resolved once by `resolveSessionLimits()`: an owner of many sessions (a
   * server) passes one shared object instead of a copy per session. When given, the separate
   * limit options are ignored.
   */
  limits?: SessionLimits;
}

/** Every limit of a session, defaults filled in. */
export type SessionLimits = Readonly<Required<Omit<SessionOptions, "clock" | "logger" | "limits">>>;

/** The session limits of `options` with the defaults filled in. */
export function resolveSessionLimits(
  options: Omit<SessionOptions, "clock" | "logger" | "limits">,
): SessionLimits {
  return Object.freeze({
    replayMaxFrames: options.replayMaxFrames ?? DEFAULTS.replayMaxFrames,
    replayMaxBytes: options.replayMaxBytes ?? DEFAULTS.replayMaxBytes,
    backlogMaxBytes: options.backlogMaxBytes ?? DEFAULTS.backlogMaxBytes,
    ackEveryFrames: options.ackEveryFrames ?? DEFAULTS.ackEveryFrames,
    ackDelayMs: options.ackDelayMs ?? DEFAULTS.ackDelayMs,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
    suspectAfterMs: options.suspectAfterMs ?? DEFAULTS.suspectAfterMs,
    deadAfterMs: options.deadAfterMs ?? DEFAULTS.deadAfterMs,
    writeHighWaterBytes: options.writeHighWaterBytes ?? DEFAULTS.highWaterMarkBytes,
    maxJsonDepth: options.maxJsonDepth ?? DEFAULTS.maxJsonDepth,
  });
}

/**
 * Owners call `tick` at least every second; a tick later than this after the previous one
 * means the process was paused, and the heartbeat verdict waits one more tick.
 */
const LATE_TICK_MS = 2000;

/** A busy link whose acks keep coming still sends a PING every this many heartbeats (for its RTT). */
const RTT_REFRESH_BEATS = 6;

type WritableWaiter = { resolve: () => void; reject: (err: MusterError) => void };

/** What the session reports to its owner. */
export interface SessionHooks {
  /** A sequenced frame, delivered exactly once and in order across resumes. */
  onMessage(frame: SequencedFrame): void;
  /** The state changed. */
  onState(state: SessionState, previous: SessionState): void;
  /** The attached link was lost; the session is now `resuming` (unless closed). */
  onLinkDown(info: TransportCloseInfo): void;
  /** The peer sent CLOSE: it ends the session (or, with a retry hint, asks to come back later). */
  onPeerClose(close: CloseBody): void;
}

/**
 * One end of a resumable session: sequence numbers, cumulative acks, the replay window,
 * heartbeats. Both the server and the agent run one per peer. The handshake (HELLO/WELCOME)
 * is done by the owner, which then calls `attach()` with the peer's ack; frames the peer
 * has not seen are replayed, and frames it has are dropped on receipt.
 */
/**
 * What moves with a session when another server takes it over (a handoff): the sequence
 * counters and every frame the peer has not acknowledged, in order. Taken from a session with
 * no link attached; given to a new session before its first link.
 */
export interface SessionSnapshot {
  lastReceived: number;
  lastSent: number;
  /** Seq of `frames[0]` (or of the next frame, when `frames` is empty). */
  firstSeq: number;
  /** Sent and unacknowledged, then waiting behind a full window (no seq yet). */
  frames: Uint8Array[];
  backlog: Uint8Array[];
}

export class Session {
  #state: SessionState = "resuming";
  #transport: Transport | undefined;
  /** Highest seq received in order. */
  #lastRecv = 0;
  /** Highest seq assigned to an outgoing frame. */
  #lastSent = 0;
  /** The `ack` value carried by the last frame sent. */
  #ackSent = 0;
  #ackTimer: TimerHandle | undefined;
  /** Clock time of the last `tick`. */
  #lastTickAt: number | undefined;
  #lastRecvAt: number;
  #lastSentAt: number;
  /** Frames waiting behind a full replay window (made when first needed: most sessions never need it). */
  #backlog: Uint8Array[] | undefined;
  #backlogBytes = 0;
  #rttMs = -1;
  #duplicates = 0;
  /**
   * The PING in flight on the attached link: its `time`, when it went out, and the highest seq
   * sent before it. Its PONG must acknowledge at least that seq (see `#checkPong`).
   */
  #pingTime: number | undefined;
  #pingAt = Number.NEGATIVE_INFINITY;
  #pingLastSent = 0;
  /**
   * Since when (tick time) the oldest frame of the replay window has waited for its ack:
   * undefined while the window is empty or the peer's ack moved since the last tick.
   */
  #ackStalledSince: number | undefined;
  #writableWaiters: WritableWaiter[] | undefined;
  readonly #replay: ReplayBuffer;
  readonly #o: SessionLimits;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #trace: boolean;
  readonly #hooks: SessionHooks;

  constructor(options: SessionOptions, hooks: SessionHooks) {
    this.#clock = options.clock;
    this.#log = options.logger;
    this.#trace = options.logger.isLevelEnabled("trace");
    this.#hooks = hooks;
    this.#o = options.limits ?? resolveSessionLimits(options);
    this.#replay = new ReplayBuffer(this.#o.replayMaxFrames, this.#o.replayMaxBytes);
    this.#lastRecvAt = this.#lastSentAt = this.#clock.now();
  }

  get state(): SessionState {
    return this.#state;
  }
  /** Highest seq received in order: the value to send as `ack` in a resuming HELLO. */
  get lastReceived(): number {
    return this.#lastRecv;
  }
  get lastSent(): number {
    return this.#lastSent;
  }
  get transport(): Transport | undefined {
    return this.#transport;
  }
  /** Last measured round trip (PING → PONG), or -1. */
  get rttMs(): number {
    return this.#rttMs;
  }
  /** Clock time of the last frame received. */
  get lastReceivedAt(): number {
    return this.#lastRecvAt;
  }
  /** Frames dropped on receipt because they had been delivered already. */
  get duplicatesDropped(): number {
    return this.#duplicates;
  }
  /** Unacknowledged frames and bytes held for replay, and frames waiting behind a full window. */
  get replayStats(): { frames: number; bytes: number; backlogFrames: number; backlogBytes: number } {
    return {
      frames: this.#replay.frames,
      bytes: this.#replay.bytes,
      backlogFrames: this.#backlog?.length ?? 0,
      backlogBytes: this.#backlogBytes,
    };
  }

  /**
   * The session's state for a handoff to another server (see SessionSnapshot). Only without a
   * link: a frame sent meanwhile would be missing from it.
   */
  snapshot(): SessionSnapshot {
    if (this.#transport !== undefined || this.#state === "closed")
      throw new MusterError(ErrorCode.UNAVAILABLE, "a session can be handed over only while detached");
    const frames = this.#replay.after(this.#replay.firstSeq - 1) ?? [];
    return {
      lastReceived: this.#lastRecv,
      lastSent: this.#lastSent,
      firstSeq: this.#replay.firstSeq,
      frames: frames.map((f) => Uint8Array.from(f)),
      backlog: (this.#backlog ?? []).map((f) => Uint8Array.from(f)),
    };
  }

  /** Takes over a handed-over session's state; only before the first link is attached. */
  restore(s: SessionSnapshot): void {
    if (this.#transport !== undefined || this.#lastSent !== 0 || this.#state === "closed")
      throw new MusterError(ErrorCode.INTERNAL, "a session takes a handoff only before its first link");
    if (s.firstSeq + s.frames.length - 1 !== s.lastSent)
      throw new MusterError(
        ErrorCode.PROTOCOL_ERROR,
        `handoff: ${s.frames.length} frames from seq ${s.firstSeq} do not end at seq ${s.lastSent}`,
      );
    this.#lastRecv = s.lastReceived;
    this.#ackSent = s.lastReceived;
    this.#lastSent = s.lastSent;
    this.#replay.reset(s.firstSeq);
    for (const f of s.frames) this.#replay.push(Buffer.from(f.buffer, f.byteOffset, f.byteLength));
    if (s.backlog.length > 0) {
      this.#backlog = s.backlog.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength));
      this.#backlogBytes = s.backlog.reduce((n, f) => n + f.byteLength, 0);
    }
  }

  /** True when the peer's ack lies inside what this side can replay: resume is possible. */
  canResumeFrom(peerAck: number): boolean {
    return peerAck <= this.#lastSent && this.#replay.covers(peerAck);
  }

  /**
   * True when a writer may send more now: a link is attached and not backed up, nothing waits
   * behind the replay window, and the window is at most half full (the peer keeps acking).
   * Senders of long sequences (partial results, streams) check it and wait for `whenWritable()`,
   * so that a slow peer slows them instead of growing memory.
   */
  get writable(): boolean {
    const t = this.#transport;
    return (
      t !== undefined &&
      this.#backlog === undefined &&
      t.bufferedBytes <= this.#o.writeHighWaterBytes &&
      this.#replay.bytes * 2 <= this.#o.replayMaxBytes &&
      this.#replay.frames * 2 <= this.#o.replayMaxFrames
    );
  }

  /** Resolves once `writable` is true (at once if it is); rejects with CLOSED when the session ends. */
  whenWritable(): Promise<void> {
    if (this.#state === "closed")
      return Promise.reject(new MusterError(ErrorCode.CLOSED, "session is closed"));
    if (this.writable) return Promise.resolve();
    this.#writableWaiters ??= [];
    const waiters = this.#writableWaiters;
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  }

  /** The owner reports that the attached transport drained its write buffer. */
  linkDrained(transport: Transport): void {
    if (transport === this.#transport) this.#wakeWriters();
  }

  #wakeWriters(): void {
    const waiters = this.#writableWaiters;
    if (waiters === undefined || !this.writable) return;
    this.#writableWaiters = undefined;
    for (const w of waiters) w.resolve();
  }

  /**
   * Attaches a link after a successful handshake and replays every frame with seq > peerAck.
   * The caller has checked `canResumeFrom(peerAck)`. Returns the number of frames replayed.
   */
  attach(transport: Transport, peerAck: number): number {
    if (this.#state === "closed") throw new MusterError(ErrorCode.CLOSED, "session is closed");
    if (this.#transport) this.detach({ code: CloseCode.NORMAL, message: "superseded by a newer link" });
    const pending = this.#replay.after(peerAck);
    if (pending === undefined) {
      throw new MusterError(ErrorCode.SESSION_EXPIRED, `cannot replay from seq ${peerAck}`);
    }
    this.#replay.ackTo(peerAck);
    this.#transport = transport;
    this.#pingTime = undefined;
    this.#ackStalledSince = undefined;
    this.#lastRecvAt = this.#clock.now();
    this.#pingAt = this.#lastRecvAt;
    this.#setState("connected");
    const ack = this.#lastRecv;
    if (pending.length > 0) {
      const copies = pending.map((f) => withAck(f, ack));
      if (this.#trace) for (const f of copies) this.#traceOut(f, "replay");
      transport.sendMany(copies);
      this.#noteSent(ack);
    }
    this.#drainBacklog();
    this.#wakeWriters();
    return pending.length;
  }

  /** Detaches the link (closing it with `info.code`) and enters `resuming`. */
  detach(info: TransportCloseInfo): void {
    const t = this.#transport;
    if (!t) return;
    this.#transport = undefined;
    this.#cancelAckTimer();
    t.close(info.code, info.message);
    if (this.#state !== "closed") this.#setState("resuming");
  }

  /** The owner reports that the attached transport closed. */
  linkClosed(transport: Transport, info: TransportCloseInfo): void {
    if (transport !== this.#transport) return;
    this.#transport = undefined;
    this.#cancelAckTimer();
    if (this.#state === "closed") return;
    this.#setState("resuming");
    this.#hooks.onLinkDown(info);
  }

  /** The owner hands over one frame received on the attached transport. */
  receive(transport: Transport, bytes: Uint8Array): void {
    if (transport !== this.#transport || this.#state === "closed") return;
    let frame: Frame;
    try {
      frame = decodeFrame(bytes, this.#o);
    } catch (err) {
      this.#protocolError(MusterError.from(err, ErrorCode.PROTOCOL_ERROR));
      return;
    }
    if (this.#trace) this.#log.trace({ dir: "in", frame: describeFrame(frame) }, "frame");
    this.#lastRecvAt = this.#clock.now();
    if (this.#state === "suspect") this.#setState("connected");
    if (frame.ack > this.#lastSent) {
      this.#protocolError(
        new MusterError(
          ErrorCode.PROTOCOL_ERROR,
          `ack ${frame.ack} for a frame never sent (last ${this.#lastSent})`,
        ),
      );
      return;
    }
    if (frame.ack >= this.#replay.firstSeq) {
      this.#replay.ackTo(frame.ack);
      this.#ackStalledSince = undefined;
      if (this.#backlog !== undefined) this.#drainBacklog();
      this.#wakeWriters();
    }
    switch (frame.type) {
      case FrameType.PING:
        this.#sendControl({ type: FrameType.PONG, seq: 0, ack: this.#lastRecv, time: frame.time });
        return;
      case FrameType.PONG:
        this.#rttMs = Math.max(0, this.#clock.now() - frame.time);
        this.#checkPong(frame.time, frame.ack);
        return;
      case FrameType.ACK:
        return;
      case FrameType.CLOSE:
        this.#hooks.onPeerClose(frame.close);
        return;
      case FrameType.HELLO:
      case FrameType.WELCOME:
        this.#protocolError(new MusterError(ErrorCode.PROTOCOL_ERROR, "handshake frame inside a session"));
        return;
      default:
        break;
    }
    if (frame.seq <= this.#lastRecv) {
      this.#duplicates++;
      return;
    }
    if (frame.seq !== this.#lastRecv + 1) {
      this.#protocolError(
        new MusterError(
          ErrorCode.PROTOCOL_ERROR,
          `sequence gap: expected ${this.#lastRecv + 1}, got ${frame.seq}`,
        ),
      );
      return;
    }
    this.#lastRecv = frame.seq;
    this.#scheduleAck();
    this.#hooks.onMessage(frame);
  }

  /**
   * Sends a sequenced frame, encoded with any seq/ack (they are written here). It is kept
   * for replay until acknowledged. While no link is attached it waits in the replay window.
   * Throws RESOURCE_EXHAUSTED when the window and the backlog behind it are full, CLOSED
   * when the session is closed. With `now`, the link writes it at once (with whatever it has
   * gathered before it) instead of at the end of the tick.
   */
  send(frame: Buffer, now = false): void {
    if (this.#state === "closed") throw new MusterError(ErrorCode.CLOSED, "session is closed");
    if (this.#backlog !== undefined || !this.#replay.hasRoom(frame.length)) {
      if (this.#backlogBytes + frame.length > this.#o.backlogMaxBytes) {
        throw new MusterError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `replay window full (${this.#replay.frames} frames, ${this.#replay.bytes} bytes unacknowledged) and backlog over ${this.#o.backlogMaxBytes} bytes`,
        );
      }
      this.#backlog ??= [];
      this.#backlog.push(frame);
      this.#backlogBytes += frame.length;
      return;
    }
    this.#sendNow(frame, now);
  }

  #sendNow(frame: Buffer, now = false): void {
    if (this.#lastSent >= MAX_SEQ)
      throw new MusterError(ErrorCode.RESOURCE_EXHAUSTED, "sequence numbers exhausted");
    const seq = ++this.#lastSent;
    frame.writeUIntBE(seq, 2, 6);
    frame.writeUIntBE(this.#lastRecv, 8, 6);
    this.#replay.push(frame);
    const t = this.#transport;
    if (t) {
      if (this.#trace) this.#traceOut(frame, "out");
      if (now && t.sendNow !== undefined) t.sendNow(frame);
      else t.send(frame);
      this.#noteSent(this.#lastRecv);
    }
  }

  #drainBacklog(): void {
    const backlog = this.#backlog;
    if (backlog === undefined) return;
    while (backlog.length > 0 && this.#replay.hasRoom(backlog[0]!.length)) {
      const f = backlog.shift()!;
      this.#backlogBytes -= f.length;
      this.#sendNow(f as Buffer);
    }
    if (backlog.length === 0) this.#backlog = undefined;
  }

  /**
   * Heartbeat duty, called by the owner at least every second: sends PING when idle, marks
   * the peer suspect after `suspectAfterMs` of silence and drops the link after `deadAfterMs`.
   */
  tick(now: number): void {
    if (!this.#transport || this.#state === "closed") return;
    // A tick that comes much later than the last one means this process was paused (a long
    // synchronous task, a stop-the-world GC, a suspended VM). Frames that arrived meanwhile
    // wait behind the timers, so silence measured now says nothing about the peer: the
    // verdict waits for the next tick, after they were read.
    const late = this.#lastTickAt !== undefined && now - this.#lastTickAt > LATE_TICK_MS;
    this.#lastTickAt = now;
    if (late) return;
    const silent = now - this.#lastRecvAt;
    if (silent >= this.#o.deadAfterMs) {
      this.#log.warn(
        { silentMs: Math.round(silent) },
        "peer silent too long: dropping the link, resume expected",
      );

      const info = {
        code: CloseCode.HEARTBEAT_TIMEOUT,
        message: `nothing received for ${Math.round(silent)} ms`,
      };
      this.detach(info);
      this.#hooks.onLinkDown(info);
      return;
    }
    if (silent >= this.#o.suspectAfterMs && this.#state === "connected") this.#setState("suspect");
    const hb = this.#o.heartbeatIntervalMs;
    // A PING when idle, and also when frames have waited a heartbeat for their ack: its PONG
    // proves that the peer has them (a busy link sends no idle PINGs, yet is where a loss
    // would hide). While the peer's acks keep coming, nothing can be missing behind them (a
    // gap is caught by the receiver's seq check), so a busy healthy link sends no PING but
    // one every RTT_REFRESH_BEATS heartbeats, to keep its measured round trip current.
    let stalled = false;
    if (this.#replay.frames > 0) {
      if (this.#ackStalledSince === undefined) this.#ackStalledSince = now;
      else stalled = now - this.#ackStalledSince >= hb;
    } else this.#ackStalledSince = undefined;
    const sincePing = now - this.#pingAt;
    if (now - this.#lastSentAt >= hb || (stalled && sincePing >= hb) || sincePing >= hb * RTT_REFRESH_BEATS) {
      this.#pingTime = now;
      this.#pingAt = now;
      this.#pingLastSent = this.#lastSent;
      this.#sendControl({ type: FrameType.PING, seq: 0, ack: this.#lastRecv, time: now });
    }
  }

  /**
   * The PONG to our last PING: the peer answered it after reading every frame sent before it
   * (a link delivers in order), so its ack must cover them. Less means frames vanished from a
   * link that stayed up (a middlebox dropping bytes, a transport that lost a request): without
   * this check a lost tail would wait for the next sequenced frame to reveal the gap, however
   * long that takes. The link is dropped; the resume replays what the peer is missing.
   */
  #checkPong(time: number, ack: number): void {
    if (time !== this.#pingTime) return;
    this.#pingTime = undefined;
    if (ack >= this.#pingLastSent) return;
    this.#protocolError(
      new MusterError(
        ErrorCode.PROTOCOL_ERROR,
        `frames lost on the link: the PONG acknowledges seq ${ack}, but seq ${this.#pingLastSent} was sent before the PING`,
      ),
    );
  }

  /** Sends CLOSE (when a link is attached), closes the link, and ends the session for good. */
  close(code: CloseCode, message: string, retryAfterMs?: number): void {
    if (this.#state === "closed") return;
    const t = this.#transport;
    if (t) {
      const close: CloseBody = { code, message };
      if (retryAfterMs !== undefined) close.retryAfterMs = retryAfterMs;
      this.#sendControl({ type: FrameType.CLOSE, seq: 0, ack: this.#lastRecv, close });
      this.#transport = undefined;
      t.close(code, message);
    }
    this.#cancelAckTimer();
    this.#replay.reset();
    this.#backlog = undefined;
    this.#backlogBytes = 0;
    this.#setState("closed");
    const waiters = this.#writableWaiters ?? [];
    this.#writableWaiters = undefined;
    for (const w of waiters) w.reject(new MusterError(ErrorCode.CLOSED, `session closed: ${message}`));
  }

  #protocolError(err: MusterError): void {
    const t = this.#transport;
    this.#log.warn({ remote: t?.remoteAddress, err: err.message }, "protocol error: closing the link");
    if (!t) return;
    const code =
      err.code === ErrorCode.FRAME_TOO_LARGE ? CloseCode.FRAME_TOO_LARGE : CloseCode.PROTOCOL_ERROR;
    this.#sendControl({
      type: FrameType.CLOSE,
      seq: 0,
      ack: this.#lastRecv,
      close: { code, message: err.rawMessage },
    });
    const info = { code, message: err.rawMessage };
    this.detach(info);
    this.#hooks.onLinkDown(info);
  }

  #sendControl(frame: Frame): void {
    const t = this.#transport;
    if (!t) return;
    if (this.#trace) this.#log.trace({ dir: "out", frame: describeFrame(frame) }, "frame");
    t.send(encodeFrame(frame));
    this.#noteSent(frame.ack);
  }

  /**
   * An ack went out on a frame. The delayed-ack timer is left to run (when it fires with nothing
   * new to acknowledge it does nothing): cancelling and re-arming it for every call and reply
   * would cost more than the one spare wake-up per `ackDelayMs`.
   */
  #noteSent(ack: number): void {
    this.#lastSentAt = this.#clock.now();
    if (ack > this.#ackSent) this.#ackSent = ack;
  }

  #scheduleAck(): void {
    if (!this.#transport) return;
    if (this.#lastRecv - this.#ackSent >= this.#o.ackEveryFrames) {
      this.#sendControl({ type: FrameType.ACK, seq: 0, ack: this.#lastRecv });
      return;
    }
    if (this.#ackTimer) return;
    this.#ackTimer = this.#clock.setTimeout(() => {
      this.#ackTimer = undefined;
      if (this.#lastRecv > this.#ackSent)
        this.#sendControl({ type: FrameType.ACK, seq: 0, ack: this.#lastRecv });
    }, this.#o.ackDelayMs);
    this.#ackTimer.unref();
  }

  #cancelAckTimer(): void {
    if (this.#ackTimer) {
      this.#clock.clearTimeout(this.#ackTimer);
      this.#ackTimer = undefined;
    }
  }

  #traceOut(frame: Uint8Array, dir: string): void {
    try {
      this.#log.trace({ dir, frame: describeFrame(decodeFrame(frame)) }, "frame");
    } catch {
      this.#log.trace({ dir, bytes: frame.length }, "frame (undecodable)");
    }
  }

  #setState(next: SessionState): void {
    const prev = this.#state;
    if (prev === next || prev === "closed") return;
    this.#state = next;
    this.#hooks.onState(next, prev);
  }
}
