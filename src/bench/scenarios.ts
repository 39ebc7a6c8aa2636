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
}

/** Counts and durations of each scenario, full and quick. */
export function plan(quick: boolean) {
  return {
    callWarmupMs: quick ? 200 : 1000,
    callDurationMs: quick ? 500 : 5000,
    pipeInflight: 64,
    fanout1k: { n: quick ? 100 : 1000, rounds: quick ? 3 : 30, warmup: quick ? 1 : 3 },
    fanout10k: { n: quick ? 300 : 10_000, rounds: quick ? 2 : 10, warmup: 1 },
    idleSettleMs: quick ? 200 : 3000,
    streamItems: (size: number) => (size <= 64 ? (quick ? 5000 : 300_000) : quick ? 500 : 30_000),
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

/** Runs every scenario of `o.scenarios` except `storm` on one system. */
export async function runSystem(ref: SystemRef, o: RunOptions): Promise<ResultRow[]> {
  const p = plan(o.quick);
  const rows: ResultRow[] = [];
  const want = (s: ScenarioName): boolean => o.scenarios.includes(s);
  const guard = async (what: ScenarioName, size: number, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      o.log(`  ${ref.name} ${what} ${size} B: FAILED ${error}`);
      rows.push({ scenario: what, system: ref.name, size, metrics: {}, error });
    }
  };
  const add = (scenario: ScenarioName, size: number, metrics: Record<string, number>): void => {
    rows.push({ scenario, system: ref.name, size, metrics });
    const shown = Object.entries(metrics)
      .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`)
      .join(" ");
    o.log(`  ${ref.name} ${scenario} ${size} B: ${shown}`);
  };

  if (want("rtt") || want("pipe") || want("stream")) {
    await guard("rtt", 0, () =>
      withPair(ref, o.host, async (_server, client, port) => {
        await client.request("connect", { host: o.host, port, n: 1 });
        for (const size of o.sizes) {
          for (const [scenario, inflight] of [
            ["rtt", 1],
            ["pipe", p.pipeInflight],
          ] as const) {
            if (!want(scenario)) continue;
            await guard(scenario, size, async () => {
              const r = await client.request<{
                calls: number;
                elapsedMs: number;
                p50Ms: number;
                p99Ms: number;
              }>("calls", { size, inflight, durationMs: p.callDurationMs, warmupMs: p.callWarmupMs });
              const metrics: Record<string, number> = { callsPerSec: (r.calls / r.elapsedMs) * 1000 };
              if (scenario === "rtt") Object.assign(metrics, { p50Ms: r.p50Ms, p99Ms: r.p99Ms });
              add(scenario, size, metrics);
            });
          }
          if (want("stream")) {
            await guard("stream", size, async () => {
              const count = p.streamItems(size);
              const r = await client.request<{ ms: number; items: number; bytes: number }>("stream", {
                count,
                size,
              });
              add("stream", size, {
                mbPerSec: r.bytes / 1e6 / (r.ms / 1000),
                framesPerSec: r.items / (r.ms / 1000),
              });
            });
          }
        }
      }),
    );
  }

  for (const [scenario, cfg] of [
    ["fanout-1k", p.fanout1k],
    ["fanout-10k", p.fanout10k],
  ] as const) {
    const memHere = scenario === "fanout-10k" && want("idle-mem");
    if (!want(scenario) && !memHere) continue;
    const n = cfg.n;
    await guard(scenario, 0, () =>
      withPair(ref, o.host, async (server, client, port) => {
        const before = await server.request<{ rss: number; heapUsed: number }>("memory");
        const t0 = Date.now();
        await client.request("connect", { host: o.host, port, n, concurrency: 100 });
        await server.request("waitConnected", { n, timeoutMs: 120_000 });
        o.log(`  ${ref.name}: ${n} clients connected in ${Date.now() - t0} ms`);
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
            const r = await server.request<{ times: number[]; clients: number }>("fanout", {
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
            });
          });
        }
      }),
    );
  }
  return rows;
}
