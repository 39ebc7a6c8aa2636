// A muster cluster as a user runs it, for end-to-end tests: `muster server --cluster …`
// processes of the built CLI on free loopback ports, fleets of agents from agent-swarm.js, and
// the operator commands run to completion with their JSON parsed.
import assert from "node:assert/strict";
import type { AgentInfo } from "../../src/presence/presence.js";
import type { CallOutcome, OutcomeSummary } from "../../src/rpc/types.js";
import type { ServerInfo } from "../../src/server/server-info.js";
import { freePort, type Proc, runCli, startCli, startScript } from "./cli.js";

/** The agent-swarm script, built next to this file. */
export const SWARM = new URL("./agent-swarm.js", import.meta.url).pathname;

export interface ClusterServer {
  name: string;
  /** ws://127.0.0.1:port */
  ws: string;
  /** tcp://127.0.0.1:port */
  tcp: string;
  /** http://127.0.0.1:port of `--admin`. */
  admin: string;
  /** 127.0.0.1:port of `--text tcp://…`, when asked for. */
  text?: string;
  proc: Proc;
}

export interface ClusterServerOptions {
  name: string;
  /** The NATS URL given to `--cluster`. */
  nats: string;
  /** A text endpoint (`--text tcp://127.0.0.1:port`). */
  text?: boolean;
  /** More flags; `--standalone` unless `auth` is true. */
  args?: string[];
  /** Authentication on (give `--auth-key` in `args`). @default false: `--standalone` */
  auth?: boolean;
}

/** Starts `muster server --cluster` and waits until it has joined the cluster. */
export async function startClusterServer(o: ClusterServerOptions): Promise<ClusterServer> {
  const [wsPort, tcpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const ws = `ws://127.0.0.1:${wsPort}`;
  const tcp = `tcp://127.0.0.1:${tcpPort}`;
  const text = o.text ? `127.0.0.1:${await freePort()}` : undefined;
  const proc = startCli([
    "server",
    ...(o.auth ? [] : ["--standalone"]),
    "--name",
    o.name,
    "--cluster",
    o.nats,
    "--listen",
    ws,
    "--listen",
    tcp,
    "--admin",
    `127.0.0.1:${adminPort}`,
    ...(text ? ["--text", `tcp://${text}`] : []),
    "--log-json",
    ...(o.args ?? []),
  ]);
  await proc.waitFor(`admin on http://127.0.0.1:${adminPort}`, 20_000);
  await waitForStderr(proc, "joined the cluster", 20_000);
  return { name: o.name, ws, tcp, admin: `http://127.0.0.1:${adminPort}`, ...(text ? { text } : {}), proc };
}

/** Resolves when the process's standard error contains `text`. */
export async function waitForStderr(p: Proc, text: string, ms = 10_000): Promise<void> {
  await until(async () => p.err.includes(text), ms, `"${text}" on standard error\n${p.err.slice(-2000)}`);
}

export interface Swarm {
  proc: Proc;
  names: string[];
  /** Lines of standard output that start with `word ` (e.g. "slow", "expired", "connected"). */
  lines(word: string): string[][];
  /** SIGTERM: the agents close their sessions. */
  stop(): Promise<void>;
}

/** Starts `count` agents named `<prefix>000`… in one process; resolves once all connected. */
export async function startSwarm(o: {
  prefix: string;
  count: number;
  servers: string[];
  labels?: Record<string, string>;
  /** A signing key file: each agent presents a token issued with it. */
  key?: string;
}): Promise<Swarm> {
  const args = ["--prefix", o.prefix, "--count", String(o.count)];
  if (o.key !== undefined) args.push("--key", o.key);
  for (const s of o.servers) args.push("--server", s);
  for (const [k, v] of Object.entries(o.labels ?? {})) args.push("--label", `${k}=${v}`);
  const proc = startScript(SWARM, args);
  await proc.waitFor(`ready ${o.count}\n`, 60_000);
  const names = Array.from({ length: o.count }, (_, i) => `${o.prefix}${String(i).padStart(3, "0")}`);
  return {
    proc,
    names,
    lines: (word) =>
      proc.out
        .split("\n")
        .filter((l) => l.startsWith(`${word} `))
        .map((l) => l.split(" ").slice(1)),
    stop: async () => {
      proc.child.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/**
 * Polls an async predicate every 200 ms; fails after `ms` saying what it waited for (`what` may
 * be a function, called then, to tell what it saw last).
 */
export async function until(
  predicate: () => Promise<boolean>,
  ms: number,
  what: string | (() => string),
): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (await predicate()) return;
    if (Date.now() - start > ms)
      assert.fail(`timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `muster agents --json` against one server. */
export async function agentsOn(server: string, extra: string[] = []): Promise<AgentInfo[]> {
  const r = await runCli(["agents", "--json", "--server", server, ...extra]);
  assert.equal(r.code, 0, `muster agents --server ${server}: ${r.err}`);
  return JSON.parse(r.out) as AgentInfo[];
}

/** `muster servers --json` against one server. */
export async function serversOn(server: string, extra: string[] = []): Promise<ServerInfo[]> {
  const r = await runCli(["servers", "--json", "--server", server, ...extra]);
  assert.equal(r.code, 0, `muster servers --server ${server}: ${r.err}`);
  return JSON.parse(r.out) as ServerInfo[];
}

export interface CallResult {
  code: number | null;
  outcomes: CallOutcome[];
  summary: OutcomeSummary | undefined;
  err: string;
}

/** Parses what `muster call … --json` printed: one outcome a line, then the summary. */
export function parseCall(out: string): Omit<CallResult, "code" | "err"> {
  const lines = out
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as CallOutcome & { summary?: OutcomeSummary });
  return {
    outcomes: lines.filter((l) => l.summary === undefined),
    summary: lines.find((l) => l.summary !== undefined)?.summary,
  };
}

/** `muster call <target> <method> [json] --json --server <server>`, run to completion. */
export async function callOn(
  server: string,
  target: string,
  method: string,
  json?: string,
  extra: string[] = [],
): Promise<CallResult> {
  const args = ["call", target, method, ...(json !== undefined ? [json] : []), "--json", "--server", server];
  const r = await runCli([...args, ...extra], 60_000);
  return { code: r.code, err: r.err, ...parseCall(r.out) };
}

/** GET /readyz of a server's admin API: its status and first line. */
export async function readyz(server: ClusterServer): Promise<{ status: number; state: string }> {
  const res = await fetch(`${server.admin}/readyz`);
  const body = await res.text();
  return { status: res.status, state: body.split("\n")[0]! };
}

/** Counts of agents by `state@server`, for messages and comparisons. */
export function census(agents: AgentInfo[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of agents) {
    const k = `${a.state}@${a.server ?? "-"}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
