/**
 * A small seeded pseudo-random generator, so that a chaos run can be replayed from its seed.
 * Not for anything that needs unpredictability.
 */

/** A source of numbers in [0, 1). */
export type Random = () => number;

/** The largest seed; seeds are unsigned 32-bit integers. */
export const MAX_SEED = 0xffff_ffff;

/** mulberry32: a 32-bit state, period 2^32, good enough spread for fault injection. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seed for an independent stream derived from `seed` (murmur3's finaliser over the seed
 * mixed with the stream number), so that each kind of decision draws from its own sequence
 * and enabling one kind does not shift the others.
 */
export function deriveSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A draw from an exponential distribution of mean `mean`, in whole units, at least 1. */
export function exponential(random: Random, mean: number): number {
  return Math.max(1, Math.round(-mean * Math.log(1 - random())));
}

/** A fresh seed when none is given (not itself reproducible: it is reported so that it can be reused). */
export function randomSeed(): number {
  return Math.floor(Math.random() * (MAX_SEED + 1)) >>> 0;
}

/** True for an integer from 0 to 2^32 − 1. */
export function isSeed(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_SEED;
}
