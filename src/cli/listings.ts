import type { AgentInfo } from "../presence/presence.js";
import type { RunStatus } from "../run/events.js";
import type { ServerInfo } from "../server/server-info.js";
import { textServiceName } from "../text/service.js";
import { ago } from "./format.js";
import type { Column } from "./output.js";

/*
 * The columns of `muster agents`, `muster servers` and `muster runs`: those marked `wide` show
 * with `-o wide` only, those marked `text` in the default table only.
 */

/** `role=web,zone=eu`, or `-` for none. */
export const labelsText = (labels: Record<string, string>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",") || "-";

/** An epoch time to the second, ISO 8601: `2026-11-21T17:40:02Z`. */
export const isoSeconds = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

/** `ws 127.0.0.1:51522`, or `-` for an agent held by another server. */
export const agentAddress = (a: AgentInfo): string =>
  a.transport === "" ? "-" : `${a.transport} ${a.address}`;

/** The columns of `muster agents`; a SERVER column when any agent is in a cluster. */
export function agentColumns(agents: readonly AgentInfo[], now = Date.now()): Column<AgentInfo>[] {
  const clustered = agents.some((a) => a.server !== undefined);
  return [
    { header: "NAME", cell: (a) => a.name },
    { header: "LABELS", cell: (a) => labelsText(a.labels) },
    { header: "STATE", cell: (a) => a.state },
    ...(clustered ? [{ header: "SERVER", cell: (a: AgentInfo) => a.server ?? "-" }] : []),
    { header: "ADDRESS", cell: agentAddress },
    { header: "VERSION", cell: (a) => a.version },
    { header: "CONNECTED SINCE", cell: (a) => isoSeconds(a.connectedSince) },
    { header: "LAST SEEN", cell: (a) => ago(a.lastSeen, now) },
    { header: "RTT", only: "wide", cell: (a) => (a.rttMs < 0 ? "-" : `${a.rttMs.toFixed(1)}ms`) },
    { header: "CALLS", only: "wide", cell: (a) => String(a.pendingCalls) },
    { header: "SESSION", only: "wide", cell: (a) => a.sessionId || "-" },
    { header: "REASON", only: "wide", cell: (a) => a.disconnectReason ?? "-" },
    // What text messages call it (web-1 is web_1 there): `web_1/ALIVE`.
    { header: "TEXT NAME", only: "wide", cell: (a) => textServiceName(a.name) },
  ];
}

/** The columns of `muster servers`. */
export const SERVER_COLUMNS: readonly Column<ServerInfo>[] = [
  { header: "NAME", cell: (s) => s.name },
  { header: "STATE", cell: (s) => s.state },
  { header: "AGENTS", cell: (s) => String(s.agents) },
  { header: "LAG", cell: (s) => `${s.lagMs} ms` },
  { header: "VERSION", cell: (s) => s.version },
  {
    header: "LAST HEARTBEAT",
    cell: (s) => (s.state === "self" ? "-" : `${(s.lastHeartbeatMs / 1000).toFixed(1)}s ago`),
  },
  { header: "URLS", cell: (s) => s.urls.join(" ") },
];

const runProgress = (r: RunStatus): string =>
  r.state === "running" || r.state === "stopping"
    ? `${Math.round(r.elapsedS)}s${r.runtimeS !== undefined ? `/${Math.round(r.runtimeS)}s` : ""}`
    : "-";

/** The columns of `muster runs`: the table cuts a run's error short, `-o wide` shows it whole. */
export const RUN_COLUMNS: readonly Column<RunStatus>[] = [
  { header: "ID", cell: (r) => r.id },
  { header: "STAGE", cell: (r) => `${r.stage + 1}/${r.stages.length} ${r.stages[r.stage] ?? ""}` },
  {
    header: "STATE",
    only: "text",
    cell: (r) => r.state + (r.error !== undefined ? `: ${r.error.slice(0, 60)}` : ""),
  },
  { header: "STATE", only: "wide", cell: (r) => r.state },
  { header: "INSTANCES", cell: (r) => (r.instances.length === 0 ? "-" : String(r.instances.length)) },
  { header: "PROGRESS", cell: runProgress },
  { header: "QPS", cell: (r) => (r.qps === undefined ? "-" : String(r.qps)) },
  { header: "ERRORS", cell: (r) => (r.errors === undefined ? "-" : String(r.errors)) },
  { header: "BY", cell: (r) => r.submittedBy },
  { header: "STARTED", only: "wide", cell: (r) => r.startedAt },
  { header: "ON", only: "wide", cell: (r) => r.instances.join(",") || "-" },
  { header: "ERROR", only: "wide", cell: (r) => r.error ?? "-" },
];
