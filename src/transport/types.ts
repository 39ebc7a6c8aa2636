import type { CloseCode } from "../wire/frame.js";
import type { TrafficStats } from "./traffic.js";

export { TrafficCounters, TrafficStats } from "./traffic.js";

/**
 * Why a transport closed. Reported exactly once through `TransportHandler.onClose`.
 * `code` is from the same set as CLOSE frames; `message` is for people.
 */
export interface TransportCloseInfo {
  code: CloseCode;
  message: string;
  /** The underlying error, when there was one. */
  error?: Error;
}

/** What a transport reports to. Set once, right after the transport is created. */
export interface TransportHandler {
  /** One whole frame, exactly as the peer sent it. The buffer may be a view: copy to keep it. */
  onFrame(frame: Uint8Array): void;
  /** The transport is closed; called exactly once, and nothing is called after it. */
  onClose(info: TransportCloseInfo): void;
  /** The write buffer fell back below the high-water mark after `send` returned false. */
  onDrain(): void;
}

/**
 * The contract every transport meets: whole frames in order, both ways, with back-pressure
 * and a close reason. A transport knows nothing of sessions, sequence numbers or calls.
 *
 * Implementations: `memory` (in-process pair), `websocket` (ws/wss), `tcp` (tcp/tls with a
 * 4-byte length prefix). Each counts its frames and bytes into `TransportOptions.traffic`.
 */
export interface Transport {
  /** "memory", "ws", "wss", "tcp" or "tls". */
  readonly kind: string;
  /** The peer's address, `host:port` for network transports. */
  readonly remoteAddress: string;
  /** True when the peer is on this machine (loopback address or in-process). */
  readonly isLoopback: boolean;
  /** Bytes accepted by `send` but not yet handed to the operating system. */
  readonly bufferedBytes: number;
  /** False once closed (or closing): sends are then dropped. */
  readonly open: boolean;
  /**
   * The client certificate the peer presented, on the accepting side of a tls:// or wss://
   * link whose listener asks for one (`TlsServerOptions.ca`). Undefined on other transports,
   * on the dialing side, and when the peer sent none. The TLS layer does not refuse a
   * certificate that fails verification: read `authorized` before trusting the names.
   */
  readonly peerCertificate?: PeerCertificate | undefined;
  /** Registers the handler. Frames that arrived before are delivered to it, in order. */
  setHandler(handler: TransportHandler): void;
  /**
   * Sends one whole frame. Returns false when the write buffer is above the high-water mark
   * (the frame is still queued); `onDrain` follows. A send on a closed transport is dropped.
   */
  send(frame: Uint8Array): boolean;
  /**
   * Sends several frames with as few writes (system calls) as possible.
   * Same return value as `send`.
   */
  sendMany(frames: readonly Uint8Array[]): boolean;
  /**
   * Like `send`, but written at once (after any frames gathered before it) rather than at the
   * end of the tick: for a frame known to be the only one for this link now, such as one
   * member of a fan-out, where gathering would cost a scheduled flush per link. Optional:
   * `send` is used where a transport has no such path.
   */
  sendNow?(frame: Uint8Array): boolean;
  /** Closes the transport; `onClose` then reports `code` (default "normal"). */
  close(code?: CloseCode, message?: string): void;
}

/** A peer's client certificate, as read from the TLS connection once its handshake is done. */
export interface PeerCertificate {
  /** Whether it chains to the listener's `ca` and is valid now (`socket.authorized`). */
  authorized: boolean;
  /** Why not, when not authorized: OpenSSL's code, e.g. "DEPTH_ZERO_SELF_SIGNED_CERT". */
  authorizationError?: string;
  /** The subject's common name (CN), when it has one. */
  commonName?: string;
  /** The subject's organizational units (OU), in order; empty when it has none. */
  organizationalUnits: string[];
  /** SHA-256 fingerprint of the DER certificate, colon-separated upper-case hex. */
  fingerprint256: string;
  /** End of validity as the certificate says it, e.g. "Jun  1 12:00:00 2030 GMT". */
  validTo: string;
}

/** Options common to every transport. */
export interface TransportOptions {
  /**
   * Largest frame accepted, checked before allocation.
   * @default 1048576 (1 MiB)
   */
  maxFrameBytes?: number;
  /**
   * A lower limit for the first frame received (a server's HELLO). Stream transports check it
   * from the length prefix; the WebSocket transport from the first frame's header, and it
   * bounds what the reads before the first message is whole may cost (see FirstMessageGuard).
   */
  firstFrameMaxBytes?: number;
  /**
   * `send` returns false above this many buffered bytes.
   * @default 1048576 (1 MiB)
   */
  highWaterMarkBytes?: number;
  /**
   * Counts the frames and bytes of the transport (of every transport a listener accepts) into
   * `traffic.for(kind)`. Not counted when absent.
   */
  traffic?: TrafficStats | undefined;
}

/** TLS material for listeners: PEM strings or buffers. */
export interface TlsServerOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /**
   * CA certificates (PEM) that client certificates are verified against. When set, tls:// and
   * wss:// listeners ask every client for a certificate but accept the connection whether or
   * not it sends one, or one that fails verification: the transport's `peerCertificate` says
   * what came, and the server refuses at its handshake, where it can say why. When absent,
   * no certificate is asked for.
   */
  ca?: string | Buffer | Array<string | Buffer>;
}

/** TLS options for dialers. */
export interface TlsClientOptions {
  /** Extra trusted CA certificates (PEM), e.g. for a self-signed server. */
  ca?: string | Buffer;
  /** A client certificate (PEM) to present to a server that asks for one; needs `key`. */
  cert?: string | Buffer;
  /** The private key (PEM) of `cert`. */
  key?: string | Buffer;
  /** Skip certificate verification. For tests only. @default false */
  insecure?: boolean;
  /** Server name for SNI and verification; defaults to the URL's host. */
  servername?: string;
}

/** A listening endpoint, e.g. a TCP port. */
export interface Listener {
  /** "ws", "wss", "tcp", "tls" or "memory". */
  readonly kind: string;
  /** The URL an agent would dial to reach this listener (e.g. "tcp://127.0.0.1:33076"). */
  readonly url: string;
  /** The bound port (0 for memory). */
  readonly port: number;
  /** Stops accepting and closes the listening socket. Open transports are not touched. */
  close(): Promise<void>;
}

/** Called for every accepted connection. */
export type AcceptFn = (transport: Transport) => void;

/** Opens a transport to a URL. */
export type Dialer = (url: URL, options: DialOptions) => Promise<Transport>;

export interface DialOptions extends TransportOptions {
  tls?: TlsClientOptions;
  /** Aborts the dial. */
  signal?: AbortSignal;
  /**
   * Told when a dial of `http://` or `https://` falls back from WebSocket to long-polling, and
   * why (for the log).
   */
  onFallback?: (message: string) => void;
}
