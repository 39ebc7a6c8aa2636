/** Samples (e.g. latencies in ms) kept whole, so percentiles are exact. */
export class Samples {
  #values: Float64Array;
  #n = 0;

  constructor(capacity = 1024) {
    this.#values = new Float64Array(capacity);
  }

  get count(): number {
    return this.#n;
  }

  add(v: number): void {
    if (this.#n === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.#n++] = v;
  }

  /** Percentiles by nearest rank, e.g. `[50, 90, 99]` → their values (NaN when empty). */
  percentiles(ps: readonly number[]): number[] {
    const sorted = this.#values.slice(0, this.#n).sort();
    return ps.map((p) => {
      if (sorted.length === 0) return Number.NaN;
      const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
      return sorted[rank]!;
    });
  }

  values(): number[] {
    return Array.from(this.#values.subarray(0, this.#n));
  }
}

/** Median of a list of numbers (NaN when empty). */
export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile of a list (NaN when empty). */
export function percentile(xs: readonly number[], p: number): number {
  const s = new Samples(Math.max(1, xs.length));
  for (const x of xs) s.add(x);
  return s.percentiles([p])[0]!;
}
