import { BUCKETS, bucketOf } from "./histogram.js";
import { KIND, type Kind, type StatsData } from "./types.js";

/** Error codes one set of stats keeps apart; the rest are counted under "other". */
export const MAX_ERROR_CODES = 256;
const MAX_CODE_CHARS = 16;
const KINDS = 4;

/**
 * Statistics of one trx (or of all) over one interval, mutable: a histogram, exact min, max and
 * count per kind, and errors by code. Recording allocates nothing; `combine` copies (it never
 * keeps a reference to what it is given, so a reused accumulator cannot alias another).
 */
export class Accumulator {
  readonly counts: Float64Array[] = Array.from({ length: KINDS }, () => new Float64Array(BUCKETS));
  readonly min = [0, 0, 0, 0];
  readonly max = [0, 0, 0, 0];
  readonly n = [0, 0, 0, 0];
  readonly errors = new Map<string, number>();

  /** One event; READ, WRITE and COMMIT count in TOTAL too. */
  add(kind: Kind, us: number): void {
    this.#one(kind, us);
    if (kind !== KIND.TOTAL) this.#one(KIND.TOTAL, us);
  }

  addError(code: string, count = 1): void {
    const key = this.errors.has(code) || this.errors.size < MAX_ERROR_CODES ? code : "other";
    this.errors.set(key, (this.errors.get(key) ?? 0) + count);
  }

  #one(k: number, us: number): void {
    this.counts[k]![bucketOf(us)]!++;
    if (this.n[k] === 0 || us < this.min[k]!) this.min[k] = us;
    if (us > this.max[k]!) this.max[k] = us;
    this.n[k]!++;
  }

  get empty(): boolean {
    return this.n[KIND.TOTAL] === 0 && this.errors.size === 0;
  }

  /** Adds `o` to this: min only from kinds with events (Finch took 0 from empty parts). */
  combine(o: Accumulator): void {
    for (let k = 0; k < KINDS; k++) {
      const on = o.n[k]!;
      if (on === 0) continue;
      const mine = this.counts[k]!;
      const theirs = o.counts[k]!;
      for (let i = 0; i < BUCKETS; i++) if (theirs[i] !== 0) mine[i]! += theirs[i]!;
      if (this.n[k] === 0 || o.min[k]! < this.min[k]!) this.min[k] = o.min[k]!;
      if (o.max[k]! > this.max[k]!) this.max[k] = o.max[k]!;
      this.n[k]! += on;
    }
    for (const [code, c] of o.errors) this.addError(code, c);
  }

  reset(): void {
    for (let k = 0; k < KINDS; k++) {
      if (this.n[k] !== 0) this.counts[k]!.fill(0);
      this.min[k] = 0;
      this.max[k] = 0;
      this.n[k] = 0;
    }
    this.errors.clear();
  }

  /** The wire form: each histogram as its non-empty buckets. */
  toData(): StatsData {
    const buckets = this.counts.map((c, k) => {
      const out: Array<[number, number]> = [];
      if (this.n[k] === 0) return out;
      for (let i = 0; i < BUCKETS; i++) if (c[i] !== 0) out.push([i, c[i]!]);
      return out;
    });
    return {
      buckets,
      min: [...this.min],
      max: [...this.max],
      n: [...this.n],
      errors: Object.fromEntries(this.errors),
    };
  }

  /** Adds stats in their wire form (checked by `checkStats`): no dense copy of them is made. */
  addData(d: StatsData): void {
    for (let k = 0; k < KINDS; k++) {
      const on = d.n[k]!;
      if (on === 0) continue;
      const mine = this.counts[k]!;
      for (const [i, c] of d.buckets[k]!) mine[i]! += c;
      if (this.n[k] === 0 || d.min[k]! < this.min[k]!) this.min[k] = d.min[k]!;
      if (d.max[k]! > this.max[k]!) this.max[k] = d.max[k]!;
      this.n[k]! += on;
    }
    for (const code in d.errors) this.addError(code, d.errors[code]!);
  }

  /** Stats from the wire, checked, as an accumulator. */
  static fromData(d: unknown, what = "stats"): Accumulator {
    const a = new Accumulator();
    a.addData(checkStats(d, what));
    return a;
  }
}

/**
 * Stats from the wire (from another instance), every shape and bound checked, copied (nothing
 * of the input is kept). Throws a precise Error naming what is wrong.
 */
export function checkStats(d: unknown, what = "stats"): StatsData {
  if (d === null || typeof d !== "object") throw new Error(`${what}: not an object`);
  const s = d as Record<string, unknown>;
  const out: StatsData = { buckets: [], min: [], max: [], n: [], errors: {} };
  for (const key of ["min", "max", "n"] as const) {
    const arr = s[key];
    if (!Array.isArray(arr) || arr.length !== KINDS || !arr.every(isCount))
      throw new Error(`${what}.${key}: 4 non-negative numbers`);
    out[key] = [...(arr as number[])];
  }
  if (!Array.isArray(s.buckets) || s.buckets.length !== KINDS) throw new Error(`${what}.buckets: 4 lists`);
  for (let k = 0; k < KINDS; k++) {
    const list = s.buckets[k] as unknown;
    if (!Array.isArray(list) || list.length > BUCKETS)
      throw new Error(`${what}.buckets[${k}]: at most ${BUCKETS} entries`);
    const copy: Array<[number, number]> = [];
    let sum = 0;
    let last = -1;
    for (const e of list as unknown[]) {
      if (!Array.isArray(e) || e.length !== 2)
        throw new Error(`${what}.buckets[${k}]: entries are [bucket, count]`);
      const i = e[0] as unknown;
      const c = e[1] as unknown;
      if (!Number.isInteger(i) || (i as number) <= last || (i as number) >= BUCKETS || !isCount(c))
        throw new Error(`${what}.buckets[${k}]: bucket indexes ascending in 0..${BUCKETS - 1}, counts ≥ 0`);
      last = i as number;
      copy.push([last, c as number]);
      sum += c as number;
    }
    if (sum !== out.n[k])
      throw new Error(`${what}.buckets[${k}]: ${sum} events in the buckets, n says ${out.n[k]}`);
    out.buckets.push(copy);
  }
  if (s.errors === null || typeof s.errors !== "object" || Array.isArray(s.errors))
    throw new Error(`${what}.errors: an object`);
  const errors = Object.entries(s.errors as Record<string, unknown>);
  if (errors.length > MAX_ERROR_CODES) throw new Error(`${what}.errors: at most ${MAX_ERROR_CODES} codes`);
  for (const [code, c] of errors) {
    if (code.length === 0 || code.length > MAX_CODE_CHARS || !isCount(c))
      throw new Error(`${what}.errors: codes of 1 to ${MAX_CODE_CHARS} characters, counts ≥ 0`);
    out.errors[code] = c as number;
  }
  return out;
}

function isCount(v: unknown): boolean {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
}
