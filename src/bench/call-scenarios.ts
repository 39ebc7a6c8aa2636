import { type Live, recorder, startLive, stopAll } from "./fleet.js";
import { plan, type ResultRow, type RunOptions, type SystemRef } from "./scenarios.js";
import { median } from "./stats.js";

/**
 * rtt, pipe and stream, with every system's server and client up at once and the measurement
 * windows interleaved (round r visits the systems in an order rotated by r): drift in the
 * machine's speed then hits every system alike. Each figure is the median over the rounds.
 */
export async function runCallScenarios(refs: readonly SystemRef[], o: RunOptions): Promise<ResultRow[]> {
  const p = plan(o.quick);
  const rows: ResultRow[] = [];
  const { add, guard } = recorder(o, rows);
  const scenarios = (["rtt", "pipe", "stream"] as const).filter((s) => o.scenarios.includes(s));
  if (scenarios.length === 0) return rows;
  const live: Live[] = [];
  try {
    const ready = await startLive(refs, o, guard, live, scenarios[0]!, { n: 1, processes: 1 });
    for (const size of o.sizes) {
      for (const scenario of scenarios) {
        const rounds = new Map<string, Record<string, number>[]>();
        const failed = new Set<string>();
        for (let round = 0; round < p.rounds; round++) {
          const order = ready.map((_, k) => ready[(k + round) % ready.length]!);
          for (const l of order) {
            if (failed.has(l.ref.name)) continue;
            try {
              const m = await measureOnce(l, scenario, size, p, round === 0);
              rounds.set(l.ref.name, [...(rounds.get(l.ref.name) ?? []), m]);
            } catch (err) {
              failed.add(l.ref.name);
              await guard(l.ref.name, scenario, size, () => Promise.reject(err));
            }
          }
        }
        for (const l of ready) {
          const ms = rounds.get(l.ref.name);
          if (!ms || failed.has(l.ref.name)) continue;
          const metrics: Record<string, number> = { rounds: ms.length };
          for (const k of Object.keys(ms[0]!)) metrics[k] = median(ms.map((m) => m[k]!));
          add(l.ref.name, scenario, size, metrics);
        }
      }
    }
  } finally {
    await stopAll(live);
  }
  return rows;
}

/** One measurement window of a call scenario on a connected client. */
async function measureOnce(
  { clients, server }: Live,
  scenario: "rtt" | "pipe" | "stream",
  size: number,
  p: ReturnType<typeof plan>,
  first: boolean,
): Promise<Record<string, number>> {
  const client = clients[0]!;
  if (scenario === "stream") {
    const r = await client.request<{ ms: number; items: number; bytes: number }>("stream", {
      count: p.streamItems(size),
      size,
    });
    return { mbPerSec: r.bytes / 1e6 / (r.ms / 1000), framesPerSec: r.items / (r.ms / 1000) };
  }
  // The server's CPU time is read around the client's whole run (warm-up included), so it is
  // divided by every call the client made.
  type Cpu = { user: number; system: number };
  const cpu0 = await server.request<Cpu>("cpu");
  const r = await client.request<{
    calls: number;
    allCalls: number;
    elapsedMs: number;
    p50Ms: number;
    p99Ms: number;
    cpuUs: number;
  }>("calls", {
    size,
    inflight: scenario === "rtt" ? 1 : p.pipeInflight,
    durationMs: p.callDurationMs,
    warmupMs: first ? p.callWarmupMs * 2 : p.callWarmupMs,
  });
  const cpu1 = await server.request<Cpu>("cpu");
  const serverUs = cpu1.user + cpu1.system - cpu0.user - cpu0.system;
  const m: Record<string, number> = {
    callsPerSec: (r.calls / r.elapsedMs) * 1000,
    serverCpuUsPerCall: serverUs / r.allCalls,
    clientCpuUsPerCall: r.cpuUs / r.calls,
  };
  if (scenario === "rtt") Object.assign(m, { p50Ms: r.p50Ms, p99Ms: r.p99Ms });
  return m;
}
