import type { IncomingMessage, ServerResponse } from "node:http";
import { isLoopbackAddress } from "../internal/host-port.js";
import { getBuildInfo } from "../internal/version.js";
import type { ServerMetrics } from "./metrics.js";

/** Where the server is in its life: `/readyz` answers 200 only when `ready`. */
export type Readiness = "starting" | "ready" | "draining";

export interface AdminOptions {
  metrics: ServerMetrics;
  readiness(): Readiness;
  /** Serve /metrics to any address, not only loopback ones. @default false */
  metricsPublic?: boolean;
}

interface Endpoint {
  path: string;
  auth: string;
  what: string;
}

/** Every endpoint, for `/help`. */
export const ADMIN_ENDPOINTS: readonly Endpoint[] = [
  { path: "/healthz", auth: "none", what: "liveness: 200 ok while the process serves" },
  { path: "/readyz", auth: "none", what: "readiness: 200 ready, 503 starting or draining" },
  { path: "/version", auth: "none", what: "version, git commit, build time, Node version (JSON)" },
  {
    path: "/metrics",
    auth: "loopback, or any address with --metrics-public",
    what: "Prometheus metrics (text exposition format)",
  },
  { path: "/help", auth: "none", what: "this list (JSON)" },
];

function send(res: ServerResponse, status: number, type: string, body: string, extra: object = {}): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store", ...extra });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown, extra: object = {}): void {
  send(res, status, "application/json", `${JSON.stringify(value)}\n`, extra);
}

/**
 * The admin HTTP API: answers on the server's WebSocket port (HTTP requests that are not
 * upgrades) and on `--admin host:port`. Every answer is JSON or plain text, never cached;
 * an unknown path is a 404 naming `/help`, a method other than GET or HEAD a 405.
 */
export function createAdminHandler(o: AdminOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://admin.invalid");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const endpoint = ADMIN_ENDPOINTS.find((e) => e.path === path);
    if (endpoint === undefined) {
      json(res, 404, { error: "not_found", message: `no endpoint ${path}; GET /help lists them` });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      json(res, 405, { error: "method_not_allowed", message: `${path} takes GET` }, { allow: "GET, HEAD" });
      return;
    }
    switch (path) {
      case "/healthz":
        send(res, 200, "text/plain; charset=utf-8", "ok\n");
        return;
      case "/readyz": {
        const state = o.readiness();
        send(res, state === "ready" ? 200 : 503, "text/plain; charset=utf-8", `${state}\n`);
        return;
      }
      case "/version":
        json(res, 200, getBuildInfo());
        return;
      case "/help":
        json(res, 200, { endpoints: ADMIN_ENDPOINTS });
        return;
      case "/metrics": {
        if (o.metricsPublic !== true && !isLoopbackAddress(req.socket.remoteAddress ?? "")) {
          json(res, 403, {
            error: "forbidden",
            message: "metrics are served to loopback addresses only; start the server with --metrics-public",
          });
          return;
        }
        o.metrics.scrape().then(
          ({ contentType, body }) => send(res, 200, contentType, body),
          (err: Error) => json(res, 500, { error: "internal", message: `metrics failed: ${err.message}` }),
        );
        return;
      }
    }
  };
}
