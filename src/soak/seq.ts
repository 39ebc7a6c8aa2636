/** Sequence checks of numbered messages per sender: each number exactly once, in order. */
export interface SeqCounts {
  received: number;
  /** A number seen again. */
  duplicated: number;
  /** A number skipped (arrived after a later one) or missing. */
  outOfOrder: number;
}

export const newSeq = (): SeqCounts => ({ received: 0, duplicated: 0, outOfOrder: 0 });

/** Per sender: the highest number received, and the numbers received lately (a late one is told from a repeat). */
export type SeqState = Map<string, { max: number; got: Set<number> }>;

/**
 * Counts `n` from `key`: a number received before is duplicated; one that arrives after a
 * higher one (late), or past a gap, is out of order. Numbers more than 10,000 below the highest
 * are forgotten, so the state stays bounded.
 */
export function checkSeq(c: SeqCounts, state: SeqState, key: string, n: number): void {
  c.received++;
  let s = state.get(key);
  if (s === undefined) {
    s = { max: 0, got: new Set() };
    state.set(key, s);
  }
  if (s.got.has(n)) {
    c.duplicated++;
    return;
  }
  s.got.add(n);
  if (n < s.max) {
    c.outOfOrder++;
    return;
  }
  if (n !== s.max + 1) c.outOfOrder++;
  s.max = n;
  if (s.got.size > 20_000) for (const k of s.got) if (k < n - 10_000) s.got.delete(k);
}
