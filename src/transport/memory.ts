import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { CloseCode } from "../wire/frame.js";
import { type TrafficCounters, type TrafficStats, trafficCounters } from "./traffic.js";
import type {
  AcceptFn,
  Listener,
  Transport,
  TransportCloseInfo,
  TransportHandler,
  TransportOptions,
} from "./types.js";

/**
 * In-process transport: a connected pair that delivers whole frames asynchronously (one
 * `setImmediate` per batch, like socket I/O), in order, with back-pressure and close reasons.
 * It ships in the package for tests, embedding and examples.
 */
class MemoryTransport implements Transport {
  readonly kind = "memory";
  readonly remoteAddress: string;
  readonly isLoopback = true;
  peer!: MemoryTransport;
  #handler: TransportHandler | undefined;
  #early: Uint8Array[] = [];
  #inbox: Uint8Array[] = [];
  #inboxBytes = 0;
  #scheduled = false;
  #open = true;
  #closeInfo: TransportCloseInfo | undefined;
  #closeReported = false;
  #wantDrain = false;
  #losing = false;
  readonly #maxFrameBytes: number;
  readonly #highWater: number;
  readonly #traffic: TrafficCounters;

  constructor(remoteAddress: string, options: TransportOptions, traffic: TrafficCounters) {
    this.remoteAddress = remoteAddress;
    this.#traffic = traffic;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
    this.#highWater = options.highWaterMarkBytes ?? DEFAULTS.highWaterMarkBytes;
  }

  get open(): boolean {
    return this.#open;
  }

  /** Bytes sent by this side that the peer has not yet received. */
  get bufferedBytes(): number {
    return this.peer.#inboxBytes;
  }

  setHandler(handler: TransportHandler): void {
    if (this.#handler) throw new MusterError(ErrorCode.INVALID_ARGUMENT, "transport handler already set");
    this.#handler = handler;
    for (const f of this.#early.splice(0)) handler.onFrame(f);
    if (this.#closeInfo && !this.#closeReported) this.#reportClose();
  }

  send(frame: Uint8Array): boolean {
    if (!this.#open) return false;
    this.#traffic.framesOut++;
    this.#traffic.bytesOut += frame.length;
    if (this.#losing) return true;
    this.peer.#enqueue(Uint8Array.prototype.slice.call(frame));
    const ok = this.bufferedBytes <= this.#highWater;
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  sendMany(frames: readonly Uint8Array[]): boolean {
    let ok = true;
    for (const f of frames) ok = this.send(f);
    return ok;
  }

  close(code: CloseCode = CloseCode.NORMAL, message = "closed"): void {
    if (!this.#open) return;
    this.#shut({ code, message });
    this.peer.#shutAfterInbox({ code: CloseCode.REMOTE_CLOSED, message: `peer closed: ${message}` });
  }

  /** Breaks the link abruptly, as a network failure would: both sides see transport_error. */
  cut(message = "link cut"): void {
    if (!this.#open && !this.peer.#open) return;
    this.#inbox = [];
    this.#inboxBytes = 0;
    this.peer.#inbox = [];
    this.peer.#inboxBytes = 0;
    this.#shut({ code: CloseCode.TRANSPORT_ERROR, message });
    this.peer.#shut({ code: CloseCode.TRANSPORT_ERROR, message });
  }

  /** While `on`, frames sent from this end vanish and the link stays up. */
  lose(on = true): void {
    this.#losing = on;
  }

  #enqueue(frame: Uint8Array): void {
    if (!this.#open) return;
    if (frame.length > this.#maxFrameBytes) {
      const message = `frame of ${frame.length} bytes exceeds limit of ${this.#maxFrameBytes} bytes`;
      this.#shut({ code: CloseCode.FRAME_TOO_LARGE, message });
      this.peer.#shut({ code: CloseCode.REMOTE_CLOSED, message });
      return;
    }
    this.#inbox.push(frame);
    this.#inboxBytes += frame.length;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#inbox;
    this.#inbox = [];
    this.#inboxBytes = 0;
    for (const f of batch) {
      if (this.#closeInfo && this.#closeInfo.code !== CloseCode.REMOTE_CLOSED) break;
      this.#deliver(f);
    }
    if (this.peer.#wantDrain) {
      this.peer.#wantDrain = false;
      this.peer.#handler?.onDrain();
    }
    if (this.#closeInfo && !this.#closeReported) this.#reportClose();
  }

  #deliver(f: Uint8Array): void {
    this.#traffic.framesIn++;
    this.#traffic.bytesIn += f.length;
    if (this.#handler) this.#handler.onFrame(f);
    else this.#early.push(f);
  }

  #shut(info: TransportCloseInfo): void {
    if (this.#closeInfo) return;
    this.#open = false;
    this.#closeInfo = info;
    if (this.#inbox.length === 0) this.#schedule();
  }

  /** The peer closed gracefully: deliver what is in flight, then report the close. */
  #shutAfterInbox(info: TransportCloseInfo): void {
    if (this.#closeInfo) return;
    this.#open = false;
    this.#closeInfo = info;
    this.#schedule();
  }

  #reportClose(): void {
    if (!this.#handler) return;
    this.#closeReported = true;
    this.#handler.onClose(this.#closeInfo!);
  }
}

/** A transport of a memory pair, with `cut()` to simulate a network failure. */
export interface MemoryTransportEnd extends Transport {
  /** Breaks the link abruptly: both ends report `transport_error`, in-flight frames are lost. */
  cut(message?: string): void;
  /**
   * While `on`, frames sent from this end vanish without a trace and the link stays up, as
   * through a middlebox that drops a stretch of the stream; `lose(false)` ends it.
   */
  lose(on?: boolean): void;
}

/**
 * Creates two connected in-process transports. `options` apply to both ends; with `traffic`,
 * both count into it (see MemoryNetwork for a listener's own counters).
 */
export function createMemoryPair(
  options: TransportOptions & { names?: [string, string] } = {},
): [MemoryTransportEnd, MemoryTransportEnd] {
  return connectPair(options, options.traffic);
}

/** A pair whose second end, the accepting one, counts into `acceptTraffic`. */
function connectPair(
  options: TransportOptions & { names?: [string, string] },
  acceptTraffic: TrafficStats | undefined,
): [MemoryTransportEnd, MemoryTransportEnd] {
  const [an, bn] = options.names ?? ["memory:a", "memory:b"];
  const a = new MemoryTransport(bn, options, trafficCounters(options.traffic, "memory"));
  const b = new MemoryTransport(an, options, trafficCounters(acceptTraffic, "memory"));
  a.peer = b;
  b.peer = a;
  return [a, b];
}

interface MemoryListener {
  accept: AcceptFn;
  traffic: TrafficStats | undefined;
}

/**
 * A namespace of in-process listeners, so that servers and agents in one process can find
 * each other by `memory://NAME` URLs. Pass the same network to both.
 */
export class MemoryNetwork {
  readonly #listeners = new Map<string, MemoryListener>();
  readonly #live = new Set<MemoryTransportEnd>();
  #next = 0;

  /**
   * Accepts the dials to `memory://NAME`. The limits of a pair (`maxFrameBytes`, …) are the
   * dialer's; the accepted ends count their traffic into `options.traffic`.
   */
  listen(name: string, accept: AcceptFn, options: { traffic?: TrafficStats | undefined } = {}): Listener {
    if (this.#listeners.has(name)) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `memory listener ${name} already exists`);
    }
    options.traffic?.for("memory");
    this.#listeners.set(name, { accept, traffic: options.traffic });
    return {
      kind: "memory",
      url: `memory://${name}`,
      port: 0,
      close: async () => {
        this.#listeners.delete(name);
      },
    };
  }

  /** Connects to a listener; rejects with UNAVAILABLE when nothing listens under `name`. */
  async dial(name: string, options: TransportOptions = {}): Promise<MemoryTransportEnd> {
    const listener = this.#listeners.get(name);
    if (!listener) throw new MusterError(ErrorCode.UNAVAILABLE, `nothing listens at memory://${name}`);
    const id = ++this.#next;
    const [client, server] = connectPair(
      { ...options, names: [`memory:client-${id}`, `memory:${name}`] },
      listener.traffic,
    );
    this.#live.add(client);
    const forget = (): void => {
      this.#live.delete(client);
    };
    queueMicrotask(() => listener.accept(server));
    // Track the pair until it closes, so that cutAll() can reach it.
    const origClose = client.close.bind(client);
    client.close = (code, message) => {
      forget();
      origClose(code, message);
    };
    return client;
  }

  /** Cuts every live connection made through this network (a simulated outage). */
  cutAll(message = "network outage"): void {
    for (const t of this.#live) t.cut(message);
    this.#live.clear();
  }
}
