import {
  type AddressInfo,
  createServer as createNetServer,
  isIP,
  connect as netConnect,
  type Server,
  type Socket,
} from "node:net";
import { createServer as createTlsServer, type TlsOptions, connect as tlsConnect } from "node:tls";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { formatHostPort, isLoopbackAddress } from "../internal/host-port.js";
import { encodeFrame } from "../wire/codec.js";
import { CloseCode, FrameType } from "../wire/frame.js";
import { LENGTH_PREFIX_BYTES, LengthPrefixDecoder } from "../wire/length-prefix.js";
import { LinkState } from "./link-state.js";
import { readPeerCertificate } from "./peer-certificate.js";
import { type TrafficCounters, trafficCounters } from "./traffic.js";
import type {
  AcceptFn,
  DialOptions,
  Listener,
  PeerCertificate,
  TlsServerOptions,
  Transport,
  TransportHandler,
  TransportOptions,
} from "./types.js";

export { formatHostPort, isLoopbackAddress };

/**
 * A frame stream over a TCP or TLS socket; each frame carries a u32 big-endian length prefix.
 * Close reasons: a bad prefix → frame_too_large / protocol_error (this side), the peer's FIN →
 * remote_closed, a reset or other socket error → transport_error. `onClose` is reported once
 * the socket has really closed, which a graceful close bounds to CLOSE_GRACE_MS.
 */
const flushTransport = (t: TcpTransport): void => t._flush();

class TcpTransport implements Transport {
  readonly kind: "tcp" | "tls";
  readonly remoteAddress: string;
  readonly isLoopback: boolean;
  readonly peerCertificate: PeerCertificate | undefined;
  readonly #socket: Socket;
  readonly #traffic: TrafficCounters;
  readonly #decoder: LengthPrefixDecoder;
  readonly #highWater: number;
  #wantDrain = false;
  /** Frames sent in this tick, written together by `#flush` (one buffer, one system call). */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  readonly #link = new LinkState(this);

  constructor(
    kind: "tcp" | "tls",
    socket: Socket,
    options: TransportOptions,
    traffic: TrafficCounters,
    peerCertificate?: PeerCertificate,
  ) {
    this.kind = kind;
    this.#socket = socket;
    this.#traffic = traffic;
    this.peerCertificate = peerCertificate;
    this.#decoder = new LengthPrefixDecoder(
      options.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
      options.firstFrameMaxBytes,
    );
    this.#highWater = options.highWaterMarkBytes ?? DEFAULTS.highWaterMarkBytes;
    const address = socket.remoteAddress ?? "";
    this.remoteAddress = formatHostPort(address || "unknown", socket.remotePort ?? 0);
    this.isLoopback = isLoopbackAddress(address);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("drain", this.#onWritten);
    socket.on("end", () =>
      this.#link.shut({ code: CloseCode.REMOTE_CLOSED, message: "peer closed the connection" }),
    );
    socket.on("error", (error: Error) =>
      this.#link.shut({ code: CloseCode.TRANSPORT_ERROR, message: error.message, error }),
    );
    socket.on("close", () => {
      this.#link.gone({ code: CloseCode.TRANSPORT_ERROR, message: "connection closed" });
    });
  }

  /** @internal See LinkOwner. */
  _kill(): void {
    this.#socket.destroy();
  }

  get open(): boolean {
    return this.#link.open;
  }

  get bufferedBytes(): number {
    return this.#socket.writableLength + this.#pendingBytes;
  }

  setHandler(handler: TransportHandler): void {
    this.#link.setHandler(handler);
  }

  /**
   * Frames are not written at once but gathered until the next tick: every frame sent meanwhile
   * (the results of all the calls in one read, a fan-out's calls, a replay) goes out in one
   * buffer with its length prefixes, in one write. The prefixing copy is needed anyway.
   */
  send(frame: Uint8Array): boolean {
    if (!this.#link.open) return false;
    if (this.#pending.length === 0) process.nextTick(flushTransport, this);
    this.#pending.push(frame);
    this.#pendingBytes += LENGTH_PREFIX_BYTES + frame.length;
    if (
      this.#pending.length >= DEFAULTS.writeBatchMaxFrames ||
      this.#pendingBytes >= DEFAULTS.writeBatchMaxBytes
    )
      this._flush();
    return this.#checkHighWater();
  }

  /** Written at once, after whatever the tick gathered so far, in the same write. */
  sendNow(frame: Uint8Array): boolean {
    if (!this.#link.open) return false;
    this.#pending.push(frame);
    this.#pendingBytes += LENGTH_PREFIX_BYTES + frame.length;
    this._flush();
    return this.#checkHighWater();
  }

  sendMany(frames: readonly Uint8Array[]): boolean {
    if (!this.#link.open) return false;
    for (const f of frames) this.send(f);
    return this.#checkHighWater();
  }

  /** @internal Writes the frames gathered so far (see `send`). */
  _flush(): void {
    const frames = this.#pending;
    if (frames.length === 0) return;
    const total = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (!this.#link.open) return;
    this.#traffic.framesOut += frames.length;
    this.#traffic.bytesOut += total - LENGTH_PREFIX_BYTES * frames.length;
    const out = Buffer.allocUnsafe(total);
    let offset = 0;
    for (const f of frames) {
      out.writeUInt32BE(f.length, offset);
      out.set(f, offset + LENGTH_PREFIX_BYTES);
      offset += LENGTH_PREFIX_BYTES + f.length;
    }
    this.#socket.write(out, this.#onWritten);
  }

  #checkHighWater(): boolean {
    const ok = this.bufferedBytes <= this.#highWater;
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  close(code: CloseCode = CloseCode.NORMAL, message = "closed"): void {
    if (!this.#link.open) return;
    this._flush();
    this.#link.shut({ code, message });
    this.#socket.end(); // pending writes are flushed first
  }

  /**
   * Every write carries this bound callback, so that `onDrain` fires even when the socket's own
   * high-water mark (16 KiB, not ours) never makes it emit 'drain'. The write callback runs once
   * the chunk is handed to the kernel, when `writableLength` no longer counts it.
   */
  readonly #onWritten = (): void => {
    if (!this.#wantDrain || !this.#link.open || this.bufferedBytes > this.#highWater) return;
    this.#wantDrain = false;
    this.#link.handler?.onDrain();
  };

  #onData(chunk: Buffer): void {
    if (!this.#link.open) return; // closing: whatever still arrives is dropped
    let inHandler = false;
    try {
      this.#decoder.push(chunk, (frame) => {
        inHandler = true;
        this.#deliver(frame);
        inHandler = false;
      });
    } catch (err) {
      if (inHandler) throw err; // the handler's own bug: not a protocol matter
      const tooLarge = err instanceof MusterError && err.code === ErrorCode.FRAME_TOO_LARGE;
      const error = err instanceof Error ? err : new Error(String(err));
      const code = tooLarge ? CloseCode.FRAME_TOO_LARGE : CloseCode.PROTOCOL_ERROR;
      const message = err instanceof MusterError ? err.rawMessage : error.message;
      // What was already sent in this read (a WELCOME, results) goes out first, then a CLOSE
      // that tells the peer why (protocol §13), then the connection is closed.
      this.send(encodeFrame({ type: FrameType.CLOSE, seq: 0, ack: 0, close: { code, message } }));
      this._flush();
      this.#link.shut({ code, message, error });
      this.#socket.end();
    }
  }

  #deliver(frame: Uint8Array): void {
    if (!this.#link.open) return; // the handler closed the transport mid-chunk
    this.#traffic.framesIn++;
    this.#traffic.bytesIn += frame.length;
    this.#link.deliver(frame);
  }
}

/**
 * Binds `server` and resolves with the bound port (so that port 0 works); a failure (e.g.
 * EADDRINUSE) rejects with UNAVAILABLE. Shared by the TCP and WebSocket listeners.
 */
export function bindServer(server: Server, kind: string, host: string, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const onError = (err: Error): void => {
      const where = `${kind}://${formatHostPort(host, port)}`;
      reject(
        new MusterError(ErrorCode.UNAVAILABLE, `cannot listen on ${where}: ${err.message}`, { cause: err }),
      );
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      // Errors after listening (e.g. EMFILE on accept) are transient: the server keeps listening.
      server.on("error", () => {});
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Node's TLS server options for `tls`: with a `ca`, a client certificate is asked for but not
 * required, and one that fails verification does not fail the handshake (see TlsServerOptions).
 */
export function tlsServerOptions(tls: TlsServerOptions): TlsOptions {
  const out: TlsOptions = { cert: tls.cert, key: tls.key };
  if (tls.ca !== undefined) Object.assign(out, { ca: tls.ca, requestCert: true, rejectUnauthorized: false });
  return out;
}

/**
 * Listens for TCP (or, with `tls`, TLS) connections on `host` (default 127.0.0.1); resolves
 * once the port is bound. With `tls.ca`, accepted transports carry the client's certificate
 * (`peerCertificate`).
 */
export async function listenTcp(
  options: { host?: string; port: number; tls?: TlsServerOptions } & TransportOptions,
  accept: AcceptFn,
): Promise<Listener> {
  const kind = options.tls ? "tls" : "tcp";
  const host = options.host ?? "127.0.0.1";
  const traffic = trafficCounters(options.traffic, kind);
  const onSocket = (socket: Socket): void =>
    accept(new TcpTransport(kind, socket, options, traffic, readPeerCertificate(socket)));
  const server: Server = options.tls
    ? createTlsServer(tlsServerOptions(options.tls), onSocket)
    : createNetServer(onSocket);
  const port = await bindServer(server, kind, host, options.port);
  let closed = false;
  return {
    kind,
    url: `${kind}://${formatHostPort(host, port)}`,
    port,
    // server.close() stops accepting at once; its callback would wait for every open
    // connection, which this contract leaves alone, so it is not awaited.
    close: async () => {
      if (closed) return;
      closed = true;
      server.close();
    },
  };
}

/**
 * Connects to a `tcp://host:port` or `tls://host:port` URL (port defaults to 33076).
 * Rejects with UNAVAILABLE when the connection (or TLS handshake) fails, CANCELLED on abort.
 */
export async function dialTcp(url: URL, options: DialOptions): Promise<Transport> {
  const kind = url.protocol === "tls:" ? "tls" : url.protocol === "tcp:" ? "tcp" : undefined;
  if (!kind) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `dialTcp cannot dial ${url.protocol} URLs`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!host) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `no host in ${url.href}`);
  const port = url.port ? Number(url.port) : DEFAULTS.tcpPort;
  const { signal } = options;
  return new Promise<Transport>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new MusterError(ErrorCode.CANCELLED, `dial to ${url.href} aborted`, { cause: signal.reason }));
      return;
    }
    const tls = options.tls ?? {};
    const socket =
      kind === "tls"
        ? tlsConnect({
            host,
            port,
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
            rejectUnauthorized: !tls.insecure,
            // SNI carries names only; Node verifies an IP host against the IP SANs by itself.
            servername: tls.servername ?? (isIP(host) ? undefined : host),
          })
        : netConnect({ host, port });
    const done = (): void => {
      socket.off("error", onError);
      socket.off(kind === "tls" ? "secureConnect" : "connect", onConnect);
      signal?.removeEventListener("abort", onAbort);
    };
    const onConnect = (): void => {
      done();
      resolve(new TcpTransport(kind, socket, options, trafficCounters(options.traffic, kind)));
    };
    const onError = (err: Error): void => {
      done();
      socket.destroy();
      reject(
        new MusterError(ErrorCode.UNAVAILABLE, `cannot connect to ${url.href}: ${err.message}`, {
          cause: err,
        }),
      );
    };
    const onAbort = (): void => {
      done();
      socket.destroy();
      reject(new MusterError(ErrorCode.CANCELLED, `dial to ${url.href} aborted`, { cause: signal?.reason }));
    };
    socket.once(kind === "tls" ? "secureConnect" : "connect", onConnect);
    socket.once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
