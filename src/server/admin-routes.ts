import { getBuildInfo } from "../internal/version.js";
import { clearCaches, listAgents, setFlags } from "./admin-api.js";
import {
  CPU_PROFILE_DEFAULT_SECONDS,
  CPU_PROFILE_MAX_SECONDS,
  sendCpuProfile,
  sendHeapSnapshot,
} from "./admin-debug.js";
import { decideEnrolment, listEnrolments } from "./admin-enrolment.js";
import type { AdminHost, AdminRole } from "./admin-host.js";
import { type AdminRequest, fail, intParam, json, send } from "./admin-http.js";
import { listRevocations, revoke } from "./admin-revocations.js";
import { postCall } from "./live/calls-http.js";
import type { Dashboard } from "./live/dashboard.js";
import { LIVE_PAGES } from "./live/live-streams.js";

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

/** An endpoint and what answers it. */
export interface AdminRoute extends AdminEndpoint {
  /** Query parameters accepted; any other is a 400. */
  query?: readonly string[];
  handle(c: AdminRequest): void | Promise<void>;
}

const READ = ["GET", "HEAD"] as const;
const TEXT = "text/plain; charset=utf-8";
const STANDALONE_WARNING = "WARNING: standalone mode: no authentication, loopback only";

/** Every endpoint, in the order `/help` lists them. */
export const ROUTES: readonly AdminRoute[] = [
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
    what: "readiness: 200 ready (or degraded: in a cluster whose NATS is unreachable), 503 starting or draining (and a warning line in standalone mode)",
    handle: (c) => {
      const state = c.host.readiness();
      const warning = c.host.standalone ? `${STANDALONE_WARNING}\n` : "";
      send(c.res, state === "ready" || state === "degraded" ? 200 : 503, TEXT, `${state}\n${warning}`);
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
    path: "/ui/",
    methods: READ,
    role: "none",
    what: "the web dashboard: sign in with an operator or admin token (kept in the tab, sent as a Bearer header); a standalone server serves it to loopback only",
    handle: (c) => dashboardOf(c)?.ui.serve(c.req, c.res, "/ui", c.host.standalone),
  },
  {
    path: "/api/whoami",
    methods: ["GET"],
    role: "operator",
    what: "who the request's token is: subject, role, grants; and this server's name (the dashboard signs in with it)",
    handle: (c) =>
      json(c.res, 200, {
        subject: c.who!.subject,
        role: c.who!.role,
        ...(c.who!.methods !== undefined ? { methods: c.who!.methods } : {}),
        standalone: c.host.standalone,
        server: c.host.serverName,
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
    path: "/api/servers",
    methods: ["GET"],
    role: "operator",
    what: "the cluster's servers (or this one alone): name, URLs, agents, lag, version, state, last heartbeat",
    handle: (c) => json(c.res, 200, { servers: c.host.servers() }),
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
    path: "/api/live/:page",
    methods: ["GET"],
    role: "operator",
    what: `a dashboard page's live stream (server-sent events): a snapshot, then deltas, each with an id; a reconnect sending Last-Event-ID gets what it missed (or a new snapshot). Pages: ${LIVE_PAGES.join(", ")}; ?target= (as muster call takes it) filters the fleet`,
    query: ["target"],
    handle: (c) => dashboardOf(c)?.streams.handle(c),
  },
  {
    path: "/api/calls",
    methods: ["POST"],
    role: "operator",
    what: 'a fan-out: {"target":"…","method":"…","args":…,"timeoutMs":…}; answered in newline-delimited JSON as it goes: the expected agents, one outcome per agent, then done with the counts; closing the request cancels it',
    handle: async (c) => {
      const d = dashboardOf(c);
      if (d !== undefined) await postCall(d.calls, c);
    },
  },
  {
    path: "/api/enrolments",
    methods: ["GET"],
    role: "operator",
    what: "enrolment requests waiting (servers with --approve; in a cluster, every server's): name, fingerprint, address, conflict, server",
    handle: listEnrolments,
  },
  {
    path: "/api/enrolments/:name",
    methods: ["POST"],
    role: "admin",
    what: 'accepts or rejects a waiting enrolment request, on whichever server of the cluster holds it: {"action":"accept"|"reject","fingerprint":"…"} (the fingerprint is required when several agents ask for the name)',
    handle: decideEnrolment,
  },
  {
    path: "/api/revocations",
    methods: ["GET"],
    role: "operator",
    what: "the revoked token ids: id, when, reason, who, source (file, memory, cluster)",
    handle: listRevocations,
  },
  {
    path: "/api/revocations",
    methods: ["POST"],
    role: "admin",
    what: 'revokes a token here and, in a cluster, on every server: {"token":"…"} or {"id":"…"}, with an optional "reason"',
    handle: revoke,
  },
  {
    path: "/api/flags",
    methods: ["GET"],
    role: "operator",
    what: "the runtime flags: value, unit, source (default, option, api, cluster), scope (cluster, server), who set it, description",
    handle: (c) => json(c.res, 200, { flags: c.host.flags.list() }),
  },
  {
    path: "/api/flags",
    methods: ["PUT", "PATCH"],
    role: "admin",
    what: 'changes runtime flags, all or none: a JSON object such as {"log-level":"debug"}; in a cluster, flags of scope cluster change on every server',
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

/** The host's dashboard, or undefined once a 404 is answered (a server built without one). */
function dashboardOf(c: AdminRequest): Dashboard | undefined {
  if (c.host.dashboard === undefined) fail(c.res, 404, "not_found", "this server has no dashboard");
  return c.host.dashboard;
}

/** An endpoint as this host serves it: `/metrics` is open to anyone with metricsPublic. */
function endpoint(r: AdminRoute, host: AdminHost): AdminEndpoint {
  return { path: r.path, methods: r.methods, role: access(r, host), what: r.what };
}

export function access(r: AdminRoute, host: AdminHost): AdminAccess {
  return r.path === "/metrics" && host.metricsPublic ? "none" : r.role;
}
