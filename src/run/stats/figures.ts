import { BUCKETS, percentiles } from "./histogram.js";
import { KIND, type StatsData } from "./types.js";

/** One kind's figures over an interval (times in µs). */
export interface KindFigures {
  /** Events per second. */
  rate: number;
  n: number;
  min: number;
  max: number;
  /** In the order of the percentiles asked for. */
  p: number[];
}

/** What every reporter prints of one set of stats, so that the numbers agree everywhere. */
export interface Figures {
  /** total (QPS), read, write, commit (TPS). */
  total: KindFigures;
  read: KindFigures;
  write: KindFigures;
  commit: KindFigures;
  errors: number;
}

function kind(d: StatsData, k: number, seconds: number, ps: readonly number[]): KindFigures {
  const n = d.n[k] ?? 0;
  const dense = new Float64Array(BUCKETS);
  for (const [i, c] of d.buckets[k] ?? []) dense[i] = c;
  return {
    rate: seconds > 0 ? n / seconds : 0,
    n,
    min: n > 0 ? (d.min[k] ?? 0) : 0,
    max: n > 0 ? (d.max[k] ?? 0) : 0,
    // A bucket's bound can fall outside the exact min and max: the true percentile cannot.
    p: percentiles(dense, n, ps).map((v) =>
      n > 0 ? Math.min(d.max[k] ?? v, Math.max(d.min[k] ?? v, v)) : 0,
    ),
  };
}

/** The figures of `d` over `seconds`, with percentiles `ps` (ascending). */
export function figuresOf(d: StatsData, seconds: number, ps: readonly number[]): Figures {
  return {
    total: kind(d, KIND.TOTAL, seconds, ps),
    read: kind(d, KIND.READ, seconds, ps),
    write: kind(d, KIND.WRITE, seconds, ps),
    commit: kind(d, KIND.COMMIT, seconds, ps),
    errors: Object.values(d.errors).reduce((a, b) => a + b, 0),
  };
}

/** "P99", "P99.9", "P999" (Finch's name for 99.9). */
export function percentileName(p: number): string {
  return p === 99.9 ? "P999" : `P${p}`;
}

/** Finch's columns, in order, for percentiles `ps`. */
export function columns(ps: readonly number[]): string[] {
  const pn = ps.map(percentileName);
  return [
    "interval",
    "duration",
    "runtime",
    "clients",
    "QPS",
    "min",
    ...pn,
    "max",
    "r_QPS",
    "r_min",
    ...pn.map((p) => `r_${p}`),
    "r_max",
    "w_QPS",
    "w_min",
    ...pn.map((p) => `w_${p}`),
    "w_max",
    "TPS",
    "c_min",
    ...pn.map((p) => `c_${p}`),
    "c_max",
    "errors",
    "compute",
  ];
}

const int = (x: number): string => String(Math.round(x));

/** One row of Finch's columns. */
export function row(
  o: { interval: number; seconds: number; runtimeS: number; clients: number; compute: string },
  f: Figures,
): string[] {
  const k = (x: KindFigures): string[] => [int(x.rate), int(x.min), ...x.p.map(int), int(x.max)];
  return [
    String(o.interval),
    o.seconds.toFixed(1),
    o.runtimeS.toFixed(1),
    String(o.clients),
    ...k(f.total),
    ...k(f.read),
    ...k(f.write),
    ...k(f.commit),
    String(f.errors),
    o.compute,
  ];
}
