// A soak run: a server, several agent processes holding many agents between them, calls in
// both directions, fan-outs and streams, all through the fault-injecting proxy, for a set
// time. Then the faults stop, every call in flight settles, and the run checks what arrived.
import { Child } from "../bench/ipc.js";
import type { RandomFaults } from "../chaos/scheduler.js";
import { type CallCounts, type SeqCounts, SOAK_CHILD } from "./child.js";
import type { ClusterSoakReport } from "./cluster-run.js";

/** The schemes a single-server soak can run over (the proxy cuts TCP under any of them). */
export const SOAK_TRANSPORTS = ["tcp", "ws", "grpc", "http"] as const;
export type SoakTransport = (typeof SOAK_TRANSPORTS)[number];

export interface SoakOptions {
  /** What the agents' links run over (a cluster soak runs over tcp). @default "tcp" */
  transport?: SoakTransport;
  /** How long faults are injected. */
  durationMs: number;
  /** Agents in all, spread over `processes`. */
  agents: number;
  processes: number;
  /** Seed of the proxy's faults and jitter. */
  seed: number;
  /** Faults at random (mean intervals); a black-hole outlasting `deadAfterMs` tests half-open detection. */
  faults: RandomFaults;
  /** Payload size of every call and result. */
  size: number;
  /** Each agent calls the server this often. */
  callEveryMs: number;
  /** The server fans out to every agent this often. */
  fanoutEveryMs: number;
  heartbeatMs: number;
  deadAfterMs: number;
  /** Deadline of every call: longer than any fault, so that every call must succeed. */
  callTimeoutMs: number;
  /** Added latency and jitter of the proxy. */
  latencyMs: number;
  jitterMs: number;
  log: (line: string) => void;
}

export const SOAK_DEFAULTS: Omit<SoakOptions, "seed" | "log"> = {
  durationMs: 60_000,
  agents: 500,
  processes: 4,
  faults: { cutEveryMs: 2000, resetEveryMs: 3000, blackholeEveryMs: 5000, blackholeForMs: 4000 },
  size: 256,
  callEveryMs: 1000,
  fanoutEveryMs: 500,
  heartbeatMs: 1000,
  deadAfterMs: 3000,
  callTimeoutMs: 60_000,
  latencyMs: 1,
  jitterMs: 2,
};

export interface SoakCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SoakReport {
  seed: number;
  options: Omit<SoakOptions, "log">;
  faults: Record<string, number>;
  bytes: { toServer: number; toAgents: number };
  agentToServer: { calls: CallCounts; received: SeqCounts };
  serverToAgent: { calls: CallCounts; received: SeqCounts; rounds: number };
  streams: { calls: CallCounts; itemsOutOfOrder: number };
  agentEvents: Record<string, number>;
  memory: { startMiB: number; peakMiB: number; endMiB: number };
  lag: { p99Ms: number; maxMs: number };
  checks: SoakCheck[];
  ok: boolean;
  /** A soak over several servers (`--servers`): what happened to the cluster. */
  cluster?: ClusterSoakReport;
}

export type ServerStats = {
  up: SeqCounts;
  down: CallCounts;
  rounds: number;
  streams: CallCounts;
  streamItemsBad: number;
  heap: { start: number; peak: number; end: number };
  lagP99Ms: number;
  lagMaxMs: number;
  agents: number;
};
export type AgentStats = { up: CallCounts; down: SeqCounts; events: Record<string, number> };

export function sumCalls(list: CallCounts[]): CallCounts {
  const out: CallCounts = { started: 0, settled: 0, ok: 0, twice: 0, wrong: 0, errors: {} };
  for (const c of list) {
    out.started += c.started;
    out.settled += c.settled;
    out.ok += c.ok;
    out.twice += c.twice;
    out.wrong += c.wrong;
    for (const [k, v] of Object.entries(c.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
    if (c.failures !== undefined) out.failures = [...(out.failures ?? []), ...c.failures];
  }
  return out;
}

export function sumSeq(list: SeqCounts[]): SeqCounts {
  return list.reduce(
    (a, c) => ({
      received: a.received + c.received,
      duplicated: a.duplicated + c.duplicated,
      outOfOrder: a.outOfOrder + c.outOfOrder,
    }),
    { received: 0, duplicated: 0, outOfOrder: 0 },
  );
}

export const mib = (b: number): number => Math.round((b / 1024 / 1024) * 10) / 10;

/**
 * Starts `o.processes` agent processes holding `o.agents` agents between them (named
 * `p<process>-<n>`), each agent dialing `urls`, added to `procs` at once (the caller stops them
 * whatever happens); resolves once every agent is connected.
 */
export async function startAgentProcesses(o: SoakOptions, urls: string[], procs: Child[]): Promise<void> {
  const per = Math.ceil(o.agents / o.processes);
  for (let k = 0; k < o.processes; k++) procs.push(new Child(SOAK_CHILD, ["agents"]));
  await Promise.all(
    procs.map((c, k) =>
      c.request(
        "connect",
        {
          urls,
          n: Math.min(per, o.agents - k * per),
          prefix: `p${k}`,
          size: o.size,
          heartbeatMs: o.heartbeatMs,
          deadAfterMs: o.deadAfterMs,
        },
        120_000,
      ),
    ),
  );
}

/** Runs a soak and returns its report; `report.ok` is false when any check failed. */
export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const server = new Child(SOAK_CHILD, ["server"]);
  const proxy = new Child(SOAK_CHILD, ["proxy"]);
  const procs: Child[] = [];
  const settleMs = o.callTimeoutMs + 30_000;
  try {
    const scheme = o.transport ?? "tcp";
    const { port } = await server.request<{ port: number }>("start", {
      scheme: scheme === "http" ? "ws" : scheme,
      heartbeatMs: o.heartbeatMs,
      deadAfterMs: o.deadAfterMs,
    });
    const p = await proxy.request<{ port: number; seed: number }>("start", {
      targetPort: port,
      seed: o.seed,
      latencyMs: o.latencyMs,
      jitterMs: o.jitterMs,
    });
    // http: long-polling on the ws listener, without the WebSocket attempt.
    const url =
      scheme === "http" ? `http://127.0.0.1:${p.port}/?transport=polling` : `${scheme}://127.0.0.1:${p.port}`;
    o.log(
      `soak: seed ${p.seed}, ${o.agents} agents in ${o.processes} processes over ${scheme}, ${o.durationMs} ms of faults`,
    );
    await startAgentProcesses(o, [url], procs);
    await server.request("waitAgents", { n: o.agents, timeoutMs: 60_000 }, 70_000);
    o.log("soak: all agents connected; traffic and faults start");

    await server.request("run", {
      size: o.size,
      fanoutEveryMs: o.fanoutEveryMs,
      callTimeoutMs: o.callTimeoutMs,
    });
    await Promise.all(
      procs.map((c) =>
        c.request("run", { callEveryMs: o.callEveryMs, size: o.size, callTimeoutMs: o.callTimeoutMs }),
      ),
    );
    // Memory is measured from the end of the warm-up (a fifth of the run) on.
    const warmup = Math.min(10_000, o.durationMs / 5);
    await new Promise((r) => setTimeout(r, warmup));
    await proxy.request("faults", { random: o.faults });
    await server.request("heapStart");
    await new Promise((r) => setTimeout(r, o.durationMs));

    o.log("soak: faults stop; waiting for every call to settle");
    await proxy.request("quiet");
    await Promise.all(procs.map((c) => c.request("stop", {}, settleMs)));
    await server.request("stop", {}, settleMs);

    const ps = await proxy.request<{
      stats: { faults: Record<string, number>; bytes: { toTarget: number; toClient: number } };
    }>("stats");
    const ss = await server.request<ServerStats>("stats", {}, 30_000);
    const as = await Promise.all(procs.map((c) => c.request<AgentStats>("stats")));
    const up = sumCalls(as.map((a) => a.up));
    const down = sumSeq(as.map((a) => a.down));
    const events: Record<string, number> = {};
    for (const a of as) for (const [k, v] of Object.entries(a.events)) events[k] = (events[k] ?? 0) + v;

    const checks: SoakCheck[] = [];
    const check = (name: string, ok: boolean, detail: string): void => {
      checks.push({ name, ok, detail });
    };
    const injected = Object.values(ps.stats.faults).reduce((a, b) => a + b, 0);
    check("faults were injected", injected > 0, `${injected} faults`);
    check(
      "agent → server: every call settled exactly once, with the right result",
      up.started > 0 && up.settled === up.started && up.ok === up.started && up.twice === 0 && up.wrong === 0,
      `${up.started} started, ${up.settled} settled, ${up.ok} ok, ${up.twice} twice, ${up.wrong} wrong, errors ${JSON.stringify(up.errors)}`,
    );
    check(
      "agent → server: 0 lost, 0 duplicated, 0 out of order",
      ss.up.received === up.ok && ss.up.duplicated === 0 && ss.up.outOfOrder === 0,
      `${ss.up.received} received for ${up.ok} answered, ${ss.up.duplicated} duplicated, ${ss.up.outOfOrder} out of order`,
    );
    check(
      "server → agent: every fan-out call settled exactly once, with the right result",
      ss.down.started > 0 &&
        ss.down.settled === ss.down.started &&
        ss.down.ok === ss.down.started &&
        ss.down.wrong === 0,
      `${ss.rounds} rounds, ${ss.down.started} calls, ${ss.down.settled} settled, ${ss.down.ok} ok, ${ss.down.wrong} wrong, errors ${JSON.stringify(ss.down.errors)}`,
    );
    check(
      "server → agent: 0 lost, 0 duplicated, 0 out of order",
      down.received === ss.down.ok && down.duplicated === 0 && down.outOfOrder === 0,
      `${down.received} received for ${ss.down.ok} answered, ${down.duplicated} duplicated, ${down.outOfOrder} out of order`,
    );
    check(
      "streams: every item once and in order, every stream settled once",
      ss.streams.started > 0 &&
        ss.streams.ok === ss.streams.started &&
        ss.streams.twice === 0 &&
        ss.streamItemsBad === 0,
      `${ss.streams.started} streams, ${ss.streams.ok} complete, ${ss.streamItemsBad} items out of order, errors ${JSON.stringify(ss.streams.errors)}`,
    );
    check(
      "no session expired (every drop was resumed)",
      (events.expired ?? 0) === 0,
      `${events.expired ?? 0} expired, ${events.resumed ?? 0} resumed`,
    );
    // After the warm-up the heap may breathe, not grow: the end (after a full GC) stays within
    // 1.5 × the start plus 16 MiB of slack for buffers still being reclaimed.
    check(
      "server memory bounded after warm-up",
      ss.heap.end <= ss.heap.start * 1.5 + 16 * 1024 * 1024,
      `heap ${mib(ss.heap.start)} MiB at start, ${mib(ss.heap.peak)} peak, ${mib(ss.heap.end)} at the end`,
    );

    return {
      seed: p.seed,
      options: { ...o, log: undefined } as unknown as Omit<SoakOptions, "log">,
      faults: ps.stats.faults,
      bytes: { toServer: ps.stats.bytes.toTarget, toAgents: ps.stats.bytes.toClient },
      agentToServer: { calls: up, received: ss.up },
      serverToAgent: { calls: ss.down, received: down, rounds: ss.rounds },
      streams: { calls: ss.streams, itemsOutOfOrder: ss.streamItemsBad },
      agentEvents: events,
      memory: { startMiB: mib(ss.heap.start), peakMiB: mib(ss.heap.peak), endMiB: mib(ss.heap.end) },
      lag: { p99Ms: Math.round(ss.lagP99Ms * 10) / 10, maxMs: Math.round(ss.lagMaxMs * 10) / 10 },
      checks,
      ok: checks.every((c) => c.ok),
    };
  } finally {
    await Promise.all(procs.map((c) => c.request("close", {}, 30_000).catch(() => {})));
    await server.request("close", {}, 10_000).catch(() => {});
    await proxy.request("close", {}, 10_000).catch(() => {});
    await Promise.all([...procs, server, proxy].map((c) => c.stop()));
  }
}

/** The report as text lines. */
export function formatReport(r: SoakReport): string[] {
  const lines = [
    `seed ${r.seed}: ${r.options.agents} agents, ${r.options.durationMs} ms of faults`,
    `faults: ${Object.entries(r.faults)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
    `agent → server calls: ${r.agentToServer.calls.started} started, ${r.agentToServer.calls.ok} ok; server received ${r.agentToServer.received.received}`,
    `server → agent calls: ${r.serverToAgent.rounds} fan-outs, ${r.serverToAgent.calls.started} calls, ${r.serverToAgent.calls.ok} ok; agents received ${r.serverToAgent.received.received}`,
    `streams: ${r.streams.calls.started} started, ${r.streams.calls.ok} complete`,
    `agent events: ${JSON.stringify(r.agentEvents)}`,
    `server heap: ${r.memory.startMiB} MiB after warm-up, ${r.memory.peakMiB} peak, ${r.memory.endMiB} at the end`,
    `server event-loop lag: p99 ${r.lag.p99Ms} ms, max ${r.lag.maxMs} ms`,
  ];
  if (r.cluster !== undefined) {
    const c = r.cluster;
    lines.push(
      `cluster: ${c.servers} servers; ${c.killed.server} killed holding ${c.killed.agents} agents (${c.expiredAgents} sessions expired); ${c.drained.server} drained holding ${c.drained.agents}: ${JSON.stringify(c.drained.result)}`,
    );
  }
  for (const c of r.checks) lines.push(`${c.ok ? "ok    " : "FAILED"} ${c.name}: ${c.detail}`);
  const failures = [
    ...(r.agentToServer.calls.failures ?? []),
    ...(r.serverToAgent.calls.failures ?? []),
    ...(r.streams.calls.failures ?? []),
  ];
  if (failures.length > 0) lines.push(`first failures: ${failures.join("; ")}`);
  lines.push(r.ok ? "soak passed" : `soak FAILED (replay with --seed ${r.seed})`);
  return lines;
}
