import {
  createServer as createPlainServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { optionLimit } from "../internal/limits.js";
import { tlsServerOptions } from "./tcp.js";
import type { TlsServerOptions } from "./types.js";

/** An HTTP answer that refuses a connection or an upgrade, sent before anything else. */
export interface HttpRefusal {
  status: 403 | 503;
  /** snake_case, as the admin API's errors: `permission_denied`, `busy`. */
  error: string;
  /** For people; sent in the JSON body. */
  message: string;
  /** Sent as `Retry-After` (rounded up to seconds). */
  retryAfterMs?: number;
}

/**
 * Admission of an HTTP listener's connections, asked before anything is read from them. A
 * connection counts from its TCP accept until it closes or becomes a WebSocket (which the
 * transport's `accept` counts from then on).
 */
export interface HttpConnectionGate {
  /** A new connection from `address` (an IP): its key, to give back to `close`, or a refusal. */
  open(address: string): string | HttpRefusal;
  /** The connection of `key` has closed, or has been upgraded. */
  close(key: string): void;
}

/** Limits of an HTTP listener (the WebSocket listeners' and the admin API's). */
export interface HttpLimits {
  /**
   * The request's headers must have arrived within this time, or the connection is answered
   * 408 and closed; on HTTPS the TLS handshake gets as long again.
   * @default DEFAULTS.httpHeadersTimeoutMs (5 s)
   */
  headersTimeoutMs?: number;
  /** The whole request (headers and body) must have arrived within this time. @default DEFAULTS.httpRequestTimeoutMs (30 s) */
  requestTimeoutMs?: number;
  /** Admission of every connection; without it, every connection is taken. */
  connections?: HttpConnectionGate;
}

/** An HTTP(S) server with bounded timeouts and its connections counted. */
export interface HttpListener {
  readonly server: HttpServer | HttpsServer;
  /**
   * The connection of `socket` becomes a WebSocket: it stops counting here (the transport's
   * `accept` counts it from now on).
   */
  upgraded(socket: Duplex): void;
}

/** Resolves the timeouts of `limits` (INVALID_ARGUMENT for values that would disable them). */
export function httpTimeouts(limits: HttpLimits): { headersTimeoutMs: number; requestTimeoutMs: number } {
  const headersTimeoutMs = optionLimit(
    limits.headersTimeoutMs,
    DEFAULTS.httpHeadersTimeoutMs,
    "httpHeadersTimeoutMs",
    1,
  );
  const requestTimeoutMs = optionLimit(
    limits.requestTimeoutMs,
    DEFAULTS.httpRequestTimeoutMs,
    "httpRequestTimeoutMs",
    1,
  );
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `httpHeadersTimeoutMs (${headersTimeoutMs}) must not be above httpRequestTimeoutMs (${requestTimeoutMs})`,
    );
  }
  return { headersTimeoutMs, requestTimeoutMs };
}

/** Node checks its HTTP timeouts on a timer (30 s by default): often enough for ours to hold. */
function checkingIntervalMs(headersTimeoutMs: number): number {
  return Math.max(50, Math.min(1000, Math.floor(headersTimeoutMs / 4)));
}

/** The connection's identity, the same on a TLS socket and the TCP socket under it. */
function connectionId(
  s: Duplex & { remoteAddress?: string; remotePort?: number; localPort?: number },
): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localPort}`;
}

/**
 * Creates an HTTP server (HTTPS with `tls`) whose connections must send their headers within
 * `headersTimeoutMs` and their whole request within `requestTimeoutMs` (checked every second
 * or faster, not every 30 s), and, with `connections`, are admitted before anything is read.
 */
export function createHttpListener(
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  tls: TlsServerOptions | undefined,
  limits: HttpLimits,
): HttpListener {
  const { headersTimeoutMs, requestTimeoutMs } = httpTimeouts(limits);
  const common = {
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    connectionsCheckingInterval: checkingIntervalMs(headersTimeoutMs),
  };
  const server: HttpServer | HttpsServer = tls
    ? createHttpsServer(
        { ...tlsServerOptions(tls), ...common, handshakeTimeout: headersTimeoutMs },
        onRequest,
      )
    : createPlainServer(common, onRequest);
  const gate = limits.connections;
  if (gate === undefined) return { server, upgraded: () => {} };
  /** Connections counted now, by id: each one's key and its close listener. */
  const held = new Map<string, { key: string; socket: Duplex; onClose: () => void }>();
  server.on("connection", (socket: Duplex & { remoteAddress?: string }) => {
    const verdict = gate.open(socket.remoteAddress ?? "unknown");
    if (typeof verdict !== "string") {
      // Over TLS nothing can be said before the handshake: the connection is just closed.
      if (tls) socket.destroy();
      else refuseHttp(socket, verdict);
      return;
    }
    const id = connectionId(socket);
    const onClose = (): void => {
      if (held.delete(id)) gate.close(verdict);
    };
    held.set(id, { key: verdict, socket, onClose });
    socket.once("close", onClose);
  });
  return {
    server,
    upgraded(socket) {
      const id = connectionId(socket);
      const h = held.get(id);
      if (h === undefined) return;
      held.delete(id);
      h.socket.off("close", h.onClose);
      gate.close(h.key);
    },
  };
}

const REASONS: Record<HttpRefusal["status"], string> = { 403: "Forbidden", 503: "Service Unavailable" };

/** Answers a raw connection with `refusal` (a JSON body) and closes it once that is written. */
export function refuseHttp(socket: Duplex, refusal: HttpRefusal): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${JSON.stringify({ error: refusal.error, message: refusal.message })}\n`;
  const retry =
    refusal.retryAfterMs !== undefined
      ? `Retry-After: ${Math.max(1, Math.ceil(refusal.retryAfterMs / 1000))}\r\n`
      : "";
  socket.on("error", () => {});
  socket.end(
    `HTTP/1.1 ${refusal.status} ${REASONS[refusal.status]}\r\n` +
      "Content-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\n" +
      `${retry}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // Whatever the peer still sends is not read; once the answer is out (or after a grace, for
  // a peer that does not read it) the socket goes.
  socket.once("finish", () => socket.destroy());
  setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref();
}

/** How long a refused connection may take to read its answer. */
const REFUSAL_GRACE_MS = 2000;
