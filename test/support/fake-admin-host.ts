// A fake AdminHost for tests of the admin HTTP layer (and of the CLI that talks to it): fixed
// tokens, a list of agents, two caches, and a real RuntimeFlags and ServerMetrics.
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Revocation } from "../../src/auth/revocations.js";
import { ErrorCode } from "../../src/errors/codes.js";
import { MusterError } from "../../src/errors/muster-error.js";
import { isLoopbackAddress } from "../../src/internal/host-port.js";
import type { AgentInfo } from "../../src/presence/presence.js";
import { createAdminHandler } from "../../src/server/admin.js";
import type { AdminHost, AdminIdentity, Readiness } from "../../src/server/admin-host.js";
import { durationFlag, enumFlag, RuntimeFlags } from "../../src/server/flags.js";
import { ServerMetrics } from "../../src/server/metrics.js";
import { captureLogger, type LogLine } from "./capture-logger.js";

/** Tokens the fake accepts, and who they are. */
export const TOKENS = {
  operator: "operator-token-0123456789",
  admin: "admin-token-0123456789",
  /** A valid token of a role that may not use the admin API. */
  agent: "agent-token-0123456789",
} as const;

export type { LogLine };

export interface FakeAdminHost extends AdminHost {
  logs: LogLine[];
  shutdowns: AdminIdentity[];
  cleared: Array<{ name: string | undefined; who: AdminIdentity }>;
  agentList: AgentInfo[];
  setReadiness(r: Readiness): void;
  /** Makes agents() throw, as a broken host would. */
  breakAgents: boolean;
  state: { logLevel: string; heartbeatMs: number };
  /** What revoke() was given. */
  revoked: Revocation[];
  close(): void;
}

/** An agent as the server would list it. */
export function fakeAgent(name: string, state: string, labels: Record<string, string> = {}): AgentInfo {
  const info = {
    name,
    labels,
    version: "0.1.0",
    state,
    address: "127.0.0.1:50000",
    transport: "tcp",
    sessionId: `s-${name}`,
    connectedSince: Date.UTC(2026, 0, 1),
    lastSeen: Date.UTC(2026, 0, 1),
    pendingCalls: 0,
    rttMs: 1,
  };
  return info as AgentInfo;
}

export function fakeAdminHost(
  o: { standalone?: boolean; metricsPublic?: boolean; agents?: AgentInfo[] } = {},
): FakeAdminHost {
  const logs: LogLine[] = [];
  const logger = captureLogger(logs);
  let readiness: Readiness = "ready";
  const state = { logLevel: "info", heartbeatMs: 5000 };
  const flags = new RuntimeFlags(logger)
    .define({
      name: "log-level",
      description: "least severe log level written",
      parse: enumFlag("log-level", ["trace", "debug", "info", "warn", "error"] as const),
      get: () => state.logLevel,
      apply: (v) => {
        state.logLevel = v;
      },
      source: "option",
    })
    .define({
      name: "heartbeat-interval",
      description: "PING interval on idle links",
      unit: "ms",
      parse: durationFlag("heartbeat-interval", 100, 300_000),
      get: () => state.heartbeatMs,
      apply: (v) => {
        state.heartbeatMs = v;
      },
      source: "default",
    });
  const caches = new Map([
    ["offline-agents", 3],
    ["verified-tokens", 7],
  ]);
  const host: FakeAdminHost = {
    logs,
    serverName: "fake",
    shutdowns: [],
    cleared: [],
    agentList: o.agents ?? [],
    servers: () => [
      {
        name: "fake",
        urls: ["ws://127.0.0.1:1"],
        state: "self",
        agents: 0,
        lagMs: 0,
        version: "0",
        lastHeartbeatMs: 0,
      },
    ],
    breakAgents: false,
    state,
    logger,
    metrics: new ServerMetrics({
      admission: { open: 0, refused: { max_connections: 0, max_connections_per_ip: 0, handshake_rate: 0 } },
      agents: () => host.agentList,
      replay: () => ({ frames: 0, bytes: 0 }),
      onEvent: () => () => {},
    }),
    standalone: o.standalone === true,
    metricsPublic: o.metricsPublic === true,
    flags,
    readiness: () => readiness,
    setReadiness(r) {
      readiness = r;
    },
    async authenticate(req: IncomingMessage): Promise<AdminIdentity> {
      if (host.standalone) {
        if (isLoopbackAddress(req.socket.remoteAddress ?? ""))
          return { subject: "standalone", role: "admin" };
        throw new MusterError(ErrorCode.PERMISSION_DENIED, "a standalone server answers loopback only");
      }
      const header = req.headers.authorization;
      if (header === undefined)
        throw new MusterError(ErrorCode.UNAUTHENTICATED, "no token: send Authorization: Bearer <token>");
      const token = /^Bearer (.+)$/.exec(header)?.[1];
      if (token === TOKENS.operator) return { subject: "olga", role: "operator" };
      if (token === TOKENS.admin) return { subject: "ada", role: "admin" };
      if (token === TOKENS.agent)
        throw new MusterError(ErrorCode.PERMISSION_DENIED, "an agent token cannot use the admin API");
      throw new MusterError(ErrorCode.UNAUTHENTICATED, "the token is not valid");
    },
    agents() {
      if (host.breakAgents) throw new Error("presence is broken at /secret/path");
      return host.agentList;
    },
    agentDetails(name) {
      const a = host.agentList.find((x) => x.name === name);
      return a === undefined ? undefined : { ...a, session: { state: "connected" } };
    },
    caches: () => [...caches].map(([name, entries]) => ({ name, entries, description: `the ${name} cache` })),
    clearCache(name, who) {
      if (name !== undefined && !caches.has(name))
        throw new MusterError(
          ErrorCode.NOT_FOUND,
          `no cache named ${name}; caches: ${[...caches.keys()].join(", ")}`,
        );
      host.cleared.push({ name, who });
      const out = [];
      for (const [n, entries] of caches)
        if (name === undefined || n === name) {
          out.push({ name: n, cleared: entries });
          caches.set(n, 0);
        }
      return out;
    },
    enrolments: () => [],
    async decideEnrolment(_action, name) {
      throw new MusterError(ErrorCode.NOT_FOUND, `no enrolment request from ${name} is waiting`);
    },
    revocations: () => host.revoked,
    async revoke(id, reason, who) {
      const fresh = !host.revoked.some((r) => r.id === id);
      if (fresh)
        host.revoked.push({
          id,
          at: "2026-01-01T00:00:00.000Z",
          by: who.subject,
          source: "memory",
          ...(reason ? { reason } : {}),
        });
      return { id, fresh, reach: "server" };
    },
    revoked: [],
    shutdown(who) {
      host.shutdowns.push(who);
      readiness = "draining";
      return { drainTimeoutMs: 30_000 };
    },
    close() {
      host.metrics.close();
    },
  };
  return host;
}

/** Serves createAdminHandler(host) on a free loopback port. */
export async function serveAdmin(host: AdminHost): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(createAdminHandler(host));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
