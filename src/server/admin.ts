import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { getBuildInfo } from "../internal/version.js";
import {
  CPU_PROFILE_DEFAULT_SECONDS,
  CPU_PROFILE_MAX_SECONDS,
  sendCpuProfile,
  sendHeapSnapshot,
} from "./admin-debug.js";
import type { AdminHost, AdminIdentity, AdminRole } from "./admin-host.js";
import {
  fail,
  isJsonType,
  json,
  MAX_ADMIN_BODY_BYTES,
  matchPath,
  parseJsonBody,
  readBody,
  send,
  splitTarget,
  statusOf,
} from "./admin-http.js";

export type { AdminHost, AdminIdentity, AdminRole, Readiness } from "./admin-host.js";

/** Who may use an endpoint: anyone, an operator (or admin), or an admin only. */
export type AdminAccess = "none" | AdminRole;

/** One endpoint of the admin API, as `/help` lists it. */
export interface AdminEndpoint {
  /** With `:name` for a path segment, e.g. `/api/agents/:name`. */
  path: string;
  methods: readonly string[];
  role: AdminAccess;
  what: string;
}

/** What one request is, once routed and authenticated. */
interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  host: AdminHost;
  /** The decoded `:name` of the path, or "". */
  param: string;
  query: URLSearchParams;
  /** Undefined on endpoints open to anyone. */
  who: AdminIdentity | undefined;
}

interface Route extends AdminEndpoint {
  /** Query parameters accepted; any other is a 400. */
  query?: readonly string[];
  handle(c: Ctx): void | Promise<void>;
}

const READ = ["GET", "HEAD"] as const;
const TEXT = "text/plain; charset=utf-8";
const STANDALONE_WARNING = "WARNING: standalone mode: no authentication, loopback only";

/** Agent states `?state=` accepts (besides any state an agent is in now). */
export const AGENT_STATES = ["connected", "suspect", "resuming", "pending", "offline"] as const;

const ROUTES: readonly Route[] = [
  {
    path: "/healthz",
    methods: READ,
    role: "none",
    what: "liveness: 200 ok while the process serves",
    handle: (c) => send(c.res, 200, TEXT, "ok\n"),
  },
  {
    path: "/readyz",
    methods: READ,
    role: "none",
    what: "readiness: 200 ready, 503 starting or draining (and a warning line in standalone mode)",
    handle: (c) => {
      const state = c.host.readiness();
      const warning = c.host.standalone ? `${STANDALONE_WARNING}\n` : "";
      send(c.res, state === "ready" ? 200 : 503, TEXT, `${state}\n${warning}`);
    },
  },
  {
    path: "/help",
    methods: READ,
    role: "none",
    what: "this list (JSON)",
    handle: (c) =>
      json(c.res, 200, {
        standalone: c.host.standalone,
        endpoints: ROUTES.map((r) => endpoint(r, c.host)),
      }),
  },
  {
    path: "/version",
    methods: READ,
    role: "operator",
    what: "version, git commit, build time, Node version (JSON)",
    handle: (c) => json(c.res, 200, getBuildInfo()),
  },
  {
    path: "/metrics",
    methods: READ,
    role: "operator",
    what: "Prometheus metrics (text exposition format); open to anyone with --metrics-public",
    handle: async (c) => {
      const { contentType, body } = await c.host.metrics.scrape();
      send(c.res, 200, contentType, body);
    },
  },
  {
    path: "/api/agents",
    methods: ["GET"],
    role: "operator",
    what: "agents by name: ?limit= (1-1000, default 100), ?after=<name> (the previous page's next), ?state=a,b",
    query: ["limit", "after", "state"],
    handle: listAgents,
  },
  {
    path: "/api/agents/:name",
    methods: ["GET"],
    role: "operator",
    what: "one agent's details: session, pending calls, …",
    handle: (c) => {
      const details = c.host.agentDetails(c.param);
      if (details === undefined)
        fail(c.res, 404, "not_found", `no agent named ${JSON.stringify(c.param)} is known`);
      else json(c.res, 200, details);
    },
  },
  {
    path: "/api/flags",
    methods: ["GET"],
    role: "operator",
    what: "the runtime flags: value, unit, source (default, option, api), description",
    handle: (c) => json(c.res, 200, { flags: c.host.flags.list() }),
  },
  {
    path: "/api/flags",
    methods: ["PUT", "PATCH"],
    role: "admin",
    what: 'changes runtime flags, all or none: a JSON object such as {"log-level":"debug"}',
    handle: setFlags,
  },
  {
    path: "/api/caches",
    methods: ["GET"],
    role: "operator",
    what: "the server's caches and their sizes",
    handle: (c) => json(c.res, 200, { caches: c.host.caches() }),
  },
  {
    path: "/api/caches",
    methods: ["DELETE", "POST"],
    role: "admin",
    what: "clears every cache",
    handle: clearCaches,
  },
  {
    path: "/api/caches/:name",
    methods: ["DELETE", "POST"],
    role: "admin",
    what: "clears one cache",
    handle: clearCaches,
  },
  {
    path: "/api/shutdown",
    methods: ["POST"],
    role: "admin",
    what: "starts a graceful drain: 202, then the server stops",
    handle: (c) => {
      // The host logs the request with who made it, as it does for caches cleared.
      const { drainTimeoutMs } = c.host.shutdown(c.who!);
      json(c.res, 202, { status: "draining", drainTimeoutMs });
    },
  },
  {
    path: "/api/debug/heap",
    methods: ["GET"],
    role: "admin",
    what: "a V8 heap snapshot (.heapsnapshot, for Chrome DevTools)",
    handle: (c) => sendHeapSnapshot(c.res, c.host.logger, c.who!.subject),
  },
  {
    path: "/api/debug/cpu",
    methods: ["GET"],
    role: "admin",
    what: `a CPU profile (.cpuprofile) of ?seconds= (1-${CPU_PROFILE_MAX_SECONDS}, default ${CPU_PROFILE_DEFAULT_SECONDS}); one at a time`,
    query: ["seconds"],
    handle: async (c) => {
      const seconds = intParam(c, "seconds", 1, CPU_PROFILE_MAX_SECONDS, CPU_PROFILE_DEFAULT_SECONDS);
      if (seconds !== undefined) await sendCpuProfile(c.res, seconds, c.host.logger, c.who!.subject);
    },
  },
];

/** Every endpoint, for `/help`. */
export const ADMIN_ENDPOINTS: readonly AdminEndpoint[] = ROUTES.map(({ path, methods, role, what }) => ({
  path,
  methods,
  role,
  what,
}));

/** An endpoint as this host serves it: `/metrics` is open to anyone with metricsPublic. */
function endpoint(r: Route, host: AdminHost): AdminEndpoint {
  return { path: r.path, methods: r.methods, role: access(r, host), what: r.what };
}

function access(r: Route, host: AdminHost): AdminAccess {
  return r.path === "/metrics" && host.metricsPublic ? "none" : r.role;
}

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
  const candidates: Array<{ route: Route; param: string }> = [];
  for (const route of ROUTES) {
    const m = matchPath(route.path, path);
    if (m === undefined) continue;
    if ("badEscape" in m) {
      fail(
        res,
        400,
        "invalid_argument",
        `the path segment ${clip(m.badEscape)} is not valid percent-encoding`,
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
  const c: Ctx = { req, res, host, param, query, who: undefined };
  const need = access(route, host);
  if (need !== "none") {
    const who = await identify(c, need, what);
    if (who === undefined) return;
    c.who = who;
  }
  for (const key of new Set(query.keys())) {
    if (!(route.query ?? []).includes(key)) {
      const known = route.query ? `; it takes ${route.query.join(", ")}` : "; it takes none";
      fail(res, 400, "invalid_argument", `${what}: unknown query parameter ${clip(key)}${known}`);
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
async function identify(c: Ctx, need: AdminRole, what: string): Promise<AdminIdentity | undefined> {
  const remote = c.req.socket.remoteAddress ?? "unknown";
  if (
    c.host.standalone &&
    (c.req.headers.origin !== undefined || c.req.headers["sec-fetch-site"] !== undefined)
  ) {
    // Without tokens, a web page could otherwise have a browser on this machine send requests.
    refuse(
      c,
      403,
      "permission_denied",
      "requests from web browsers are refused in standalone mode",
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
  c: Ctx,
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

/** An integer query parameter from `min` to `max`; answers 400 and returns undefined when malformed. */
function intParam(c: Ctx, name: string, min: number, max: number, fallback: number): number | undefined {
  const text = c.query.get(name);
  if (text === null) return fallback;
  if (!/^\d{1,9}$/.test(text) || Number(text) < min || Number(text) > max) {
    fail(
      c.res,
      400,
      "invalid_argument",
      `${name} must be a whole number from ${min} to ${max}; got ${clip(text)}`,
    );
    return undefined;
  }
  return Number(text);
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** `GET /api/agents`: a page of agents sorted by name, with counts by state over all of them. */
function listAgents(c: Ctx): void {
  const limit = intParam(c, "limit", 1, 1000, 100);
  if (limit === undefined) return;
  const after = c.query.get("after");
  if (after === "") {
    fail(c.res, 400, "invalid_argument", "after must be an agent name (the next of the previous page)");
    return;
  }
  const all = c.host.agents();
  const counts: Record<string, number> = Object.fromEntries(AGENT_STATES.map((s) => [s, 0]));
  for (const a of all) counts[a.state] = (counts[a.state] ?? 0) + 1;
  let matching = all;
  const stateText = c.query.get("state");
  if (stateText !== null) {
    const wanted = new Set(stateText.split(",").map((s) => s.trim()));
    const unknown = [...wanted].filter((s) => !(s in counts));
    if (unknown.length > 0 || wanted.size === 0) {
      fail(
        c.res,
        400,
        "invalid_argument",
        `state ${clip(unknown[0] ?? stateText)} is not one of ${Object.keys(counts).join(", ")}`,
      );
      return;
    }
    matching = all.filter((a) => wanted.has(a.state));
  }
  const sorted = [...matching].sort(byName);
  const start = after === null ? 0 : firstAfter(sorted, after);
  const page = sorted.slice(start, start + limit);
  const body: Record<string, unknown> = { agents: page, total: matching.length, counts };
  if (start + limit < sorted.length) body.next = page[page.length - 1]!.name;
  json(c.res, 200, body);
}

/** The index of the first agent whose name sorts after `name` (binary search). */
function firstAfter(sorted: readonly { name: string }[], name: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]!.name <= name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** `PUT /api/flags`: the body is read only now, after authentication. */
async function setFlags(c: Ctx): Promise<void> {
  const type = c.req.headers["content-type"];
  if (type !== undefined && !isJsonType(type)) {
    fail(
      c.res,
      415,
      "unsupported_media_type",
      `the body must be JSON (content-type: application/json), not ${clip(type)}`,
    );
    return;
  }
  const body = await readBody(c.req);
  if (body.kind === "gone") return;
  if (body.kind === "too-large") {
    fail(c.res, 413, "payload_too_large", `the body is larger than ${MAX_ADMIN_BODY_BYTES} bytes`, {
      connection: "close",
    });
    return;
  }
  const parsed = parseJsonBody(body.bytes);
  if (!parsed.ok) {
    fail(c.res, 400, "invalid_argument", parsed.message);
    return;
  }
  const patch = parsed.value;
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
    fail(
      c.res,
      400,
      "invalid_argument",
      'the body must be a JSON object of flags, e.g. {"log-level":"debug"}',
    );
    return;
  }
  // RuntimeFlags logs each change with who made it.
  json(c.res, 200, { flags: c.host.flags.set(patch as Record<string, unknown>, c.who!.subject) });
}

/** `DELETE /api/caches[/:name]`; an unknown name is the host's NOT_FOUND, a 404. */
function clearCaches(c: Ctx): void {
  json(c.res, 200, { cleared: c.host.clearCache(c.param === "" ? undefined : c.param, c.who!) });
}

function clip(s: string, max = 120): string {
  const t = JSON.stringify(s);
  return t.length > max ? `${t.slice(0, max - 1)}…"` : t;
}
