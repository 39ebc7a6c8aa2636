// Statistics of runs: Finch's histogram layout and percentiles, recording and merging with
// Finch's bugs fixed (min from empty parts, aliasing, late intervals dropped, trailing interval
// lost), hostile reports refused, and the reporters' output.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Accumulator } from "../src/run/stats/accumulator.js";
import { IntervalCollector } from "../src/run/stats/collector.js";
import { bucketHigh, bucketOf, percentiles } from "../src/run/stats/histogram.js";
import { Merger } from "../src/run/stats/merger.js";
import { createReporters, StdoutReporter } from "../src/run/stats/reporters.js";
import { type IntervalReport, KIND, type MergedInterval, type Reporter } from "../src/run/stats/types.js";

describe("histogram (MySQL 8 performance_schema layout, as Finch)", () => {
  it("buckets: under 10 µs in 0, ×1.047 each after, everything past the end in 449", () => {
    assert.equal(bucketOf(0), 0);
    assert.equal(bucketOf(9.99), 0);
    assert.equal(bucketOf(10), 1);
    assert.equal(bucketOf(10.4), 1);
    assert.equal(bucketOf(10.48), 2);
    assert.equal(bucketOf(1_000_000), 250);
    assert.equal(bucketOf(1e12), 449);
    assert.ok(Math.abs(bucketHigh(1) - 10.471285480508996) < 1e-9);
    for (const us of [10, 55, 999, 12_345, 3_000_000])
      assert.ok(
        us < bucketHigh(bucketOf(us)) && us >= bucketHigh(bucketOf(us) - 1) - 1e-6,
        `${us} µs in its bucket`,
      );
  });

  it("percentiles land in the bucket of the brute-force rank, as its upper bound or the midpoint below", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5_000_000 }), { minLength: 1, maxLength: 400 }),
        (values) => {
          const counts = new Float64Array(450);
          for (const v of values) counts[bucketOf(v)]!++;
          const ps = [50, 95, 99, 99.9];
          const got = percentiles(counts, values.length, ps);
          const sorted = [...values].sort((a, b) => a - b);
          ps.forEach((p, j) => {
            const rank = Math.max(1, Math.ceil((p / 100) * values.length));
            const b = bucketOf(sorted[rank - 1]!);
            const hi = bucketHigh(b);
            const mid = b > 0 ? (hi + bucketHigh(b - 1)) / 2 : hi;
            assert.ok(
              Math.abs(got[j]! - hi) < 1e-6 || Math.abs(got[j]! - mid) < 1e-6,
              `P${p}: ${got[j]} vs bucket ${b}`,
            );
          });
        },
      ),
      { numRuns: 200 },
    );
    assert.deepEqual(percentiles(new Float64Array(450), 0, [99]), [0], "no events: 0");
  });
});

function report(
  instance: string,
  interval: number,
  o: { reads?: number[]; writes?: number[]; final?: boolean; errors?: Record<string, number> } = {},
): IntervalReport {
  const a = new Accumulator();
  for (const us of o.reads ?? []) a.add(KIND.READ, us);
  for (const us of o.writes ?? []) a.add(KIND.WRITE, us);
  for (const [code, n] of Object.entries(o.errors ?? {})) a.addError(code, n);
  const d = a.toData();
  return {
    instance,
    interval,
    startMs: 1_000_000 + (interval - 1) * 1000,
    endMs: 1_000_000 + interval * 1000,
    runtimeS: interval,
    clients: 2,
    total: d,
    trx: { "t.sql": a.toData() },
    ...(o.final && { final: true }),
  };
}

function capture(): { merged: MergedInterval[]; stops: number; reporter: Reporter } {
  const c = {
    merged: [] as MergedInterval[],
    stops: 0,
    reporter: {
      report: (m: MergedInterval) => c.merged.push(m),
      stop: async () => {
        c.stops++;
      },
    },
  };
  return c;
}

describe("merging", () => {
  it("counts add up; min comes only from instances with events of that kind (Finch's r_min/w_min bug)", async () => {
    const c = capture();
    const m = new Merger(["a", "b"], [c.reporter]);
    assert.equal(m.add(report("a", 1, { reads: [200, 300], final: true })), undefined);
    assert.equal(m.add(report("b", 1, { writes: [900, 50], final: true })), undefined);
    await m.finish();
    assert.equal(c.merged.length, 1);
    const t = c.merged[0]!.combined.total;
    assert.deepEqual(t.n, [2, 2, 0, 4]);
    assert.equal(t.min[KIND.READ], 200, "read min from a, not 0 from b's empty reads");
    assert.equal(t.min[KIND.WRITE], 50);
    assert.equal(t.min[KIND.TOTAL], 50);
    assert.equal(t.max[KIND.TOTAL], 900);
    assert.equal(c.merged[0]!.combined.clients, 4);
    assert.equal(c.merged[0]!.final, true);
    assert.equal(c.stops, 1);
  });

  it("no aliasing: changing a report after it was added changes nothing merged", async () => {
    const c = capture();
    const m = new Merger(["a"], [c.reporter]);
    const r = report("a", 1, { reads: [100], final: true });
    m.add(r);
    r.total.n[KIND.TOTAL] = 999;
    r.total.buckets[KIND.TOTAL]!.push([400, 5]);
    await m.finish();
    assert.equal(c.merged[0]!.combined.total.n[KIND.TOTAL], 1);
    assert.equal(c.merged[0]!.instances[0]!.total.n[KIND.TOTAL], 1);
  });

  it("a report one interval late is merged into its interval, not dropped", () => {
    const c = capture();
    const m = new Merger(["a", "b"], [c.reporter]);
    m.add(report("a", 1, { reads: [100] }));
    m.add(report("a", 2, { reads: [100] }));
    assert.equal(c.merged.length, 0, "interval 1 waits for b");
    m.add(report("b", 1, { reads: [100, 100] }));
    assert.equal(c.merged.length, 1);
    assert.equal(c.merged[0]!.combined.total.n[KIND.TOTAL], 3);
    assert.deepEqual(c.merged[0]!.missing, []);
  });

  it("an instance two intervals behind: its interval is reported without it, and its late report is counted, not merged twice", () => {
    const c = capture();
    const m = new Merger(["a", "b"], [c.reporter]);
    for (const i of [1, 2, 3]) m.add(report("a", i, { reads: [100] }));
    assert.equal(c.merged.length, 1);
    assert.deepEqual(c.merged[0]!.missing, ["b"]);
    assert.match(m.add(report("b", 1, { reads: [100] })) ?? "", /came after it was reported/);
    assert.equal(m.late, 1);
  });

  it("a lost instance does not stall the others; finish reports the trailing partial interval and stops reporters once", async () => {
    const c = capture();
    const m = new Merger(["a", "b"], [c.reporter]);
    m.add(report("a", 1, { reads: [100] }));
    m.instanceLost("b");
    assert.equal(c.merged.length, 1, "interval 1 no longer waits for b");
    m.add(report("a", 2, { reads: [100] }));
    m.add(report("a", 3, { reads: [100, 100], final: true }));
    await m.finish();
    await m.finish();
    assert.deepEqual(
      c.merged.map((x) => x.interval),
      [1, 2, 3],
    );
    assert.equal(c.merged.at(-1)!.final, true);
    assert.equal(c.stops, 1);
  });

  it("hostile reports are refused with a reason, never thrown", () => {
    const m = new Merger(["a"], []);
    const good = report("a", 1, { reads: [100] });
    const cases: Array<[unknown, RegExp]> = [
      [null, /object/],
      ["x", /object/],
      [{ ...good, instance: "zz" }, /not an instance/],
      [{ ...good, interval: 2 ** 53 }, /interval/],
      [{ ...good, interval: 5 }, /after its interval 0/],
      [{ ...good, clients: Number.NaN }, /clients/],
      [{ ...good, endMs: 1 }, /before startMs/],
      [{ ...good, total: { ...good.total, n: [1, 0, 0, -1] } }, /non-negative/],
      [
        { ...good, total: { ...good.total, buckets: [good.total.buckets[0]!, [], [], [[9999, 1]]] } },
        /bucket indexes/,
      ],
      [
        {
          ...good,
          total: {
            ...good.total,
            buckets: [good.total.buckets[0]!, [], [], Array.from({ length: 451 }, (_, i) => [i, 0])],
          },
        },
        /at most 450/,
      ],
      [{ ...good, total: { ...good.total, n: [1, 0, 0, 5] } }, /n says 5/],
      [
        {
          ...good,
          total: {
            ...good.total,
            errors: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`e${i}`, 1])),
          },
        },
        /at most 256 codes/,
      ],
      [
        { ...good, trx: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`t${i}`, good.total])) },
        /at most 1000 trx/,
      ],
    ];
    for (const [bad, why] of cases)
      assert.match(m.add(bad) ?? "accepted", why, JSON.stringify(bad)?.slice(0, 80));
    assert.equal(m.add(good), undefined, "a good report after all that");
  });

  it("the collector numbers intervals, resets between them, and counts READ/WRITE/COMMIT in TOTAL too", () => {
    let now = 5000;
    const col = new IntervalCollector("i1", ["a.sql", "b.sql"], 3, () => now);
    col.record(0, KIND.READ, 100);
    col.record(1, KIND.COMMIT, 300);
    col.record(1, KIND.TOTAL, 50);
    col.error(1, "1213");
    now += 1000;
    const r1 = col.collect(false);
    assert.equal(r1.interval, 1);
    assert.deepEqual(r1.total.n, [1, 0, 1, 3]);
    assert.deepEqual(r1.trx["b.sql"]!.errors, { "1213": 1 });
    assert.equal(r1.endMs - r1.startMs, 1000);
    now += 500;
    const r2 = col.collect(true);
    assert.equal(r2.interval, 2);
    assert.deepEqual(r2.total.n, [0, 0, 0, 0], "nothing carried over");
    assert.equal(r2.final, true);
    assert.equal(r2.runtimeS, 1.5);
  });
});

describe("reporters", () => {
  const merged = (): MergedInterval => {
    const c = capture();
    const m = new Merger(["a", "b"], [c.reporter]);
    m.add(report("a", 1, { reads: [100, 200], writes: [1000], errors: { "1062": 2 } }));
    m.add(report("b", 1, { reads: [150] }));
    return c.merged[0]!;
  };

  it("stdout: Finch's columns, a row per instance and a combined row by default", () => {
    let out = "";
    const [r] = createReporters({}, { write: (s: string) => (out += s) });
    assert.ok(r instanceof StdoutReporter);
    r.report(merged());
    const lines = out.trim().split("\n");
    assert.match(
      lines[0]!,
      /^interval\s+duration\s+runtime\s+clients\s+QPS\s+min\s+P999\s+max\s+r_QPS\s+r_min\s+r_P999\s+r_max\s+w_QPS\s+w_min\s+w_P999\s+w_max\s+TPS\s+c_min\s+c_P999\s+c_max\s+errors\s+compute$/,
    );
    assert.equal(lines.length, 4, "header, a, b, combined");
    const combined = lines[3]!.split(/\s+/);
    assert.equal(combined[3], "4", "clients summed");
    assert.equal(combined[4], "4", "QPS: 4 events in 1 s");
    assert.equal(combined[5], "100", "min");
    assert.equal(combined.at(-3), "2", "errors");
    assert.equal(combined.slice(-2).join(" "), "(2 combined)", "compute");
  });

  it("csv refuses an existing file and writes the combined rows; json lines parse", async () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-rep-"));
    const taken = join(dir, "taken.csv");
    writeFileSync(taken, "keep me");
    assert.throws(
      () => createReporters({ csv: { file: taken, percentiles: [99] } }, { write: () => {} }),
      /exists: give a new file/,
    );
    assert.equal(readFileSync(taken, "utf8"), "keep me");
    const csv = join(dir, "out.csv");
    const json = join(dir, "out.jsonl");
    const rs = createReporters(
      { csv: { file: csv, percentiles: [95, 99] }, json: { file: json } },
      { write: () => {} },
    );
    assert.equal(rs.length, 2, "no stdout when only files are asked for");
    for (const r of rs) r.report(merged());
    for (const r of rs) await r.stop();
    const rows = readFileSync(csv, "utf8").trim().split("\n");
    assert.equal(rows.length, 2);
    assert.match(rows[0]!, /^interval,duration,runtime,clients,QPS,min,P95,P99,max,/);
    const lines = readFileSync(json, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    assert.equal((lines[0]!.combined as { total: { n: number } }).total.n, 4);
    assert.deepEqual(lines[1], { summary: { intervals: 1, events: 4, errors: 2, seconds: 1 } });
    assert.ok(existsSync(csv));
  });
});
