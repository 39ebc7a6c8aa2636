import type { IncomingMessage } from "node:http";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { HttpConnectionGate, HttpLimits, HttpRefusal } from "../transport/http-server.js";
import { httpTimeouts } from "../transport/http-server.js";
import type { Admission } from "./admission.js";

/**
 * The server's guard of its HTTP side (the ws/wss listeners and `admin.listen`): bounded
 * timeouts, every HTTP connection counted by admission, and WebSocket upgrades from web
 * pages refused unless their origin is allowed.
 */

/**
 * Checks and normalises `allowedOrigins`: each an `http(s)://host[:port]` origin, nothing
 * more (no path, query or user). A standalone server (no authentication) takes none: an
 * allowed page would get admin rights without a token.
 */
export function resolveAllowedOrigins(list: readonly string[] | undefined, standalone: boolean): Set<string> {
  const out = new Set<string>();
  if (list === undefined) return out;
  if (standalone && list.length > 0) {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      "standalone has no authentication: allowedOrigins would let web pages act as admin; use a server with auth",
    );
  }
  for (const text of list) {
    const origin = parseOrigin(text);
    if (origin === undefined) {
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `allowed origin ${JSON.stringify(text)} is not an origin: give scheme://host[:port], e.g. https://dash.example.com`,
      );
    }
    out.add(origin);
  }
  return out;
}

/** The serialised origin of `text` when it is one (http or https, no path), else undefined. */
function parseOrigin(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") return undefined;
  if (url.pathname !== "/") return undefined;
  return url.origin;
}

/** A header's single value (a repeated header is refused as if foreign). */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

/** At most this many characters of a header are quoted back. */
const QUOTE_MAX = 100;

/**
 * The check of every WebSocket upgrade: a request from a web browser (it carries `Origin`, or
 * `Sec-Fetch-Site`) is refused with 403 unless its origin is one of `allowed`. Other clients
 * (agents, the CLI) send neither header.
 */
export function upgradeOriginCheck(
  allowed: ReadonlySet<string>,
  standalone: boolean,
  logger: Logger,
): (req: IncomingMessage) => HttpRefusal | undefined {
  return (req) => {
    const origin = header(req, "origin");
    if (origin === undefined && header(req, "sec-fetch-site") === undefined) return undefined;
    if (origin !== undefined && !standalone && allowed.has(parseOrigin(origin) ?? "")) return undefined;
    const shown = origin === undefined ? "without an Origin" : JSON.stringify(origin.slice(0, QUOTE_MAX));
    const message = standalone
      ? `WebSocket connections from web pages are refused in standalone mode (origin ${shown})`
      : `WebSocket connections from web pages are refused: origin ${shown} is not allowed (muster server --allow-origin)`;
    logger.warn(
      { remote: req.socket.remoteAddress, origin: origin?.slice(0, QUOTE_MAX) },
      "WebSocket upgrade refused: browser origin",
    );
    return { status: 403, error: "permission_denied", message };
  };
}

/**
 * The HTTP limits of the server's listeners: its timeouts, and admission of every connection
 * (counted against `maxConnections` and `maxConnectionsPerIp`, not the handshake rate).
 */
export function httpLimits(
  options: { httpHeadersTimeoutMs?: number | undefined; httpRequestTimeoutMs?: number | undefined },
  admission: Admission,
  now: () => number,
  logger: Logger,
): Required<HttpLimits> {
  const t = httpTimeouts({
    headersTimeoutMs: options.httpHeadersTimeoutMs,
    requestTimeoutMs: options.httpRequestTimeoutMs,
  });
  const connections: HttpConnectionGate = {
    open(address) {
      const verdict = admission.admit(address, now(), { rate: false });
      if (verdict.ok) return verdict.key;
      logger.warn({ remote: address, reason: verdict.reason }, "HTTP connection refused");
      return { status: 503, error: "busy", message: verdict.message, retryAfterMs: verdict.retryAfterMs };
    },
    close(key) {
      admission.release(key);
    },
  };
  return { headersTimeoutMs: t.headersTimeoutMs, requestTimeoutMs: t.requestTimeoutMs, connections };
}
