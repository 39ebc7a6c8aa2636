import * as grpc from "@grpc/grpc-js";
import { serveAperture } from "../aperture/serve.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { formatHostPort, isLoopbackAddress } from "../internal/host-port.js";
import { encodeFrame } from "../wire/codec.js";
import { CloseCode, FrameType } from "../wire/frame.js";
import { http2StreamOf, resetServerCall, sentStatusOf } from "./grpc-call.js";
import { decodeFrameMessage, encodeFrameMessage, FRAME_MESSAGE_OVERHEAD } from "./grpc-frame.js";
import { grpcChannelCredentials, grpcServerCredentials, peerCertificateOf } from "./grpc-tls.js";
import { LinkState } from "./link-state.js";
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

/** The method of proto/muster/v1/link.proto that carries a link. */
export const LINK_METHOD = "/muster.v1.Link/Connect";

/** gRPC's own keepalive (HTTP/2 PING) both ways: a dead connection is found even when idle. */
export const GRPC_KEEPALIVE = { timeMs: 30_000, timeoutMs: 10_000 };

/** Calls (links) one HTTP/2 connection may hold at once on a listener. */
export const GRPC_MAX_STREAMS = 100;

/** Frames go through gRPC already encoded (grpc-frame.ts): no protobuf library on the way. */
const asIs = (message: Buffer): Buffer => message;

/** A service of one bidirectional method `Connect` at `path`, its messages left as bytes. */
export function connectService(path: string): grpc.ServiceDefinition {
  return {
    Connect: {
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: asIs,
      requestDeserialize: asIs,
      responseSerialize: asIs,
      responseDeserialize: asIs,
    },
  };
}

type Call = grpc.ClientDuplexStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

/** HTTP/2 options of both ends: the message limit follows maxFrameBytes; keepalive is on. */
function channelOptions(options: TransportOptions): grpc.ChannelOptions {
  const maxFrame = options.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
  return {
    // gRPC refuses a message over this before reading it; the transport then checks the frame.
    "grpc.max_receive_message_length": maxFrame + FRAME_MESSAGE_OVERHEAD,
    "grpc.max_send_message_length": -1,
    "grpc.keepalive_time_ms": GRPC_KEEPALIVE.timeMs,
    "grpc.keepalive_timeout_ms": GRPC_KEEPALIVE.timeoutMs,
    "grpc.keepalive_permit_without_calls": 1,
    // A window of one frame: a peer that does not read is stopped by HTTP/2 flow control there.
    "grpc-node.flow_control_window": Math.max(65_535, maxFrame + FRAME_MESSAGE_OVERHEAD),
  };
}

/**
 * A link over one gRPC bidirectional stream of `muster.v1.Link/Connect`: each frame one Frame
 * message. Close reasons: a frame over the limit → frame_too_large (this side; gRPC's own
 * refusal of a far larger message too), a malformed message → protocol_error, the peer's end of
 * the stream → remote_closed, a reset or a failed connection → transport_error.
 */
class GrpcTransport implements Transport {
  readonly kind: string;
  readonly remoteAddress: string;
  readonly isLoopback: boolean;
  readonly peerCertificate: PeerCertificate | undefined;
  readonly #call: Call;
  readonly #traffic: TrafficCounters;
  readonly #maxFrame: number;
  #firstLimit: number | undefined;
  readonly #highWater: number;
  #buffered = 0;
  #wantDrain = false;
  readonly #link = new LinkState(this);
  readonly #end: () => void;
  readonly #kill: () => void;

  constructor(
    kind: string,
    call: Call,
    parts: {
      remote: { host: string; port: number };
      options: TransportOptions;
      traffic: TrafficCounters;
      peerCertificate?: PeerCertificate | undefined;
      end: () => void;
      kill: () => void;
    },
  ) {
    this.kind = kind;
    this.#call = call;
    this.#traffic = parts.traffic;
    this.peerCertificate = parts.peerCertificate;
    this.remoteAddress = formatHostPort(parts.remote.host || "unknown", parts.remote.port);
    this.isLoopback = isLoopbackAddress(parts.remote.host);
    this.#maxFrame = parts.options.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
    this.#firstLimit = parts.options.firstFrameMaxBytes;
    this.#highWater = parts.options.highWaterMarkBytes ?? DEFAULTS.highWaterMarkBytes;
    this.#end = parts.end;
    this.#kill = parts.kill;
    call.on("data", (message: Buffer) => this.#onMessage(message));
  }

  /** @internal See LinkOwner. */
  _kill(): void {
    this.#kill();
  }

  /** @internal The stream ended or failed; `gone` when nothing more can come of it. */
  _shut(code: CloseCode, message: string, error?: Error): void {
    this.#link.shut({ code, message, ...(error ? { error } : {}) });
  }

  /** @internal The call is over (status sent or received, or reset). */
  _gone(): void {
    this.#link.gone({ code: CloseCode.TRANSPORT_ERROR, message: "stream closed" });
  }

  get open(): boolean {
    return this.#link.open;
  }

  get bufferedBytes(): number {
    return this.#buffered;
  }

  setHandler(handler: TransportHandler): void {
    this.#link.setHandler(handler);
  }

  send(frame: Uint8Array): boolean {
    if (!this.#link.open) return false;
    this.#write(frame);
    return this.#checkHighWater();
  }

  sendMany(frames: readonly Uint8Array[]): boolean {
    if (!this.#link.open) return false;
    for (const f of frames) this.#write(f);
    return this.#checkHighWater();
  }

  #write(frame: Uint8Array): void {
    const message = encodeFrameMessage(frame);
    const size = message.length;
    this.#buffered += size;
    this.#traffic.framesOut++;
    this.#traffic.bytesOut += frame.length;
    // The callback runs once HTTP/2 has taken the message (within its flow-control window).
    this.#call.write(message, () => this.#onWritten(size));
  }

  #onWritten(size: number): void {
    this.#buffered -= size;
    if (!this.#wantDrain || !this.#link.open || this.#buffered > this.#highWater) return;
    this.#wantDrain = false;
    this.#link.handler?.onDrain();
  }

  #checkHighWater(): boolean {
    const ok = this.#buffered <= this.#highWater;
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  close(code: CloseCode = CloseCode.NORMAL, message = "closed"): void {
    if (!this.#link.open) return;
    this.#link.shut({ code, message });
    this.#end(); // frames already written go first
  }

  #onMessage(message: Buffer): void {
    if (!this.#link.open) return; // closing: whatever still arrives is dropped
    let frame: Uint8Array;
    try {
      frame = decodeFrameMessage(message);
    } catch (err) {
      this.#refuse(CloseCode.PROTOCOL_ERROR, (err as MusterError).rawMessage ?? String(err));
      return;
    }
    const limit = this.#firstLimit ?? this.#maxFrame;
    this.#firstLimit = undefined;
    if (frame.length > limit) {
      this.#refuse(CloseCode.FRAME_TOO_LARGE, `frame of ${frame.length} bytes exceeds the limit of ${limit}`);
      return;
    }
    this.#traffic.framesIn++;
    this.#traffic.bytesIn += frame.length;
    this.#link.deliver(frame);
  }

  /** Tells the peer why in a CLOSE frame (protocol §13), then ends the stream. */
  #refuse(code: CloseCode, message: string): void {
    this.send(encodeFrame({ type: FrameType.CLOSE, seq: 0, ack: 0, close: { code, message } }));
    this.#link.shut({ code, message });
    this.#end();
  }
}

/** "ipv4:127.0.0.1:5000", "[::1]:5000" or "127.0.0.1:5000" → host and port. */
export function parsePeer(peer: string): { host: string; port: number } {
  const bare = peer.replace(/^ipv[46]:/, "");
  const at = bare.lastIndexOf(":");
  if (at <= 0) return { host: bare, port: 0 };
  return { host: bare.slice(0, at).replace(/^\[(.*)\]$/, "$1"), port: Number(bare.slice(at + 1)) || 0 };
}

export interface GrpcListenOptions extends TransportOptions {
  host?: string;
  port: number;
  tls?: TlsServerOptions | undefined;
  /** Also serve aperture's `aperture.rpc.v1.Coordinator/Connect` (src/aperture). @default true */
  aperture?: boolean;
}

/**
 * A gRPC server serving `muster.v1.Link/Connect` on `host:port` (grpcs with `tls`); each call is
 * one accepted transport. Other services may be added to it through `addService` before use.
 */
export class GrpcListener implements Listener {
  readonly kind: string;
  readonly url: string;
  readonly port: number;
  readonly server: grpc.Server;
  readonly #address: string;
  #closed = false;

  constructor(kind: string, server: grpc.Server, address: string, host: string, port: number) {
    this.#address = address;
    this.kind = kind;
    this.server = server;
    this.port = port;
    this.url = `${kind}://${formatHostPort(host, port)}`;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // No new connections; the open links are left alone (Listener's contract).
    this.server.unbind(this.#address);
  }
}

export async function listenGrpc(options: GrpcListenOptions, accept: AcceptFn): Promise<GrpcListener> {
  const kind = options.tls ? "grpcs" : "grpc";
  const host = options.host ?? "127.0.0.1";
  const traffic = trafficCounters(options.traffic, kind);
  // One HTTP/2 connection may carry this many links at once; a peer asking for more waits.
  const server = new grpc.Server({
    ...channelOptions(options),
    "grpc.max_concurrent_streams": GRPC_MAX_STREAMS,
  });
  server.addService(connectService(LINK_METHOD), {
    Connect: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const transport = new GrpcTransport(kind, call, {
        remote: parsePeer(call.getPeer()),
        options,
        traffic,
        peerCertificate: peerCertificateOf(call),
        end: () => call.end(),
        kill: () => resetServerCall(call),
      });
      call.on("end", () => {
        transport._shut(CloseCode.REMOTE_CLOSED, "peer closed the stream");
        call.end();
      });
      call.on("error", (error: Error) => transport._shut(CloseCode.TRANSPORT_ERROR, error.message, error));
      call.on("cancelled", () => {
        // grpc-js refuses a message far over the limit itself, with this status and no event of
        // its own; the status is readable once the HTTP/2 stream has closed.
        const settle = (): void => {
          if (sentStatusOf(call) === grpc.status.RESOURCE_EXHAUSTED)
            transport._shut(CloseCode.FRAME_TOO_LARGE, "a message exceeded the frame limit");
          transport._shut(CloseCode.REMOTE_CLOSED, "stream cancelled");
          transport._gone();
        };
        const stream = http2StreamOf(call);
        if (stream && !stream.closed) stream.once("close", settle);
        else settle();
      });
      // Headers now, so that the dialer knows the link is up before it sends.
      call.sendMetadata(new grpc.Metadata());
      accept(transport);
    },
  });
  if (options.aperture !== false) serveAperture(server, kind, options, accept);
  const address = `${host.includes(":") ? `[${host}]` : host}:${options.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpcServerCredentials(options.tls), (err, bound) => {
      if (err)
        reject(
          new MusterError(
            ErrorCode.UNAVAILABLE,
            `cannot listen on ${kind}://${formatHostPort(host, options.port)}: ${err.message}`,
            { cause: err },
          ),
        );
      else resolve(bound);
    });
  });
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return new GrpcListener(kind, server, `${bracketed}:${port}`, host, port);
}

/**
 * Dials `grpc://host:port` or `grpcs://…`: one channel (one HTTP/2 connection) and one call of
 * `muster.v1.Link/Connect`, resolved once the server has answered with its headers.
 */
export async function dialGrpc(url: URL, options: DialOptions): Promise<Transport> {
  const kind = url.protocol === "grpcs:" ? "grpcs" : url.protocol === "grpc:" ? "grpc" : undefined;
  if (!kind) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `dialGrpc cannot dial ${url.protocol} URLs`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!host) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `no host in ${url.href}`);
  const port = url.port ? Number(url.port) : DEFAULTS.grpcPort;
  const { signal } = options;
  if (signal?.aborted)
    throw new MusterError(ErrorCode.CANCELLED, `dial to ${url.href} aborted`, { cause: signal.reason });
  const target = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const channel = grpcChannelCredentials(kind === "grpcs", options.tls, host);
  const client = new grpc.Client(target, channel.credentials, {
    ...channelOptions(options),
    ...channel.options,
  });
  const call = client.makeBidiStreamRequest(LINK_METHOD, asIs, asIs);
  const traffic = trafficCounters(options.traffic, kind);
  const transport = new GrpcTransport(kind, call, {
    remote: { host, port },
    options,
    traffic,
    end: () => call.end(),
    kill: () => call.cancel(),
  });
  let settled = false;
  return new Promise<Transport>((resolve, reject) => {
    const fail = (why: string, cause?: Error): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      call.cancel();
      client.close();
      reject(new MusterError(ErrorCode.UNAVAILABLE, `cannot reach ${url.href}: ${why}`, { cause }));
    };
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      call.cancel();
      client.close();
      reject(new MusterError(ErrorCode.CANCELLED, `dial to ${url.href} aborted`, { cause: signal?.reason }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    call.on("metadata", () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(transport);
    });
    call.on("error", (error: grpc.ServiceError) => {
      if (!settled) return fail(error.details || error.message, error);
      const code =
        error.code === grpc.status.RESOURCE_EXHAUSTED ? CloseCode.FRAME_TOO_LARGE : CloseCode.TRANSPORT_ERROR;
      transport._shut(code, error.details || error.message, error);
    });
    call.on("end", () => transport._shut(CloseCode.REMOTE_CLOSED, "peer closed the stream"));
    call.on("status", (status: grpc.StatusObject) => {
      if (!settled) fail(status.details || grpc.status[status.code] || "stream ended");
      if (status.code !== grpc.status.OK)
        transport._shut(CloseCode.TRANSPORT_ERROR, status.details || String(grpc.status[status.code]));
      transport._shut(CloseCode.REMOTE_CLOSED, "peer closed the stream");
      transport._gone();
      client.close();
    });
  });
}
