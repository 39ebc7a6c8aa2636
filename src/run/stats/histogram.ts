/**
 * Latency histograms in Finch's layout, which is MySQL 8.0 performance_schema's: 450 buckets,
 * the first for everything under 10 µs, then each 4.7 % wider than the one before (×1.0471285480508996),
 * the last taking everything beyond. This layout rather than HDR histograms: every instance's
 * histogram is the same fixed 450 counters, merged by adding them, and percentiles come out as
 * Finch (and performance_schema) report them, so figures compare with theirs.
 */
export const BUCKETS = 450;
export const BASE_US = 10;
export const FACTOR = 1.0471285480508996;
const LN_FACTOR = Math.log(FACTOR);

/** The bucket of a latency of `us` microseconds. */
export function bucketOf(us: number): number {
  if (!(us >= BASE_US)) return 0;
  const b = Math.floor(Math.log(us / BASE_US) / LN_FACTOR) + 1;
  return b >= BUCKETS ? BUCKETS - 1 : b;
}

/** The upper bound of bucket `i`, in µs (bucket 0: under 10 µs). */
export function bucketHigh(i: number): number {
  return BASE_US * FACTOR ** i;
}

/**
 * Percentiles of one histogram (`counts` of length BUCKETS, `n` events), as Finch computes
 * them: walk the buckets accumulating the share of events; at the first bucket whose cumulative
 * share reaches p, take its upper bound — or, when the integer parts of p and that share differ
 * (the bucket jumps past p), the midpoint with the previous bucket's. `ps` ascending.
 */
export function percentiles(counts: ArrayLike<number>, n: number, ps: readonly number[]): number[] {
  const out = new Array<number>(ps.length).fill(0);
  if (n <= 0) return out;
  let cum = 0;
  let j = 0;
  for (let i = 0; i < BUCKETS && j < ps.length; i++) {
    const c = counts[i] ?? 0;
    if (c === 0) continue;
    cum += c;
    const f = (cum / n) * 100;
    while (j < ps.length && f >= ps[j]!) {
      const high = bucketHigh(i);
      out[j] = Math.trunc(ps[j]!) !== Math.trunc(f) && i > 0 ? (high + bucketHigh(i - 1)) / 2 : high;
      j++;
    }
  }
  // Rounding can leave the last percentiles unmet by a hair: they are in the last bucket used.
  for (; j < ps.length; j++) out[j] = out[j - 1] ?? 0;
  return out;
}
