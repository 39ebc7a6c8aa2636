import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { AdminHost, AdminIdentity, AdminRole } from "./admin-host.js";
import { type AdminRequest, fail, matchPath, quote, splitTarget, statusOf } from "./admin-http.js";
import { type AdminEndpoint, type AdminRoute, access, ROUTES } from "./admin-routes.js";
import { fromOwnLoopbackPage } from "./live/dashboard.js";

export { AGENT_STATES } from "./admin-api.js";
export type { AdminHost, AdminIdentity, AdminRole, Readiness } from "./admin-host.js";
export type { AdminAccess, AdminEndpoint } from "./admin-routes.js";

/** Every endpoint, for `/help`: path, methods, the role it needs, what it does. */
export const ADMIN_ENDPOINTS: readonly AdminEndpoint[] = ROUTES.map(({ path, methods, role, what }) => ({
  path,
  methods,
  role,
  what,
}));

/**
 * The admin HTTP API over an AdminHost: answers on the server's WebSocket ports (HTTP
 * requests that are not upgrades) and on `--admin host:port`. Every request is routed
 * (404, 405), then authenticated (401, 403) unless its endpoint is open to anyone, then its
 * query and body are read. Answers are JSON or plain text, never cached; errors are
 * `{ "error": "<snake_case>", "message": "…" }`.
 */
export function createAdminHandler(host: AdminHost): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // A client that goes away mid-answer must not take the process with it.
    res.on("error", () => {});
    req.on("error", () => {});
    serve(host, req, res).catch((err: unknown) => internalError(host, req, res, err));
  };
}

async function serve(host: AdminHost, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method ?? "GET";
  const { path, query } = splitTarget(req.url ?? "/");
  if (path === "/ui" || path.startsWith("/ui/")) {
    if (host.dashboard === undefined) fail(res, 404, "not_found", "this server has no dashboard");
    else host.dashboard.ui.serve(req, res, path, host.standalone);
    return;
  }
  const candidates: Array<{ route: AdminRoute; param: string }> = [];
  for (const route of ROUTES) {
    const m = matchPath(route.path, path);
    if (m === undefined) continue;
    if ("badEscape" in m) {
      fail(
        res,
        400,
        "invalid_argument",
        `the path segment ${quote(m.badEscape)} is not valid percent-encoding`,
      );
      return;
    }
    candidates.push({ route, param: m.param });
  }
  if (candidates.length === 0) {
    fail(
      res,
      404,
      "not_found",
      `no endpoint ${path.length > 200 ? `${path.slice(0, 199)}…` : path}; GET /help lists them`,
    );
    return;
  }
  const hit = candidates.find((c) => c.route.methods.includes(method));
  if (hit === undefined) {
    const allow = [...new Set(candidates.flatMap((c) => c.route.methods))].join(", ");
    fail(res, 405, "method_not_allowed", `${candidates[0]!.route.path} takes ${allow}`, { allow });
    return;
  }
  const { route, param } = hit;
  const what = `${method} ${route.path}`;
  const c: AdminRequest = { req, res, host, param, query, who: undefined };
  const need = access(route, host);
  if (need !== "none") {
    const who = await identify(c, need, what);
    if (who === undefined) return;
    c.who = who;
  }
  for (const key of new Set(query.keys())) {
    if (!(route.query ?? []).includes(key)) {
      const known = route.query ? `; it takes ${route.query.join(", ")}` : "; it takes none";
      fail(res, 400, "invalid_argument", `${what}: unknown query parameter ${quote(key)}${known}`);
      return;
    }
    if (query.getAll(key).length > 1) {
      fail(res, 400, "invalid_argument", `${what}: query parameter ${key} is given more than once`);
      return;
    }
  }
  await route.handle(c);
}

/** Authenticates the request and checks its role; answers 401/403 (logged) and returns undefined when refused. */
async function identify(c: AdminRequest, need: AdminRole, what: string): Promise<AdminIdentity | undefined> {
  const remote = c.req.socket.remoteAddress ?? "unknown";
  if (
    c.host.standalone &&
    (c.req.headers.origin !== undefined || c.req.headers["sec-fetch-site"] !== undefined) &&
    !fromOwnLoopbackPage(c.req)
  ) {
    // Without tokens, a web page could otherwise have a browser on this machine send requests
    // (only the server's own dashboard, reached by a loopback name, may).
    refuse(
      c,
      403,
      "permission_denied",
      "requests from web browsers are refused in standalone mode, but for the server's own dashboard reached at a loopback name (http://127.0.0.1:<port>/ui/)",
      remote,
      what,
    );
    return undefined;
  }
  let who: AdminIdentity;
  try {
    who = await c.host.authenticate(c.req);
  } catch (err) {
    const e = err instanceof MusterError ? err : undefined;
    if (e?.code === ErrorCode.UNAUTHENTICATED) {
      refuse(c, 401, "unauthenticated", withMetricsHint(e.rawMessage, what), remote, what, {
        "www-authenticate": 'Bearer realm="muster"',
      });
      return undefined;
    }
    if (e?.code === ErrorCode.PERMISSION_DENIED) {
      refuse(c, 403, "permission_denied", withMetricsHint(e.rawMessage, what), remote, what);
      return undefined;
    }
    throw err;
  }
  if (who.role !== "admin" && !(need === "operator" && who.role === "operator")) {
    refuse(
      c,
      403,
      "permission_denied",
      `${what} needs the ${need} role; ${who.subject} has the ${String(who.role)} role`,
      who.subject,
      what,
    );
    return undefined;
  }
  return who;
}

function withMetricsHint(message: string, what: string): string {
  return what.endsWith(" /metrics")
    ? `${message} (or start the server with --metrics-public to serve /metrics to anyone)`
    : message;
}

/** A 401 or 403, logged at warn with who (subject or remote address), what and why. */
function refuse(
  c: AdminRequest,
  status: number,
  error: string,
  message: string,
  who: string,
  what: string,
  extra: Record<string, string> = {},
): void {
  c.host.logger.warn(
    { who, remote: c.req.socket.remoteAddress, request: what, status, why: message },
    "admin API: request refused",
  );
  fail(c.res, status, error, message, extra);
}

function internalError(host: AdminHost, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const e = err instanceof MusterError ? err : undefined;
  const status = e === undefined ? undefined : statusOf(e);
  if (e !== undefined && status !== undefined && status < 500) {
    fail(res, status, e.code.toLowerCase(), e.rawMessage);
    return;
  }
  host.logger.error(
    {
      err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err),
      request: `${req.method} ${req.url}`,
    },
    "admin API: internal error",
  );
  if (res.headersSent) res.destroy();
  else if (e !== undefined && status !== undefined) fail(res, status, e.code.toLowerCase(), e.rawMessage);
  else fail(res, 500, "internal", "internal error; the server logged it");
}
