import { type FleetShape, type Live, recorder, startLive, stopAll, withFleet } from "./fleet.js";
import type { Child } from "./ipc.js";
import { plan, type ResultRow, type RunOptions, type ScenarioName, type SystemRef } from "./scenarios.js";
import { median, percentile } from "./stats.js";

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

/** One system's fan-out figures, gathered over rounds (and passes). */
class Tally {
  readonly times: number[] = [];
  readonly elu: number[] = [];
  cpuUs = 0;
  agentRounds = 0;
  lagMaxMs = 0;

  add(r: FanoutAnswer, lagMs: number): void {
    this.times.push(...r.times);
    this.elu.push(r.elu);
    this.cpuUs += r.cpuUs;
    this.agentRounds += r.clients * r.times.length;
    this.lagMaxMs = Math.max(this.lagMaxMs, lagMs);
  }

  metrics(clients: number): Record<string, number> {
    return {
      clients,
      rounds: this.times.length,
      medianMs: median(this.times),
      p90Ms: percentile(this.times, 90),
      serverCpuUsPerAgent: this.cpuUs / this.agentRounds,
      serverElu: median(this.elu),
      lagMaxMs: this.lagMaxMs,
    };
  }
}

/** `rounds` fan-outs (after `warmup`) on a connected fleet, with the server's worst loop lag. */
async function fanoutOn(
  server: Child,
  n: number,
  size: number,
  rounds: number,
  warmup: number,
): Promise<{ r: FanoutAnswer; lagMs: number }> {
  await server.request("lagStart");
  const r = await server.request<FanoutAnswer>("fanout", { size, rounds, warmup, timeoutMs: 120_000 });
  const lag = await server.request<{ maxMs: number }>("lagStop");
  if (r.clients !== n) throw new Error(`${r.clients} of ${n} clients answered`);
  return { r, lagMs: lag.maxMs };
}

/**
 * fanout-1k with every system's server and 1,000 clients (in several processes) up at once, one
 * fan-out per system in turn (order rotated each round), so that drift in the machine's speed
 * hits all alike.
 */
export async function runFanout1k(refs: readonly SystemRef[], o: RunOptions): Promise<ResultRow[]> {
  const p = plan(o.quick);
  const rows: ResultRow[] = [];
  const { add, guard } = recorder(o, rows);
  if (!o.scenarios.includes("fanout-1k")) return rows;
  const n = p.fanout1k.n;
  const live: Live[] = [];
  try {
    const ready = await startLive(refs, o, guard, live, "fanout-1k", { n, processes: p.fanoutProcesses });
    for (const size of o.sizes) {
      const tallies = new Map(ready.map((l) => [l.ref.name, new Tally()]));
      const failed = new Set<string>();
      for (let round = -p.fanout1k.warmup; round < p.fanout1k.rounds; round++) {
        // Rotated by the round; warm-up rounds are negative, so the index is kept non-negative.
        const order = ready.map(
          (_, k) => ready[(((k + round) % ready.length) + ready.length) % ready.length]!,
        );
        for (const l of order) {
          if (failed.has(l.ref.name)) continue;
          try {
            const { r, lagMs } = await fanoutOn(l.server, n, size, 1, 0);
            if (round >= 0) tallies.get(l.ref.name)!.add(r, lagMs);
          } catch (err) {
            failed.add(l.ref.name);
            await guard(l.ref.name, "fanout-1k", size, () => Promise.reject(err));
          }
        }
      }
      for (const l of ready) {
        if (!failed.has(l.ref.name)) add(l.ref.name, "fanout-1k", size, tallies.get(l.ref.name)!.metrics(n));
      }
    }
  } finally {
    await stopAll(live);
  }
  return rows;
}

/** Systems that can listen on several loopback addresses, as fanout-100k needs. */
const BIG_FANOUT_SYSTEMS = new Set(["muster/tcp", "muster/ws", "raw-tcp", "raw-ws"]);
/** Connections one client address can open towards one server address (ephemeral ports, with room). */
const PER_ADDRESS = 25_000;

/** The descriptor limit of a child process (from /proc on Linux; undefined elsewhere). */
async function descriptorLimit(server: Child): Promise<number | undefined> {
  return (await server.request<{ nofile?: number }>("limits")).nofile;
}

interface FleetPlan {
  scenario: "fanout-10k" | "fanout-100k";
  shape: FleetShape;
  rounds: number;
  warmup: number;
  refs: readonly SystemRef[];
}

function fleetPlans(refs: readonly SystemRef[], o: RunOptions): FleetPlan[] {
  const p = plan(o.quick);
  const want = (s: ScenarioName): boolean => o.scenarios.includes(s);
  const plans: FleetPlan[] = [];
  if (want("fanout-10k") || want("idle-mem")) {
    const { n, rounds, warmup } = p.fanout10k;
    plans.push({ scenario: "fanout-10k", shape: { n, processes: p.fanoutProcesses }, rounds, warmup, refs });
  }
  if (want("fanout-100k") && !o.quick) {
    const { rounds, warmup, perProcess } = p.fanout100k;
    const n = o.bigFanoutAgents ?? p.fanout100k.n;
    // At least four addresses and as many client processes as the other fan-outs, whatever n.
    const addresses = Math.max(4, Math.ceil(n / PER_ADDRESS));
    const extra = Array.from({ length: addresses - 1 }, (_, k) => `127.0.0.${k + 2}`);
    const shape = { n, processes: Math.max(p.fanoutProcesses, Math.ceil(n / perProcess)), extraHosts: extra };
    plans.push({
      scenario: "fanout-100k",
      shape,
      rounds,
      warmup,
      refs: refs.filter((r) => BIG_FANOUT_SYSTEMS.has(r.name)),
    });
  }
  return plans;
}

/**
 * fanout-10k (with idle-mem on the same fleet) and fanout-100k: each system in turn gets a
 * server and its own clients in several processes, and the whole is done in passes (order
 * reversed each pass) so that drift in the machine's speed hits every system alike. Figures are
 * over the rounds of every pass; idle memory is the mean of the passes.
 */
export async function runFleetScenarios(refs: readonly SystemRef[], o: RunOptions): Promise<ResultRow[]> {
  const p = plan(o.quick);
  const rows: ResultRow[] = [];
  const { add, guard } = recorder(o, rows);
  const wantMem = o.scenarios.includes("idle-mem");
  for (const fp of fleetPlans(refs, o)) {
    const { scenario, shape } = fp;
    const fanHere = o.scenarios.includes(scenario);
    const memHere = scenario === "fanout-10k" && wantMem;
    const tallies = new Map<string, Tally>();
    const mem = new Map<string, { rss: number[]; heap: number[] }>();
    const serverRss = new Map<string, number>();
    const failed = new Set<string>();
    o.log(
      `${scenario}${memHere ? " and idle-mem" : ""}: ${shape.n} clients per system, ${p.fleetPasses} passes`,
    );
    for (let pass = 0; pass < p.fleetPasses; pass++) {
      const order = pass % 2 === 0 ? fp.refs : [...fp.refs].reverse();
      for (const ref of order) {
        if (failed.has(ref.name)) continue;
        let before = { rss: 0, heapUsed: 0 };
        const run = async (l: Live): Promise<void> => {
          if (memHere) {
            await new Promise((r) => setTimeout(r, p.idleSettleMs));
            const after = await l.server.request<{ rss: number; heapUsed: number }>("memory");
            const m = mem.get(ref.name) ?? { rss: [], heap: [] };
            m.rss.push((after.rss - before.rss) / shape.n / 1024);
            m.heap.push((after.heapUsed - before.heapUsed) / shape.n / 1024);
            mem.set(ref.name, m);
          }
          if (!fanHere) return;
          for (const size of o.sizes) {
            const { r, lagMs } = await fanoutOn(l.server, shape.n, size, fp.rounds, fp.warmup);
            const key = `${ref.name} ${size}`;
            if (!tallies.has(key)) tallies.set(key, new Tally());
            tallies.get(key)!.add(r, lagMs);
          }
          const { rss } = await l.server.request<{ rss: number }>("memory");
          serverRss.set(ref.name, Math.max(serverRss.get(ref.name) ?? 0, rss));
        };
        const beforeConnect = async (server: Child): Promise<void> => {
          const limit = await descriptorLimit(server);
          if (limit !== undefined && limit < shape.n + 1024)
            throw new SkipError(
              `needs ${shape.n.toLocaleString("en-US")} connections in one server process; its descriptor limit (ulimit -n) is ${limit}`,
            );
          before = await server.request<{ rss: number; heapUsed: number }>("memory");
        };
        try {
          await withFleet(ref, o, shape, run, beforeConnect);
        } catch (err) {
          failed.add(ref.name);
          if (err instanceof SkipError) {
            o.log(`  ${ref.name} ${scenario}: not run: ${err.message}`);
            rows.push({ scenario, system: ref.name, size: 0, metrics: {}, skipped: err.message });
          } else await guard(ref.name, scenario, 0, () => Promise.reject(err));
        }
      }
    }
    for (const ref of fp.refs) {
      if (failed.has(ref.name)) continue;
      const m = mem.get(ref.name);
      if (m)
        add(ref.name, "idle-mem", 0, {
          connections: shape.n,
          rssPerConnKiB: m.rss.reduce((a, b) => a + b, 0) / m.rss.length,
          heapPerConnKiB: m.heap.reduce((a, b) => a + b, 0) / m.heap.length,
        });
      for (const size of fanHere ? o.sizes : []) {
        const t = tallies.get(`${ref.name} ${size}`);
        if (t)
          add(ref.name, scenario, size, {
            ...t.metrics(shape.n),
            serverRssMiB: serverRss.get(ref.name)! / 2 ** 20,
          });
      }
    }
  }
  return rows;
}

/** A scenario this machine cannot run (a limit, not a failure of the system). */
class SkipError extends Error {}
