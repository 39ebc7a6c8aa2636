import { fileURLToPath } from "node:url";
import { Child } from "./ipc.js";
import { median, percentile } from "./stats.js";

/** A system under benchmark, found by the child process: `systems` export of `module`, by `name`. */
export interface SystemRef {
  name: string;
  /** URL of the module exporting `systems: BenchSystem[]`. */
  module: string;
}

export const SCENARIOS = ["rtt", "pipe", "fanout-1k", "fanout-10k", "idle-mem", "stream", "storm"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const SIZES = [64, 4096] as const;

/** One measured figure set: a scenario at a payload size on a system. */
export interface ResultRow {
  scenario: ScenarioName;
  system: string;
  /** Payload bytes (0 where no payload is involved). */
  size: number;
  metrics: Record<string, number>;
  /** Why the scenario could not run on this system, when it could not. */
  error?: string;
}

export interface RunOptions {
  /** Small counts and short durations: checks that everything completes and verifies. */
  quick: boolean;
  scenarios: readonly ScenarioName[];
  sizes: readonly number[];
  host: string;
  /** Progress lines. */
  log: (line: string) => void;
  /** Agents in the storm scenario, instead of the plan's count. */
  stormAgents?: number;
  /**
   * The storm with authentication on: every agent presents an Ed25519-signed token on every
   * attempt, resumes included (system `muster/<scheme>+auth`).
   */
  stormAuth?: boolean;
}

/** Counts and durations of each scenario, full and quick. */
export function plan(quick: boolean) {
  return {
    /** Interleaved measurement windows per system (rtt, pipe, stream). */
    rounds: quick ? 1 : 5,
    callWarmupMs: quick ? 100 : 300,
    callDurationMs: quick ? 300 : 2000,
    pipeInflight: 64,
    fanout1k: { n: quick ? 100 : 1000, rounds: quick ? 3 : 30, warmup: quick ? 1 : 3 },
    fanout10k: { n: quick ? 300 : 10_000, rounds: quick ? 2 : 10, warmup: 1 },
    idleSettleMs: quick ? 200 : 3000,
    streamItems: (size: number) => (size <= 64 ? (quick ? 5000 : 100_000) : quick ? 500 : 10_000),
    storm: { n: quick ? 200 : 5000 },
  };
}

export const CHILD_PATH = fileURLToPath(new URL("./child.js", import.meta.url));

/** A server child and a client child of one system, started and stopped together. */
async function withPair<T>(
  ref: SystemRef,
  host: string,
  fn: (server: Child, client: Child, port: number) => Promise<T>,
): Promise<T> {
  const server = new Child(CHILD_PATH, ["server", ref.module, ref.name]);
  const client = new Child(CHILD_PATH, ["client", ref.module, ref.name]);
  try {
    const { port } = await server.request<{ port: number }>("start", { host, port: 0 });
    return await fn(server, client, port);
  } finally {
    await client.request("close", {}, 60_000).catch(() => {});
    await server.request("close", {}, 60_000).catch(() => {});
    await Promise.all([client.stop(), server.stop()]);
  }
}

type Add = (system: string, scenario: ScenarioName, size: number, metrics: Record<string, number>) => void;
type Guard = (system: string, what: ScenarioName, size: number, fn: () => Promise<void>) => Promise<void>;

function recorder(o: RunOptions, rows: ResultRow[]): { add: Add; guard: Guard } {
  const add: Add = (system, scenario, size, metrics) => {
    rows.push({ scenario, system, size, metrics });
    const shown = Object.entries(metrics)
      .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`)
      .join(" ");
    o.log(`  ${system} ${scenario} ${size} B: ${shown}`);
  };
  const guard: Guard = async (system, what, size, fn) => {
    try {
      await fn();
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      o.log(`  ${system} ${what} ${size} B: FAILED ${error}`);
      rows.push({ scenario: what, system, size, metrics: {}, error });
    }
  };
  return { add, guard };
}

interface Live {
  ref: SystemRef;
  server: Child;
  client: Child;
}

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
    const ready = await startLive(refs, o, guard, live, scenarios[0]!, 1);
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

/** Opens `n` clients of `ref` and waits until its server counts them all. */
async function connectClients(
  ref: SystemRef,
  server: Child,
  client: Child,
  port: number,
  n: number,
  o: RunOptions,
): Promise<void> {
  const t0 = Date.now();
  await client.request("connect", { host: o.host, port, n, concurrency: 100 });
  await server.request("waitConnected", { n, timeoutMs: 120_000 });
  if (n > 1) o.log(`  ${ref.name}: ${n} clients connected in ${Date.now() - t0} ms`);
}

/**
 * Starts a server and `n` clients for every system, each pair added to `live` (so the caller's
 * `finally` stops it even when its start failed); returns the pairs that started.
 */
async function startLive(
  refs: readonly SystemRef[],
  o: RunOptions,
  guard: Guard,
  live: Live[],
  scenario: ScenarioName,
  n: number,
): Promise<Live[]> {
  const failed = new Set<string>();
  for (const ref of refs) {
    await guard(ref.name, scenario, 0, async () => {
      const server = new Child(CHILD_PATH, ["server", ref.module, ref.name]);
      const client = new Child(CHILD_PATH, ["client", ref.module, ref.name]);
      live.push({ ref, server, client });
      failed.add(ref.name);
      const { port } = await server.request<{ port: number }>("start", { host: o.host, port: 0 });
      await connectClients(ref, server, client, port, n, o);
      failed.delete(ref.name);
    });
  }
  return live.filter((l) => !failed.has(l.ref.name));
}

/** Closes the clients and servers of `live`, then ends their processes. */
async function stopAll(live: readonly Live[]): Promise<void> {
  for (const l of live) {
    await l.client.request("close", {}, 60_000).catch(() => {});
    await l.server.request("close", {}, 60_000).catch(() => {});
    await Promise.all([l.client.stop(), l.server.stop()]);
  }
}

/** One measurement window of a call scenario on a connected client. */
async function measureOnce(
  { client, server }: Live,
  scenario: "rtt" | "pipe" | "stream",
  size: number,
  p: ReturnType<typeof plan>,
  first: boolean,
): Promise<Record<string, number>> {
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
