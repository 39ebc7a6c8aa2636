import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type ClientOptions, type RawData, WebSocket, WebSocketServer } from "ws";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { CloseCode } from "../wire/frame.js";
import { createHttpListener, type HttpLimits, type HttpRefusal, refuseHttp } from "./http-server.js";
import { LinkState } from "./link-state.js";
import { LongPollHost } from "./long-poll-host.js";
import { readPeerCertificate } from "./peer-certificate.js";
import { bindServer, formatHostPort, isLoopbackAddress } from "./tcp.js";
import { type TrafficCounters, trafficCounters } from "./traffic.js";
import type {
  AcceptFn,
  DialOptions,
  Listener,
  PeerCertificate,
  TlsServerOptions,
  Transport,
  TransportCloseInfo,
  TransportHandler,
  TransportOptions,
} from "./types.js";
import { FirstMessageGuard } from "./ws-first-message.js";

/** A close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5). */
const MAX_REASON_BYTES = 123;
const closeCodes = new Set<string>(Object.values(CloseCode));

/** Our close code travels as the reason's first word; the status is the nearest RFC 6455 one. */
function wsStatus(code: CloseCode): number {
  if (code === CloseCode.NORMAL) return 1000;
  if (code === CloseCode.PROTOCOL_ERROR) return 1002;
  if (code === CloseCode.FRAME_TOO_LARGE) return 1009;
  return 4000;
}

function closeReason(code: CloseCode, message: string): string {
  let out: string = code;
  let bytes = Buffer.byteLength(out);
  for (const ch of `: ${message}`) {
    bytes += Buffer.byteLength(ch);
    if (bytes > MAX_REASON_BYTES) break;
    out += ch;
  }
  return out;
}

/**
 * Maps a close the peer started. A known code in the reason wins, except `normal`, which here
 * reads as `remote_closed` (the memory and TCP transports say the same); otherwise the status.
 */
function remoteClose(status: number, reasonBuf: Buffer): TransportCloseInfo {
  const reason = reasonBuf.toString();
  const sep = reason.indexOf(":");
  const head = sep < 0 ? reason : reason.slice(0, sep);
  const text = sep < 0 ? "" : reason.slice(sep + 1).trim();
  const detail = text || reason;
  const message = detail ? `peer closed: ${detail}` : `peer closed with status ${status}`;
  if (closeCodes.has(head) && head !== CloseCode.NORMAL) return { code: head as CloseCode, message };
  if (status === 1009) return { code: CloseCode.FRAME_TOO_LARGE, message };
  if (status === 1002 || status === 1007) return { code: CloseCode.PROTOCOL_ERROR, message };
  if (status === 1006)
    return { code: CloseCode.TRANSPORT_ERROR, message: "connection lost without a close frame" };
  return { code: CloseCode.REMOTE_CLOSED, message };
}

/**
 * A frame stream over a WebSocket: one binary message per frame. A text message is a protocol
 * error. `onClose` is reported on ws's 'close' (the TCP connection is gone), at most
 * CLOSE_GRACE_MS after `close()`.
 */
class WsTransport implements Transport {
  readonly kind: "ws" | "wss";
  readonly remoteAddress: string;
  readonly isLoopback: boolean;
  readonly peerCertificate: PeerCertificate | undefined;
  readonly #ws: WebSocket;
  readonly #traffic: TrafficCounters;
  /** The socket ws writes to, from the handshake's public API: for cork, 'drain' and the address. */
  readonly #socket: Socket | undefined;
  readonly #maxFrameBytes: number;
  readonly #highWater: number;
  #wantDrain = false;
  #corked = false;
  #corkedFrames = 0;
  /** Until the first message is whole, on a server: what the peer may make us hold. */
  #first: FirstMessageGuard | undefined;
  readonly #link = new LinkState(this);

  constructor(
    kind: "ws" | "wss",
    ws: WebSocket,
    socket: Socket | undefined,
    options: TransportOptions,
    traffic: TrafficCounters,
    peerCertificate?: PeerCertificate,
  ) {
    this.kind = kind;
    this.#ws = ws;
    this.#traffic = traffic;
    this.peerCertificate = peerCertificate;
    this.#socket = socket;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
    this.#highWater = options.highWaterMarkBytes ?? DEFAULTS.highWaterMarkBytes;
    const address = socket?.remoteAddress ?? "";
    this.remoteAddress = formatHostPort(address || "unknown", socket?.remotePort ?? 0);
    this.isLoopback = isLoopbackAddress(address);
    socket?.setNoDelay(true);
    socket?.on("drain", this.#onWritten);
    const firstMax = options.firstFrameMaxBytes;
    if (socket !== undefined && firstMax !== undefined && firstMax < this.#maxFrameBytes)
      this.#first = new FirstMessageGuard(socket, firstMax, (message) => this.#refuseFirst(message));
    ws.on("message", (data: RawData, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on("error", (error: Error) => this.#onError(error));
    ws.on("close", (status: number, reason: Buffer) => {
      this.#link.gone(remoteClose(status, reason));
    });
  }

  /** @internal See LinkOwner. */
  _kill(): void {
    this.#ws.terminate();
  }

  get open(): boolean {
    return this.#link.open && this.#ws.readyState === WebSocket.OPEN;
  }

  get bufferedBytes(): number {
    return this.#ws.bufferedAmount;
  }

  setHandler(handler: TransportHandler): void {
    this.#link.setHandler(handler);
  }

  /**
   * ws.send has no batching option (its options are binary, compress, fin and mask; `fin:false`
   * fragments one message, it does not batch several). So the socket ws writes to, which we got
   * from the handshake's public API, is corked from the first send of a tick to the next tick:
   * every frame sent meanwhile (the results of all the calls in one read, say) leaves in one
   * writev.
   */
  send(frame: Uint8Array): boolean {
    if (!this.open) return false;
    this.#cork();
    return this.#write(frame);
  }

  /** Written at once: what the tick gathered so far goes first, then this frame, uncorked. */
  sendNow(frame: Uint8Array): boolean {
    if (!this.open) return false;
    this.#uncork();
    return this.#write(frame);
  }

  #write(frame: Uint8Array): boolean {
    this.#ws.send(frame, { binary: true }, this.#onWritten);
    this.#traffic.framesOut++;
    this.#traffic.bytesOut += frame.length;
    return this.#checkHighWater();
  }

  sendMany(frames: readonly Uint8Array[]): boolean {
    if (!this.open) return false;
    this.#cork();
    const traffic = this.#traffic;
    for (const f of frames) {
      this.#ws.send(f, { binary: true }, this.#onWritten);
      traffic.bytesOut += f.length;
    }
    traffic.framesOut += frames.length;
    return this.#checkHighWater();
  }

  #cork(): void {
    if (!this.#socket) return;
    if (this.#corked) {
      // A full batch is written at once (DEFAULTS.writeBatchMaxFrames); the cork goes on.
      if (++this.#corkedFrames >= DEFAULTS.writeBatchMaxFrames) {
        this.#corkedFrames = 0;
        this.#socket.uncork();
        this.#socket.cork();
      }
      return;
    }
    this.#corked = true;
    this.#corkedFrames = 1;
    this.#socket.cork();
    process.nextTick(this.#uncork);
  }

  readonly #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.#socket?.uncork();
  };

  close(code: CloseCode = CloseCode.NORMAL, message = "closed"): void {
    if (!this.#link.open) return;
    this.#stopFirst();
    this.#uncork();
    this.#link.shut({ code, message });
    this.#ws.close(wsStatus(code), closeReason(code, message));
  }

  #checkHighWater(): boolean {
    const ok = this.#ws.bufferedAmount <= this.#highWater;
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  /** Write callback of every send, and the socket's 'drain': see TcpTransport for why both. */
  readonly #onWritten = (): void => {
    if (!this.#wantDrain || !this.open || this.#ws.bufferedAmount > this.#highWater) return;
    this.#wantDrain = false;
    this.#link.handler?.onDrain();
  };

  #stopFirst(): void {
    this.#first?.stop();
    this.#first = undefined;
  }

  /**
   * The first message went over its limit: closed with frame_too_large, and nothing more is
   * read (what ws holds goes with the connection, at the latest CLOSE_GRACE_MS later).
   */
  #refuseFirst(message: string): void {
    this.#first = undefined;
    if (!this.#link.open) return;
    this.#socket?.pause();
    this.#link.shut({ code: CloseCode.FRAME_TOO_LARGE, message });
    this.#ws.close(wsStatus(CloseCode.FRAME_TOO_LARGE), closeReason(CloseCode.FRAME_TOO_LARGE, message));
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#first !== undefined) this.#stopFirst();
    if (!this.#link.open) return; // closing: whatever still arrives is dropped
    if (!isBinary) {
      const message = "text message received; only binary frames are allowed";
      this.#link.shut({ code: CloseCode.PROTOCOL_ERROR, message });
      this.#ws.close(1002, closeReason(CloseCode.PROTOCOL_ERROR, message));
      return;
    }
    const frame = Buffer.isBuffer(data)
      ? data
      : Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.from(data);
    this.#traffic.framesIn++;
    this.#traffic.bytesIn += frame.length;
    this.#link.deliver(frame);
  }

  /** ws has already started closing (with the right status) when it reports a receive error. */
  #onError(error: Error): void {
    this.#stopFirst();
    const wsCode = (error as { code?: unknown }).code;
    if (wsCode === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
      const message = `frame exceeds limit of ${this.#maxFrameBytes} bytes`;
      this.#link.shut({ code: CloseCode.FRAME_TOO_LARGE, message, error });
    } else if (typeof wsCode === "string" && wsCode.startsWith("WS_ERR_")) {
      this.#link.shut({ code: CloseCode.PROTOCOL_ERROR, message: error.message, error });
    } else {
      this.#link.shut({ code: CloseCode.TRANSPORT_ERROR, message: error.message, error });
    }
  }
}

/** A WebSocket listener; `httpServer` serves plain HTTP requests (e.g. an admin API). */
export interface WebSocketListener extends Listener {
  readonly httpServer: HttpServer | HttpsServer;
}

function notFound(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(404, { "content-type": "application/json" });
  res.end('{"error":"not found"}');
}

/**
 * Listens for WebSocket upgrades on any path of an HTTP (or, with `tls`, HTTPS) server on
 * `host` (default 127.0.0.1); other requests go to `onHttpRequest` (default: 404 JSON).
 * Resolves once the port is bound. With `tls.ca`, accepted transports carry the client's
 * certificate (`peerCertificate`). `http` bounds the HTTP phase of every connection (timeouts,
 * admission); `checkUpgrade` may refuse an upgrade before it happens (answered, then closed).
 * With `firstFrameMaxBytes`, a connection's first message is held to it (see FirstMessageGuard).
 */
export async function listenWebSocket(
  options: {
    host?: string;
    port: number;
    tls?: TlsServerOptions;
    onHttpRequest?: (req: IncomingMessage, res: ServerResponse) => void;
    http?: HttpLimits;
    checkUpgrade?: (req: IncomingMessage) => HttpRefusal | undefined;
  } & TransportOptions,
  accept: AcceptFn,
): Promise<WebSocketListener> {
  const kind = options.tls ? "wss" : "ws";
  const host = options.host ?? "127.0.0.1";
  // Long-polling links live on the same port, under …/muster/poll; their counters are made with
  // the first one, so that a listener nobody polls lists only its own kind.
  const pollKind = options.tls ? "https" : "http";
  const poll = new LongPollHost(
    pollKind,
    { ...options, check: options.checkUpgrade },
    () => trafficCounters(options.traffic, pollKind),
    accept,
  );
  const other = options.onHttpRequest ?? notFound;
  const http = createHttpListener(
    (req, res) => (poll.handles(req) ? poll.handle(req, res) : other(req, res)),
    options.tls,
    options.http ?? {},
  );
  const server = http.server;
  const traffic = trafficCounters(options.traffic, kind);
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: options.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
    perMessageDeflate: false,
    // Every message of a read is handed over in that read, in order, as over TCP: a frame
    // that comes with the HELLO is seen before the WELCOME can be written (protocol §6.1).
    allowSynchronousEvents: true,
  });
  let closed = false;
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (closed) {
      socket.destroy();
      return;
    }
    const refusal = options.checkUpgrade?.(req);
    if (refusal !== undefined) {
      refuseHttp(socket, refusal);
      return;
    }
    http.upgraded(socket);
    wss.handleUpgrade(req, socket, head, (ws) =>
      accept(new WsTransport(kind, ws, req.socket, options, traffic, readPeerCertificate(req.socket))),
    );
  });
  const port = await bindServer(server, kind, host, options.port);
  return {
    kind,
    url: `${kind}://${formatHostPort(host, port)}`,
    port,
    httpServer: server,
    // Stops accepting (and closes idle keep-alive HTTP connections); open transports stay,
    // so the close callback, which waits for them, is not awaited.
    close: async () => {
      if (closed) return;
      closed = true;
      poll.close();
      server.close();
    },
  };
}

/** Connects to a `ws://` or `wss://` URL. Rejects with UNAVAILABLE on failure, CANCELLED on abort. */
export async function dialWebSocket(url: URL, options: DialOptions): Promise<Transport> {
  const kind = url.protocol === "wss:" ? "wss" : url.protocol === "ws:" ? "ws" : undefined;
  if (!kind)
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `dialWebSocket cannot dial ${url.protocol} URLs`);
  const { signal } = options;
  if (signal?.aborted) {
    throw new MusterError(ErrorCode.CANCELLED, `dial to ${url.href} aborted`, { cause: signal.reason });
  }
  const tls = options.tls ?? {};
  // ws hands these to tls.connect; it sets SNI from the host itself unless the host is an IP.
  const clientOptions: ClientOptions & { servername?: string } = {
    maxPayload: options.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
    perMessageDeflate: false,
    rejectUnauthorized: !tls.insecure,
  };
  if (tls.ca !== undefined) clientOptions.ca = tls.ca;
  if (tls.cert !== undefined) clientOptions.cert = tls.cert;
  if (tls.key !== undefined) clientOptions.key = tls.key;
  if (tls.servername !== undefined) clientOptions.servername = tls.servername;
  const ws = new WebSocket(url, clientOptions);
  return new Promise<Transport>((resolve, reject) => {
    let socket: Socket | undefined;
    const done = (): void => {
      ws.off("upgrade", onUpgrade);
      ws.off("open", onOpen);
      ws.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    const onUpgrade = (res: IncomingMessage): void => {
      socket = res.socket;
    };
    const onOpen = (): void => {
      done();
      resolve(new WsTransport(kind, ws, socket, options, trafficCounters(options.traffic, kind)));
    };
    const onError = (err: Error): void => {
      done();
      ws.on("error", () => {});
      ws.terminate();
      reject(
        new MusterError(ErrorCode.UNAVAILABLE, `cannot connect to ${url.href}: ${err.message}`, {
          cause: err,
        }),
      );
    };
    const onAbort = (): void => {
      done();
      ws.on("error", () => {}); // terminate() while connecting reports an error we no longer want
      ws.terminate();
      reject(new MusterError(ErrorCode.CANCELLED, `dial to ${url.href} aborted`, { cause: signal?.reason }));
    };
    ws.on("upgrade", onUpgrade);
    ws.on("open", onOpen);
    ws.on("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
