import { connect, createServer, type Server, type Socket } from "node:net";
import { type Clock, systemClock } from "../internal/clock.js";
import { deriveSeed, isSeed, mulberry32, type Random, randomSeed } from "./prng.js";
import { checkSchedule, formatAction, parseSchedule, type ScheduleStep } from "./schedule.js";
import {
  checkRandomFaults,
  type FaultDecision,
  FaultScheduler,
  JITTER_STREAM,
  type RandomFaults,
} from "./scheduler.js";
import { ClockTimer } from "./timer.js";
import { formatDuration, formatRate } from "./units.js";

export interface HostPort {
  host: string;
  port: number;
}

export interface ChaosProxyOptions {
  /** Where every accepted connection is relayed. */
  target: HostPort;
  /** Where to listen; default 127.0.0.1 on any free port. */
  listen?: { host?: string; port?: number };
  /** Seed of every random draw (faults and jitter); default a fresh one, reported as `seed`. */
  seed?: number;
  /** Added to each direction: bytes are held this long before they are passed on. */
  latencyMs?: number;
  /** Up to this much more, drawn per chunk; bytes are never reordered. */
  jitterMs?: number;
  /** Per connection and direction; absent, 0 or null: no limit. */
  bandwidthBytesPerSec?: number | null;
  /** Faults at random times drawn from the seed. */
  random?: RandomFaults;
  /** Faults at fixed times, as steps or as a text spec (see `parseSchedule`). */
  schedule?: readonly ScheduleStep[] | string;
  /** Called for every fault as it is applied. */
  onEvent?(event: ChaosEvent): void;
  /** Time source of the fault timings (schedule, random faults, black-hole ends). */
  clock?: Clock;
  /** How many events `events` keeps (the oldest are dropped first); default 10,000. */
  maxEvents?: number;
}

export type ChaosEventKind = "cut" | "reset" | "blackhole" | "restore" | "latency" | "bandwidth";

/** A fault as applied. */
export interface ChaosEvent {
  /** Milliseconds since the proxy started. */
  atMs: number;
  kind: ChaosEventKind;
  /** The connection hit (numbered from 1 in order of arrival), or null for all of them. */
  connection: number | null;
  /** What was done, for people: `2 connections`, `for 3s`, `200ms jitter 50ms`, `1MB/s`… */
  detail: string;
  /** What decided it: a method call, a schedule step, or a random draw. */
  source: "manual" | "schedule" | "random";
}

export interface ChaosStats {
  /** Connections accepted since the start. */
  accepted: number;
  /** Connections relayed now (not yet closed, cut or reset). */
  open: number;
  /** Bytes passed on, per direction. */
  bytes: { toTarget: number; toClient: number };
  /** Bytes dropped by black-holes, per direction. */
  dropped: { toTarget: number; toClient: number };
  /** Events applied, by kind. */
  faults: Record<ChaosEventKind, number>;
}

/** A fault-injecting TCP proxy; see `startChaosProxy`. */
export interface ChaosProxy {
  /** Where clients should connect instead of the target. */
  readonly address: HostPort;
  /** Where connections are relayed to: `options.target`, or the last `setTarget`. */
  readonly target: HostPort;
  /** New connections go to `target` from now on (a service started again elsewhere); live ones stay. */
  setTarget(target: HostPort): void;
  /** The seed of every random draw: pass it back as `seed` to replay the same decisions. */
  readonly seed: number;
  /** A snapshot of the counters. */
  readonly stats: ChaosStats;
  /** The faults applied so far, oldest first (at most `maxEvents`). */
  readonly events: readonly ChaosEvent[];
  /** True while a black-hole over every connection is on. */
  readonly blackholed: boolean;
  /** Milliseconds since the start, on the proxy's clock. */
  elapsedMs(): number;
  /** Closes every connection both ways with a FIN; returns how many. */
  cutAll(): number;
  /** Resets every connection both ways (each end sees ECONNRESET); returns how many. */
  resetAll(): number;
  /**
   * Stops forwarding in both directions on every connection, new ones included, without
   * closing anything; bytes arriving meanwhile are dropped. For `forMs`, or until `restore()`.
   */
  blackhole(forMs?: number): void;
  /** Lifts every black-hole; a close that arrived meanwhile is passed on now. */
  restore(): void;
  /**
   * Starts random faults now, replacing any running: the decisions for the seed and these
   * options, from the first one, with their times counted from this call.
   */
  startRandomFaults(random: RandomFaults): void;
  /**
   * Stops the random faults and the rest of the schedule. Black-holes already on stay on until
   * they end or `restore()`; latency and bandwidth stay as they are.
   */
  stopFaults(): void;
  /** Sets the added latency and jitter of each direction, for bytes arriving from now on. */
  setLatency(ms: number, jitterMs?: number): void;
  /** Sets the bandwidth limit per connection and direction; 0 or null lifts it. */
  setBandwidth(bytesPerSec: number | null): void;
  /** Stops the faults, destroys every connection and stops listening. */
  close(): Promise<void>;
}

/** Above this many bytes held in one direction, the sending side is paused. */
const QUEUE_HIGH_BYTES = 1 << 20;
/** …and resumed once the queue is below this. */
const QUEUE_LOW_BYTES = 256 << 10;
/** After a cut, how long a side that does not close in turn is given before it is destroyed. */
const CUT_GRACE_MS = 1000;
/** Under a bandwidth limit, chunks are passed on in slices of about this many milliseconds. */
const SLICE_MS = 20;

/** Markers for the end of a direction: a FIN or a reset, passed on in order after the bytes. */
const FIN = 1;
const RST = 2;
type Item = Buffer | typeof FIN | typeof RST;

const isMs = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

function checkTarget(t: HostPort | undefined): void {
  if (!t || typeof t.host !== "string" || t.host === "")
    throw new TypeError("target.host must be a host name or address");
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535)
    throw new RangeError(`target.port must be an integer from 1 to 65535, got ${String(t.port)}`);
}

function checkOptions(o: ChaosProxyOptions): void {
  checkTarget(o.target);
  const lp = o.listen?.port;
  if (lp !== undefined && (!Number.isInteger(lp) || lp < 0 || lp > 65535))
    throw new RangeError(`listen.port must be an integer from 0 to 65535, got ${String(lp)}`);
  if (o.seed !== undefined && !isSeed(o.seed))
    throw new RangeError(`seed must be an integer from 0 to 4294967295, got ${String(o.seed)}`);
  if (o.latencyMs !== undefined && !isMs(o.latencyMs))
    throw new RangeError(`latencyMs must be a number of milliseconds ≥ 0, got ${String(o.latencyMs)}`);
  if (o.jitterMs !== undefined && !isMs(o.jitterMs))
    throw new RangeError(`jitterMs must be a number of milliseconds ≥ 0, got ${String(o.jitterMs)}`);
  checkBandwidth(o.bandwidthBytesPerSec);
  if (o.random) checkRandomFaults(o.random);
  if (o.maxEvents !== undefined && !(Number.isInteger(o.maxEvents) && o.maxEvents >= 0))
    throw new RangeError(`maxEvents must be an integer ≥ 0, got ${String(o.maxEvents)}`);
}

function checkBandwidth(bps: number | null | undefined): void {
  if (bps !== undefined && bps !== null && !isMs(bps))
    throw new RangeError(`the bandwidth must be a number of bytes per second ≥ 0, got ${String(bps)}`);
}

/**
 * Starts a TCP proxy that relays bytes untouched between its clients and `target` (so it works
 * for muster's tcp:// and ws:// alike) and injects faults: latency and jitter, a bandwidth
 * limit, cuts, resets and black-holes, on demand, on a schedule, or at random from a seed.
 */
export async function startChaosProxy(options: ChaosProxyOptions): Promise<ChaosProxy> {
  checkOptions(options);
  let schedule: readonly ScheduleStep[] = [];
  if (typeof options.schedule === "string") schedule = parseSchedule(options.schedule);
  else if (options.schedule) {
    checkSchedule(options.schedule);
    schedule = options.schedule;
  }
  const proxy = new ChaosProxyImpl(options, schedule);
  await proxy.listen();
  return proxy;
}

/** One direction of a connection: bytes (and then a FIN or reset) from one socket to the other. */
class Direction {
  /** Items held, and when each may be passed on (performance.now() time, non-decreasing). */
  #items: Item[] = [];
  #dues: number[] = [];
  #head = 0;
  #bytes = 0;
  /** When the last item held may go: later items never go before it. */
  #lastDue = 0;
  /** Under a bandwidth limit, when the link is free for the next slice. */
  #freeAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #queueFull = false;
  #destBlocked = false;
  /** An end marker waits for a black-hole to lift. */
  #held = false;

  constructor(
    readonly link: Link,
    readonly from: Socket,
    readonly to: Socket,
    readonly toTarget: boolean,
  ) {}

  push(item: Item): void {
    const link = this.link;
    const p = link.proxy;
    if (link.dead) return;
    const size = typeof item === "number" ? 0 : item.length;
    if (size > 0 && p.isBlackholed(link)) {
      p.dropped(this.toTarget, size);
      return;
    }
    const now = performance.now();
    if (!p.shaping && this.#head === this.#items.length) {
      if (this.#deliver(item)) return;
      // An end marker during a black-hole: it waits for the black-hole to lift.
      this.#enqueue(item, now);
      this.#held = true;
      return;
    }
    let due = now;
    if (p.latencyMs > 0 || p.jitterMs > 0)
      due += p.latencyMs + (p.jitterMs > 0 ? p.jitter() * p.jitterMs : 0);
    if (due < this.#lastDue) due = this.#lastDue;
    const bps = p.bandwidth;
    if (bps > 0 && size > 0) {
      const buf = item as Buffer;
      const slice = Math.max(1, Math.min(64 * 1024, Math.floor((bps * SLICE_MS) / 1000)));
      for (let off = 0; off < size; off += slice) {
        const part = buf.subarray(off, Math.min(size, off + slice));
        // A slice is there once all its bytes have crossed the link.
        this.#freeAt = Math.max(due, this.#freeAt) + (part.length * 1000) / bps;
        this.#enqueue(part, this.#freeAt);
      }
    } else {
      this.#enqueue(item, due);
    }
    if (this.#timer === undefined && !this.#held) this.flush();
  }

  #enqueue(item: Item, due: number): void {
    this.#items.push(item);
    this.#dues.push(due);
    this.#lastDue = due;
    if (typeof item !== "number") {
      this.#bytes += item.length;
      if (this.#bytes > QUEUE_HIGH_BYTES && !this.#queueFull) {
        this.#queueFull = true;
        this.#updateFlow();
      }
    }
  }

  /** Passes on every item that is due; arms a timer for the next one. */
  flush = (): void => {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#held = false;
    const now = performance.now();
    while (this.#head < this.#items.length) {
      const due = this.#dues[this.#head]!;
      if (due > now) {
        this.#timer = setTimeout(this.flush, Math.ceil(due - now));
        break;
      }
      const item = this.#items[this.#head]!;
      if (!this.#deliver(item)) {
        this.#held = true;
        break;
      }
      this.#items[this.#head] = FIN;
      this.#head++;
      if (typeof item !== "number") this.#bytes -= item.length;
    }
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#dues = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#dues = this.#dues.slice(this.#head);
      this.#head = 0;
    }
    if (this.#queueFull && this.#bytes < QUEUE_LOW_BYTES) {
      this.#queueFull = false;
      this.#updateFlow();
    }
  };

  /** Passes one item on; false when it must wait (an end marker during a black-hole). */
  #deliver(item: Item): boolean {
    const link = this.link;
    const p = link.proxy;
    // Nothing can reach a side that is gone.
    if (link.dead || this.to.destroyed) return true;
    if (typeof item === "number") {
      if (p.isBlackholed(link)) return false;
      if (item === RST) this.to.resetAndDestroy();
      else if (!this.to.writableEnded) this.to.end();
      return true;
    }
    if (this.to.writableEnded) return true;
    if (p.isBlackholed(link)) {
      p.dropped(this.toTarget, item.length);
      return true;
    }
    p.forwarded(this.toTarget, item.length);
    if (!this.to.write(item) && !this.#destBlocked && !this.to.destroyed) {
      this.#destBlocked = true;
      this.#updateFlow();
      this.to.once("drain", this.#onDrain);
    }
    return true;
  }

  #onDrain = (): void => {
    this.#destBlocked = false;
    this.#updateFlow();
  };

  #updateFlow(): void {
    if (this.link.dead) return;
    if (this.#queueFull || this.#destBlocked) this.from.pause();
    else this.from.resume();
  }

  /** Forgets everything held (the connection is gone). */
  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#items = [];
    this.#dues = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#held = false;
    this.to.off("drain", this.#onDrain);
    // Whatever still comes from the other side is read and discarded, never left to block it.
    this.#queueFull = this.#destBlocked = false;
    if (!this.from.destroyed) this.from.resume();
  }
}

/** One relayed connection: the client's socket and the one to the target. */
class Link {
  readonly up: Direction;
  readonly down: Direction;
  /** Cut or reset by the proxy: nothing more is passed on. */
  dead = false;
  blackholed = false;
  blackholeEnd = 0;
  blackholeTimer: ClockTimer | undefined;
  graceTimer: NodeJS.Timeout | undefined;
  #closed = 0;

  constructor(
    readonly proxy: ChaosProxyImpl,
    readonly id: number,
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    this.up = new Direction(this, client, upstream, true);
    this.down = new Direction(this, upstream, client, false);
    this.#wire(client, this.up, this.down);
    this.#wire(upstream, this.down, this.up);
  }

  #wire(socket: Socket, out: Direction, back: Direction): void {
    socket.on("data", (chunk: Buffer) => out.push(chunk));
    socket.on("end", () => out.push(FIN));
    socket.on("error", () => {
      // The other side sees a reset, in order after the bytes already on their way; nothing
      // more can reach this side.
      back.clear();
      out.push(RST);
    });
    socket.on("close", () => {
      if (++this.#closed === 2) this.proxy.gone(this);
    });
  }

  resetSide(socket: Socket): void {
    if (!socket.destroyed) socket.resetAndDestroy();
  }

  /** No more forwarding: the connection is being closed by a fault or by the proxy. */
  kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.up.clear();
    this.down.clear();
    this.blackholeTimer?.cancel();
    this.blackholeTimer = undefined;
    // Keep reading, so that nothing left unread turns a FIN into a reset.
    this.client.resume();
    this.upstream.resume();
    this.proxy.killed(this);
  }

  cut(): void {
    this.kill();
    this.client.end();
    this.upstream.end();
    this.graceTimer = setTimeout(() => this.destroy(), CUT_GRACE_MS);
    this.graceTimer.unref();
  }

  reset(): void {
    this.kill();
    this.resetSide(this.client);
    this.resetSide(this.upstream);
  }

  destroy(): void {
    this.kill();
    this.client.destroy();
    this.upstream.destroy();
  }

  flush(): void {
    if (!this.dead) {
      this.up.flush();
      this.down.flush();
    }
  }

  /** Called once both sockets have closed. */
  closed(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.blackholeTimer?.cancel();
    this.graceTimer = this.blackholeTimer = undefined;
    this.up.clear();
    this.down.clear();
  }
}

class ChaosProxyImpl implements ChaosProxy {
  target: HostPort;
  readonly seed: number;
  readonly clock: Clock;
  address: HostPort = { host: "", port: 0 };
  latencyMs: number;
  jitterMs: number;
  bandwidth: number;
  /** True when bytes cannot take the direct path (latency, jitter or a bandwidth limit). */
  shaping = false;
  readonly jitter: Random;
  readonly #options: ChaosProxyOptions;
  readonly #server: Server;
  readonly #scheduler: FaultScheduler;
  /** Every connection whose sockets are not both closed yet, dead ones included. */
  readonly #links = new Set<Link>();
  /** The ones still relayed (not cut, reset or gone), in order of arrival. */
  readonly #live = new Set<Link>();
  #nextId = 1;
  #accepted = 0;
  readonly #bytes = { toTarget: 0, toClient: 0 };
  readonly #dropped = { toTarget: 0, toClient: 0 };
  readonly #faults: Record<ChaosEventKind, number> = {
    cut: 0,
    reset: 0,
    blackhole: 0,
    restore: 0,
    latency: 0,
    bandwidth: 0,
  };
  readonly #events: ChaosEvent[] = [];
  readonly #maxEvents: number;
  #blackholed = false;
  #blackholeEnd = 0;
  #blackholeTimer: ClockTimer | undefined;
  #closing = false;
  /** The random faults running, if any. */
  #random: RandomFaults | undefined;

  constructor(o: ChaosProxyOptions, schedule: readonly ScheduleStep[]) {
    this.#options = o;
    this.target = { host: o.target.host, port: o.target.port };
    this.seed = o.seed ?? randomSeed();
    this.clock = o.clock ?? systemClock;
    this.latencyMs = o.latencyMs ?? 0;
    this.jitterMs = o.jitterMs ?? 0;
    this.bandwidth = o.bandwidthBytesPerSec ?? 0;
    this.#maxEvents = o.maxEvents ?? 10_000;
    this.#random = o.random ? { ...o.random } : undefined;
    this.jitter = mulberry32(deriveSeed(this.seed, JITTER_STREAM));
    this.#reshape();
    this.#server = createServer({ allowHalfOpen: true }, (client) => this.#accept(client));
    this.#scheduler = new FaultScheduler({
      clock: this.clock,
      seed: this.seed,
      ...(this.#random ? { random: this.#random } : {}),
      schedule,
      onStep: (step) => this.#applyStep(step),
      onRandom: (d) => this.#applyRandom(d),
    });
  }

  setTarget(target: HostPort): void {
    checkTarget(target);
    this.target = { host: target.host, port: target.port };
  }

  async listen(): Promise<void> {
    const host = this.#options.listen?.host ?? "127.0.0.1";
    const port = this.#options.listen?.port ?? 0;
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    // An accept that fails (EMFILE…) loses that one connection, not the proxy.
    this.#server.on("error", () => {});
    const a = this.#server.address();
    this.address = { host, port: typeof a === "object" && a ? a.port : port };
    this.#scheduler.start();
  }

  #accept(client: Socket): void {
    if (this.#closing) {
      client.destroy();
      return;
    }
    this.#accepted++;
    client.setNoDelay(true);
    const upstream = connect({
      host: this.target.host,
      port: this.target.port,
      allowHalfOpen: true,
      noDelay: true,
    });
    const link = new Link(this, this.#nextId++, client, upstream);
    this.#links.add(link);
    this.#live.add(link);
  }

  // — called by links —

  isBlackholed(link: Link): boolean {
    return this.#blackholed || link.blackholed;
  }

  forwarded(toTarget: boolean, n: number): void {
    if (toTarget) this.#bytes.toTarget += n;
    else this.#bytes.toClient += n;
  }

  dropped(toTarget: boolean, n: number): void {
    if (toTarget) this.#dropped.toTarget += n;
    else this.#dropped.toClient += n;
  }

  killed(link: Link): void {
    this.#live.delete(link);
  }

  gone(link: Link): void {
    link.closed();
    this.#links.delete(link);
    this.#live.delete(link);
  }

  // — the public interface —

  get stats(): ChaosStats {
    return {
      accepted: this.#accepted,
      open: this.#live.size,
      bytes: { ...this.#bytes },
      dropped: { ...this.#dropped },
      faults: { ...this.#faults },
    };
  }

  get events(): readonly ChaosEvent[] {
    return this.#events.slice();
  }

  get blackholed(): boolean {
    return this.#blackholed;
  }

  elapsedMs(): number {
    return this.#scheduler.elapsed();
  }

  cutAll(): number {
    return this.#cutAll("manual");
  }

  resetAll(): number {
    return this.#resetAll("manual");
  }

  blackhole(forMs?: number): void {
    if (forMs !== undefined && !(isMs(forMs) && forMs > 0))
      throw new RangeError(`a black-hole lasts a number of milliseconds above 0, got ${String(forMs)}`);
    this.#blackholeAll(forMs, "manual");
  }

  restore(): void {
    this.#restoreAll("manual");
  }

  startRandomFaults(random: RandomFaults): void {
    checkRandomFaults(random);
    this.#random = { ...random };
    if (!this.#closing) this.#scheduler.startRandom(this.#random);
  }

  stopFaults(): void {
    this.#scheduler.stop();
  }

  setLatency(ms: number, jitterMs = this.jitterMs): void {
    if (!isMs(ms))
      throw new RangeError(`the latency must be a number of milliseconds ≥ 0, got ${String(ms)}`);
    if (!isMs(jitterMs))
      throw new RangeError(`the jitter must be a number of milliseconds ≥ 0, got ${String(jitterMs)}`);
    this.#setLatency(ms, jitterMs, "manual");
  }

  setBandwidth(bytesPerSec: number | null): void {
    checkBandwidth(bytesPerSec);
    this.#setBandwidth(bytesPerSec ?? 0, "manual");
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#scheduler.stop();
    this.#blackholeTimer?.cancel();
    this.#blackholeTimer = undefined;
    for (const link of [...this.#links]) {
      link.destroy();
      link.closed();
    }
    this.#links.clear();
    this.#live.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // — faults —

  #record(
    kind: ChaosEventKind,
    connection: number | null,
    detail: string,
    source: ChaosEvent["source"],
  ): void {
    const e: ChaosEvent = { atMs: Math.round(this.#scheduler.elapsed()), kind, connection, detail, source };
    this.#faults[kind]++;
    if (this.#maxEvents > 0) {
      if (this.#events.length >= this.#maxEvents) this.#events.shift();
      this.#events.push(e);
    }
    this.#options.onEvent?.(e);
  }

  #reshape(): void {
    this.shaping = this.latencyMs > 0 || this.jitterMs > 0 || this.bandwidth > 0;
  }

  #cutAll(source: ChaosEvent["source"]): number {
    const links = [...this.#live];
    for (const l of links) l.cut();
    this.#record("cut", null, plural(links.length, "connection"), source);
    return links.length;
  }

  #resetAll(source: ChaosEvent["source"]): number {
    const links = [...this.#live];
    for (const l of links) l.reset();
    this.#record("reset", null, plural(links.length, "connection"), source);
    return links.length;
  }

  #blackholeAll(forMs: number | undefined, source: ChaosEvent["source"]): void {
    const end = forMs === undefined ? Number.POSITIVE_INFINITY : this.clock.now() + forMs;
    this.#blackholed = true;
    if (end > this.#blackholeEnd) {
      this.#blackholeEnd = end;
      this.#blackholeTimer?.cancel();
      this.#blackholeTimer = undefined;
      if (forMs !== undefined) {
        this.#blackholeTimer = new ClockTimer(this.clock, end, () => {
          this.#blackholeTimer = undefined;
          this.#blackholed = false;
          this.#blackholeEnd = 0;
          this.#record("restore", null, "black-hole over", source);
          for (const l of this.#live) l.flush();
        });
      }
    }
    this.#record(
      "blackhole",
      null,
      forMs === undefined ? "until restore" : `for ${formatDuration(forMs)}`,
      source,
    );
  }

  #blackholeOne(link: Link, forMs: number, source: ChaosEvent["source"]): void {
    const end = this.clock.now() + forMs;
    link.blackholed = true;
    if (end > link.blackholeEnd) {
      link.blackholeEnd = end;
      link.blackholeTimer?.cancel();
      link.blackholeTimer = new ClockTimer(this.clock, end, () => {
        link.blackholeTimer = undefined;
        link.blackholed = false;
        link.blackholeEnd = 0;
        if (link.dead) return;
        this.#record("restore", link.id, "black-hole over", source);
        link.flush();
      });
    }
    this.#record("blackhole", link.id, `for ${formatDuration(forMs)}`, source);
  }

  #restoreAll(source: ChaosEvent["source"]): void {
    let lifted = this.#blackholed ? 1 : 0;
    this.#blackholed = false;
    this.#blackholeEnd = 0;
    this.#blackholeTimer?.cancel();
    this.#blackholeTimer = undefined;
    for (const l of this.#live) {
      if (l.blackholed) lifted++;
      l.blackholed = false;
      l.blackholeEnd = 0;
      l.blackholeTimer?.cancel();
      l.blackholeTimer = undefined;
      l.flush();
    }
    this.#record(
      "restore",
      null,
      lifted === 0 ? "nothing was black-holed" : "every black-hole lifted",
      source,
    );
  }

  #setLatency(ms: number, jitterMs: number, source: ChaosEvent["source"]): void {
    this.latencyMs = ms;
    this.jitterMs = jitterMs;
    this.#reshape();
    this.#record("latency", null, `${formatDuration(ms)} jitter ${formatDuration(jitterMs)}`, source);
  }

  #setBandwidth(bytesPerSec: number, source: ChaosEvent["source"]): void {
    this.bandwidth = bytesPerSec;
    this.#reshape();
    this.#record("bandwidth", null, bytesPerSec > 0 ? formatRate(bytesPerSec) : "unlimited", source);
  }

  #applyStep(step: ScheduleStep): void {
    switch (step.kind) {
      case "cut":
        this.#cutAll("schedule");
        break;
      case "reset":
        this.#resetAll("schedule");
        break;
      case "blackhole":
        this.#blackholeAll(step.forMs, "schedule");
        break;
      case "restore":
        this.#restoreAll("schedule");
        break;
      case "latency":
        this.#setLatency(step.ms, step.jitterMs ?? this.jitterMs, "schedule");
        break;
      case "jitter":
        this.#setLatency(this.latencyMs, step.ms, "schedule");
        break;
      case "bandwidth":
        this.#setBandwidth(step.bytesPerSec ?? 0, "schedule");
        break;
      default:
        throw new Error(`unknown schedule step ${formatAction(step as ScheduleStep)}`);
    }
  }

  #applyRandom(d: FaultDecision): void {
    if (this.#random?.target === "all") {
      if (d.kind === "cut") this.#cutAll("random");
      else if (d.kind === "reset") this.#resetAll("random");
      else this.#blackholeAll(d.forMs, "random");
      return;
    }
    // One open connection; with none open, the decision hits nothing and is not recorded.
    const n = this.#live.size;
    if (n === 0) return;
    const index = Math.min(n - 1, Math.floor(d.pick * n));
    let i = 0;
    let link: Link | undefined;
    for (const l of this.#live) {
      if (i++ === index) {
        link = l;
        break;
      }
    }
    if (!link) return;
    if (d.kind === "cut") {
      link.cut();
      this.#record("cut", link.id, "one connection", "random");
    } else if (d.kind === "reset") {
      link.reset();
      this.#record("reset", link.id, "one connection", "random");
    } else {
      this.#blackholeOne(link, d.forMs ?? 0, "random");
    }
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
