import { connectClients, type Live, recorder, startLive, stopAll, withPair } from "./fleet.js";
import { plan, type ResultRow, type RunOptions, type ScenarioName, type SystemRef } from "./scenarios.js";
import { median, percentile } from "./stats.js";

/**
 * fanout-1k with every system's server and 1,000 clients up at once, one fan-out per system in
 * turn (order rotated each round), so that drift in the machine's speed hits all alike.
 */
export async function runFanout1k(refs: readonly SystemRef[], o: RunOptions): Promise<ResultRow[]> {
  const p = plan(o.quick);
  const rows: ResultRow[] = [];
  const { add, guard } = recorder(o, rows);
  if (!o.scenarios.includes("fanout-1k")) return rows;
  const n = p.fanout1k.n;
  const live: Live[] = [];
  try {
    const ready = await startLive(refs, o, guard, live, "fanout-1k", n);
    for (const size of o.sizes) {
      const times = new Map<string, number[]>();
      const lags = new Map<string, number>();
      /** Per system: server CPU µs and event-loop utilisation of each measured round. */
      const costs = new Map<string, { cpuUs: number; elu: number[] }>();
      const failed = new Set<string>();
      for (let round = -p.fanout1k.warmup; round < p.fanout1k.rounds; round++) {
        // Rotated by the round; warm-up rounds are negative, so the index is kept non-negative.
        const order = ready.map(
          (_, k) => ready[(((k + round) % ready.length) + ready.length) % ready.length]!,
        );
        for (const l of order) {
          if (failed.has(l.ref.name)) continue;
          try {
            await l.server.request("lagStart");
            const r = await l.server.request<FanoutAnswer>("fanout", {
              size,
              rounds: 1,
              warmup: 0,
              timeoutMs: 60_000,
            });
            const lag = await l.server.request<{ maxMs: number }>("lagStop");
            if (r.clients !== n) throw new Error(`${r.clients} of ${n} clients answered`);
            if (round < 0) continue;
            times.set(l.ref.name, [...(times.get(l.ref.name) ?? []), ...r.times]);
            lags.set(l.ref.name, Math.max(lags.get(l.ref.name) ?? 0, lag.maxMs));
            const c = costs.get(l.ref.name) ?? { cpuUs: 0, elu: [] };
            c.cpuUs += r.cpuUs;
            c.elu.push(r.elu);
            costs.set(l.ref.name, c);
          } catch (err) {
            failed.add(l.ref.name);
            await guard(l.ref.name, "fanout-1k", size, () => Promise.reject(err));
          }
        }
      }
      for (const l of ready) {
        const t = times.get(l.ref.name);
        if (!t || failed.has(l.ref.name)) continue;
        const c = costs.get(l.ref.name);
        add(l.ref.name, "fanout-1k", size, {
          clients: n,
          rounds: t.length,
          medianMs: median(t),
          p90Ms: percentile(t, 90),
          lagMaxMs: lags.get(l.ref.name) ?? 0,
          ...(c !== undefined && {
            serverCpuUsPerAgent: c.cpuUs / (n * t.length),
            serverElu: median(c.elu),
          }),
        });
      }
    }
  } finally {
    await stopAll(live);
  }
  return rows;
}

/**
 * What a server child answers to `fanout`: the measured rounds' times, the clients that
 * answered, and the server's CPU time (µs, user + system) and event-loop utilisation (0–1)
 * over the measured rounds (warm-up excluded).
 */
interface FanoutAnswer {
  times: number[];
  clients: number;
  cpuUs: number;
  elu: number;
}

/** idle-mem and fanout-10k on one system: 10,000 clients of its own. */
export async function runFleetScenarios(ref: SystemRef, o: RunOptions): Promise<ResultRow[]> {
  const p = plan(o.quick);
  const rows: ResultRow[] = [];
  const r = recorder(o, rows);
  const add = (scenario: ScenarioName, size: number, metrics: Record<string, number>): void =>
    r.add(ref.name, scenario, size, metrics);
  const guard = (what: ScenarioName, size: number, fn: () => Promise<void>): Promise<void> =>
    r.guard(ref.name, what, size, fn);
  const want = (s: ScenarioName): boolean => o.scenarios.includes(s);

  for (const [scenario, cfg] of [["fanout-10k", p.fanout10k]] as const) {
    const memHere = want("idle-mem");
    if (!want(scenario) && !memHere) continue;
    const n = cfg.n;
    await guard(scenario, 0, () =>
      withPair(ref, o.host, async (server, client, port) => {
        const before = await server.request<{ rss: number; heapUsed: number }>("memory");
        await connectClients(ref, server, client, port, n, o);
        if (memHere) {
          await new Promise((r) => setTimeout(r, p.idleSettleMs));
          const after = await server.request<{ rss: number; heapUsed: number }>("memory");
          add("idle-mem", 0, {
            connections: n,
            rssPerConnKiB: (after.rss - before.rss) / n / 1024,
            heapPerConnKiB: (after.heapUsed - before.heapUsed) / n / 1024,
          });
        }
        if (!want(scenario)) return;
        for (const size of o.sizes) {
          await guard(scenario, size, async () => {
            await server.request("lagStart");
            const r = await server.request<FanoutAnswer>("fanout", {
              size,
              rounds: cfg.rounds,
              warmup: cfg.warmup,
              timeoutMs: 60_000,
            });
            const lag = await server.request<{ maxMs: number }>("lagStop");
            add(scenario, size, {
              clients: r.clients,
              rounds: r.times.length,
              medianMs: median(r.times),
              p90Ms: percentile(r.times, 90),
              lagMaxMs: lag.maxMs,
              serverCpuUsPerAgent: r.cpuUs / (r.clients * r.times.length),
              serverElu: r.elu,
            });
          });
        }
      }),
    );
  }
  return rows;
}
