import { type Clock, systemClock, type TimerHandle } from "../internal/clock.js";
import type { Logger } from "../internal/logger.js";
import type { MusterStream, StreamOptions } from "../rpc/stream.js";
import type { DecodeLimits } from "../wire/codec.js";
import type { ClusterBus } from "./bus.js";
import type { Envelope } from "./envelope.js";
import type { ClusterSubjects } from "./node-subjects.js";
import type { Owner } from "./remote-calls.js";
import { type OpenLocal, STREAM_MESSAGE, StreamPumps } from "./stream-pump.js";
import { StreamReaders } from "./stream-reader.js";

export interface StreamRelayOptions {
  bus: ClusterBus;
  subjects: ClusterSubjects;
  /** Opens a stream on an agent this server holds (the owner's side). */
  openLocal: OpenLocal;
  serverName: string;
  logger: Logger;
  /** Limits on the items and results decoded here. @default muster's defaults */
  decodeLimits?: DecodeLimits;
  /** Deadlines and the sync timer. @default systemClock */
  clock?: Clock;
  /**
   * How often a server reading streams from another sends it the full list of those streams
   * with their credit (repairing lost credit and cancels, and asking how far each got, which
   * reveals items lost at the end of a stream). An owner stops the streams of an origin it has
   * not heard of for `syncIntervalMs × 10`. Only runs while streams are open. @default 1000
   */
  syncIntervalMs?: number;
}

/** Defaults of the stream relay. */
export const STREAM_RELAY_DEFAULTS = {
  syncIntervalMs: 1000,
  /** Sync intervals without word from an origin before its streams are stopped. */
  silentIntervals: 10,
} as const;

const relays = new WeakMap<ClusterBus, StreamRelay>();

/** The stream relay of the server on `bus` (for tests and metrics). */
export function streamRelayOf(bus: ClusterBus): StreamRelay | undefined {
  return relays.get(bus);
}

/** True for the envelope types the stream relay handles. */
export function isStreamMessage(t: string): boolean {
  return t.startsWith("stream.");
}

/**
 * Streams across the servers of a cluster. The origin (where `openStream` was called) reads a
 * MusterStream (`StreamReaders`) whose credit and cancels go to the owner (the server holding
 * the agent), which
 * runs the stream on its agent (`StreamPumps`) and sends items within that credit: flow control
 * holds end to end, as through `muster.stream`. Items carry muster's sequence numbers: the
 * backplane is at-most-once (NATS drops messages past a slow subscriber's limit), so a gap
 * fails the stream with UNAVAILABLE naming the items lost, never loses them silently.
 *
 * Every stream settles once on both sides: by its end, a cancel from either side, its deadline,
 * the owner declared dead (`serverDown`), the origin gone (`serverDown` on the owner), or the
 * backplane lost (`busDown`).
 */
export class StreamRelay {
  /** The streams read here (the origin's side). */
  readonly readers: StreamReaders;
  /** The streams served here for other servers (the owner's side). */
  readonly pumps: StreamPumps;
  readonly #o: StreamRelayOptions;
  readonly #clock: Clock;
  readonly #syncMs: number;
  #timer: TimerHandle | undefined;

  constructor(o: StreamRelayOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#syncMs = o.syncIntervalMs ?? STREAM_RELAY_DEFAULTS.syncIntervalMs;
    const limits = o.decodeLimits ?? {};
    this.readers = new StreamReaders(o.bus, o.subjects, limits, this.#clock, o.logger);
    this.pumps = new StreamPumps(
      o.bus,
      o.subjects,
      o.openLocal,
      o.serverName,
      limits,
      () => this.#clock.now(),
      o.logger,
    );
    relays.set(o.bus, this);
  }

  /** Limits on the items and results decoded here. */
  get decodeLimits(): DecodeLimits {
    return this.readers.decodeLimits;
  }

  /** Streams read here from other servers now. */
  get reading(): number {
    return this.readers.size;
  }

  /** Nothing read, nothing served, nothing left to send, no timer: all is forgotten. */
  get idle(): boolean {
    return this.readers.idle && this.pumps.running === 0 && this.#timer === undefined;
  }

  /** Opens stream `name` on `agent`, held by server `owner`. Errors come through the iteration. */
  open<T>(
    owner: Owner,
    agent: string,
    name: string,
    request: unknown,
    options: StreamOptions,
    asCall = false,
  ): MusterStream<T> {
    const s = this.readers.open<T>(owner, agent, name, request, options, asCall);
    this.#arm();
    return s;
  }

  /** Handles a `stream.*` message from another server. */
  onMessage(env: Envelope): void {
    switch (env.head.t) {
      case STREAM_MESSAGE.OPEN:
        this.pumps.onOpen(env);
        this.#arm();
        return;
      case STREAM_MESSAGE.CREDIT:
        this.pumps.onCredit(env);
        return;
      case STREAM_MESSAGE.CANCEL:
        this.pumps.onCancel(env);
        return;
      case STREAM_MESSAGE.ITEMS:
        this.readers.onItems(env);
        return;
      case STREAM_MESSAGE.END:
        this.readers.onEnd(env);
        return;
      case STREAM_MESSAGE.MARKS:
        this.readers.onMarks(env);
        return;
      default:
        this.#o.logger.debug({ type: env.head.t }, "stream message of an unknown type: ignored");
    }
  }

  /** Server `serverId` was declared dead or left: its streams fail, those it read stop. */
  serverDown(serverId: string, why: string): void {
    this.readers.serverDown(serverId, why);
    this.pumps.originDown(serverId);
  }

  /** The backplane is lost (or this server leaves the cluster): every relayed stream ends. */
  busDown(why: string): void {
    this.readers.busDown(why);
    this.pumps.stopAll(`lost the cluster backplane (${why})`);
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The sync timer runs while streams are open (and once more after), never keeping the process up. */
  #arm(): void {
    if (this.#timer !== undefined || (this.readers.idle && this.pumps.running === 0)) return;
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#syncMs);
    this.#timer.unref();
  }

  #tick(): void {
    this.#timer = undefined;
    this.readers.sync();
    this.pumps.expire(this.#clock.now() - this.#syncMs * STREAM_RELAY_DEFAULTS.silentIntervals);
    this.#arm();
  }
}
