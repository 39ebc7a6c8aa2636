import { Child } from "./ipc.js";
import {
  CHILD_PATH,
  type ResultRow,
  type RunOptions,
  type ScenarioName,
  type SystemRef,
} from "./scenarios.js";

/**
 * A system's server child and its client children, started and stopped together: `processes`
 * client processes share `n` clients (one process per 15,000 at least, so that no process needs
 * more file descriptors than a default limit allows).
 */
export async function withFleet<T>(
  ref: SystemRef,
  o: RunOptions,
  shape: FleetShape,
  fn: (fleet: Live) => Promise<T>,
  beforeConnect?: (server: Child) => Promise<void>,
): Promise<T> {
  const live: Live[] = [];
  try {
    return await fn(await startFleet(ref, o, shape, live, beforeConnect));
  } finally {
    await stopAll(live);
  }
}

/** How many clients a fleet has, in how many processes, dialling which addresses. */
export interface FleetShape {
  n: number;
  processes: number;
  /**
   * Addresses the server also listens on (same port) and the clients spread over: past about
   * 28,000 connections one source address runs out of ephemeral ports towards one address.
   */
  extraHosts?: readonly string[];
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
  /** One or more client processes; the call scenarios use the first one's first client. */
  clients: Child[];
}

/** Opens `shape.n` clients of `l` spread over its client processes; waits until the server counts them all. */
export async function connectClients(l: Live, port: number, shape: FleetShape, o: RunOptions): Promise<void> {
  const t0 = Date.now();
  const hosts = [o.host, ...(shape.extraHosts ?? [])];
  const per = Math.ceil(shape.n / l.clients.length);
  await Promise.all(
    l.clients.map((c, k) => {
      const base = k * per;
      const n = Math.max(0, Math.min(per, shape.n - base));
      return n === 0 ? undefined : c.request("connect", { hosts, port, n, base, concurrency: 100 });
    }),
  );
  await l.server.request("waitConnected", { n: shape.n, timeoutMs: 300_000 });
  if (shape.n > 1)
    o.log(
      `  ${l.ref.name}: ${shape.n} clients in ${l.clients.length} process${l.clients.length > 1 ? "es" : ""} connected in ${Date.now() - t0} ms`,
    );
}

/** Starts one system's server and clients, added to `live` first so that the caller's `finally` stops them. */
export async function startFleet(
  ref: SystemRef,
  o: RunOptions,
  shape: FleetShape,
  live: Live[],
  beforeConnect?: (server: Child) => Promise<void>,
): Promise<Live> {
  const server = new Child(CHILD_PATH, ["server", ref.module, ref.name]);
  const clients = Array.from(
    { length: Math.max(1, shape.processes) },
    () => new Child(CHILD_PATH, ["client", ref.module, ref.name]),
  );
  const l: Live = { ref, server, clients };
  live.push(l);
  const { port } = await server.request<{ port: number }>("start", {
    host: o.host,
    port: 0,
    extraHosts: shape.extraHosts ?? [],
  });
  await beforeConnect?.(server);
  await connectClients(l, port, shape, o);
  return l;
}

/**
 * Starts a server and its clients for every system, each added to `live` (so the caller's
 * `finally` stops it even when its start failed); returns the ones that started.
 */
export async function startLive(
  refs: readonly SystemRef[],
  o: RunOptions,
  guard: Guard,
  live: Live[],
  scenario: ScenarioName,
  shape: FleetShape,
): Promise<Live[]> {
  const started: Live[] = [];
  for (const ref of refs) {
    await guard(ref.name, scenario, 0, async () => {
      started.push(await startFleet(ref, o, shape, live));
    });
  }
  return started;
}

/** Closes the clients and servers of `live`, then ends their processes. */
export async function stopAll(live: readonly Live[]): Promise<void> {
  for (const l of live) {
    await Promise.all(l.clients.map((c) => c.request("close", {}, 60_000).catch(() => {})));
    await l.server.request("close", {}, 60_000).catch(() => {});
    await Promise.all([...l.clients.map((c) => c.stop()), l.server.stop()]);
  }
}
