// Coordinated runs: what the coordinator pays per merged interval, and what recording stats
// costs an instance per event.
//
// - merge: 100 instances × 10 trx send one report each per interval, as JSON on the wire (each
//   trx with realistic histograms: a few dozen non-empty buckets per kind); the coordinator
//   decodes, checks and merges them and hands the merged interval to a reporter. CPU time
//   (process.cpuUsage) per merged interval over many intervals, after a warm-up.
// - record: the cost of one `record()` (the hot path of every query), and of the two
//   performance.now() reads that time a query, per event, in ns.
import { IntervalCollector } from "../src/run/stats/collector.js";
import { Merger } from "../src/run/stats/merger.js";
import { KIND, type MergedInterval } from "../src/run/stats/types.js";

export interface RunsBench {
  instances: number;
  trx: number;
  intervals: number;
  /** CPU ms (user + system) per merged interval. */
  cpuMsPerInterval: number;
  /** Bytes of one instance's report as JSON. */
  reportBytes: number;
  /** ns per record() call, and per record() with the two clock reads around a query. */
  recordNs: number;
  recordWithClockNs: number;
  /** Stats recording in a real mysql2 loop (undefined without a database). */
  sql?: SqlOverhead;
}

/** A deterministic stream of latencies (µs), spread like a real workload's: mostly fast, a tail. */
function latencies(n: number, seed: number): Float64Array {
  const out = new Float64Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const u = (x >>> 0) / 2 ** 32;
    out[i] = 80 + 400 * u + (u > 0.99 ? 20_000 * u : 0);
  }
  return out;
}

export async function runRunsBench(o: { quick: boolean; log: (l: string) => void }): Promise<RunsBench> {
  const instances = o.quick ? 10 : 100;
  const trx = 10;
  const intervals = o.quick ? 5 : 60;
  const trxNames = Array.from({ length: trx }, (_, i) => `trx-${i}.sql`);
  const lat = latencies(4096, 7);
  // Each instance's reports, encoded as they cross the wire (built before timing).
  const wire: string[][] = [];
  for (let i = 0; i < instances; i++) {
    let now = 0;
    const c = new IntervalCollector(`i${i}`, trxNames, 16, () => now);
    const mine: string[] = [];
    for (let k = 1; k <= intervals; k++) {
      for (let e = 0; e < 2000; e++) {
        const us = lat[(e + i * 31 + k) & 4095]!;
        c.record(e % trx, e % 5 === 0 ? KIND.WRITE : e % 7 === 0 ? KIND.COMMIT : KIND.READ, us);
      }
      now += 1000;
      mine.push(JSON.stringify(c.collect(k === intervals)));
    }
    wire.push(mine);
  }
  let merged = 0;
  const sink = { report: (_m: MergedInterval) => void merged++, stop: async () => {} };
  const names = Array.from({ length: instances }, (_, i) => `i${i}`);
  const merger = new Merger(names, [sink]);
  const warm = Math.min(3, intervals - 1);
  const feed = (k: number): void => {
    for (let i = 0; i < instances; i++) {
      const why = merger.add(JSON.parse(wire[i]![k]!));
      if (why !== undefined) throw new Error(`report refused: ${why}`);
    }
  };
  for (let k = 0; k < warm; k++) feed(k);
  const cpu0 = process.cpuUsage();
  for (let k = warm; k < intervals; k++) feed(k);
  await merger.finish();
  const cpu = process.cpuUsage(cpu0);
  if (merged !== intervals) throw new Error(`${merged} intervals merged of ${intervals}`);
  const cpuMsPerInterval = (cpu.user + cpu.system) / 1000 / (intervals - warm);
  o.log(
    `runs: merging ${instances} instances × ${trx} trx: ${cpuMsPerInterval.toFixed(2)} ms CPU per interval`,
  );

  // record(): one collector, events over 10 trx.
  const n = o.quick ? 200_000 : 5_000_000;
  const col = new IntervalCollector("bench", trxNames, 1);
  let t0 = performance.now();
  for (let e = 0; e < n; e++) col.record(e % trx, KIND.READ, lat[e & 4095]!);
  const recordNs = ((performance.now() - t0) * 1e6) / n;
  t0 = performance.now();
  for (let e = 0; e < n; e++) {
    const a = performance.now();
    col.record(e % trx, KIND.READ, (performance.now() - a) * 1000 + lat[e & 4095]!);
  }
  const recordWithClockNs = ((performance.now() - t0) * 1e6) / n;
  if (col.collect(true).total.n[KIND.TOTAL] !== 2 * n) throw new Error("record() lost events");
  o.log(
    `runs: record() ${recordNs.toFixed(1)} ns per event, ${recordWithClockNs.toFixed(1)} ns with the query's clock reads`,
  );
  const sql = await runSqlOverhead(o);
  return {
    ...(sql !== undefined && { sql }),
    instances,
    trx,
    intervals,
    cpuMsPerInterval,
    reportBytes: Buffer.byteLength(wire[0]![intervals - 1]!),
    recordNs,
    recordWithClockNs,
  };
}

export interface SqlOverhead {
  queries: number;
  /** Queries per second of a bare mysql2 loop, and of the same loop timing and recording each. */
  bareQps: number;
  recordedQps: number;
  /** (bare − recorded) / bare, in %: the target is under 5 %. */
  overheadPct: number;
}

/**
 * What stats recording costs a real query loop: point selects through mysql2 (one connection,
 * prepared), bare and with muster's timing and `record()`, interleaved A/B three times; the
 * medians compared. Undefined (with the reason logged) when no MySQL-compatible server answers.
 */
export async function runSqlOverhead(o: {
  quick: boolean;
  log: (l: string) => void;
}): Promise<SqlOverhead | undefined> {
  const { default: mysql } = await import("mysql2/promise");
  const root = { host: "127.0.0.1", port: 3306, user: "root", password: "" };
  let conn: Awaited<ReturnType<typeof mysql.createConnection>>;
  try {
    conn = await mysql.createConnection({ ...root, connectTimeout: 3000 });
  } catch (err) {
    o.log(
      `runs: no MySQL-compatible server on 127.0.0.1:3306 (${(err as Error).message}): the recording overhead is not measured`,
    );
    return undefined;
  }
  const db = `muster_bench_${process.pid}`;
  const queries = o.quick ? 2000 : 20_000;
  try {
    await conn.query(`CREATE DATABASE ${db}`);
    await conn.query(`CREATE TABLE ${db}.t (id INT PRIMARY KEY, c VARCHAR(100) NOT NULL)`);
    const rows = Array.from({ length: 1000 }, (_, i) => `(${i + 1}, '${"x".repeat(50)}')`).join(",");
    await conn.query(`INSERT INTO ${db}.t VALUES ${rows}`);
    const sql = `SELECT c FROM ${db}.t WHERE id = ?`;
    const col = new IntervalCollector("bench", ["t.sql"], 1);
    const bare = async (): Promise<number> => {
      const t0 = performance.now();
      for (let i = 0; i < queries; i++) await conn.execute(sql, [(i % 1000) + 1]);
      return queries / ((performance.now() - t0) / 1000);
    };
    const recorded = async (): Promise<number> => {
      const t0 = performance.now();
      for (let i = 0; i < queries; i++) {
        const q0 = performance.now();
        await conn.execute(sql, [(i % 1000) + 1]);
        col.record(0, KIND.READ, Math.round((performance.now() - q0) * 1000));
      }
      return queries / ((performance.now() - t0) / 1000);
    };
    await bare(); // warm-up: the prepared statement, the buffer pool
    const a: number[] = [];
    const b: number[] = [];
    for (let k = 0; k < 3; k++) {
      a.push(await bare());
      b.push(await recorded());
    }
    if (col.collect(true).total.n[KIND.TOTAL] !== 3 * queries) throw new Error("recorded events lost");
    const median = (x: number[]): number => [...x].sort((p, q) => p - q)[1]!;
    const bareQps = median(a);
    const recordedQps = median(b);
    const overheadPct = ((bareQps - recordedQps) / bareQps) * 100;
    o.log(
      `runs: mysql2 point selects ${Math.round(bareQps)}/s bare, ${Math.round(recordedQps)}/s recorded: ${overheadPct.toFixed(1)} % overhead`,
    );
    return { queries, bareQps, recordedQps, overheadPct };
  } finally {
    await conn.query(`DROP DATABASE IF EXISTS ${db}`).catch(() => {});
    await conn.end();
  }
}

export function renderRuns(r: RunsBench): string {
  return [
    "| measure | value |",
    "|---|---|",
    `| coordinator CPU per merged interval (${r.instances} instances × ${r.trx} trx, JSON decode + checks + merge) | ${r.cpuMsPerInterval.toFixed(2)} ms |`,
    `| one instance's report (${r.trx} trx) on the wire | ${(r.reportBytes / 1024).toFixed(1)} KiB |`,
    `| \`record()\` per event | ${r.recordNs.toFixed(1)} ns |`,
    `| \`record()\` and the two clock reads that time a query | ${r.recordWithClockNs.toFixed(1)} ns |`,
    ...(r.sql === undefined
      ? ["| stats recording vs a bare mysql2 loop | not measured: no MySQL-compatible server |"]
      : [
          `| mysql2 point selects, one connection, bare | ${Math.round(r.sql.bareQps)} /s |`,
          `| the same loop, each query timed and recorded | ${Math.round(r.sql.recordedQps)} /s |`,
          `| stats recording overhead (target < 5 %) | ${r.sql.overheadPct.toFixed(1)} % ${r.sql.overheadPct < 5 ? "(met)" : "(MISSED)"} |`,
        ]),
  ].join("\n");
}
