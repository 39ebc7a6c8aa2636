import { Child } from "./ipc.js";
import {
  CHILD_PATH,
  type ResultRow,
  type RunOptions,
  type ScenarioName,
  type SystemRef,
} from "./scenarios.js";

/** A server child and a client child of one system, started and stopped together. */
export async function withPair<T>(
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

export type Add = (
  system: string,
  scenario: ScenarioName,
  size: number,
  metrics: Record<string, number>,
) => void;
export type Guard = (
  system: string,
  what: ScenarioName,
  size: number,
  fn: () => Promise<void>,
) => Promise<void>;

export function recorder(o: RunOptions, rows: ResultRow[]): { add: Add; guard: Guard } {
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

export interface Live {
  ref: SystemRef;
  server: Child;
  client: Child;
}

/** Opens `n` clients of `ref` and waits until its server counts them all. */
export async function connectClients(
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
export async function startLive(
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
export async function stopAll(live: readonly Live[]): Promise<void> {
  for (const l of live) {
    await l.client.request("close", {}, 60_000).catch(() => {});
    await l.server.request("close", {}, 60_000).catch(() => {});
    await Promise.all([l.client.stop(), l.server.stop()]);
  }
}
