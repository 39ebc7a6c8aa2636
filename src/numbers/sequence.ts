/**
 * The numbers a session sends, computed directly from (session, position) rather than by
 * replaying a generator: value k is the k-th output of SplitMix64 whose state starts at the
 * session's seed. SplitMix64's state after k steps is `seed + k·γ`, so any position costs the
 * same few multiplications, sessions share nothing, and the same uuid always gives the same
 * numbers (across restarts too).
 */
import { randomInt } from "node:crypto";

/** The seed's checksum modulus. */
export const CHECKSUM_MOD = 123456;
/** The largest n a stateful session may ask for (the seed's `0xffff`). */
export const MAX_N = 0xffff;
/** The largest stateless value and CONTINUE argument (uint64). */
export const MAX_UINT64 = (1n << 64n) - 1n;

const GAMMA = 0x9e3779b97f4a7c15n;

/** SplitMix64's output function (Steele, Lea and Flood 2014). */
function mix64(state: bigint): bigint {
  let z = state & MAX_UINT64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MAX_UINT64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MAX_UINT64;
  return z ^ (z >> 31n);
}

/**
 * The seed of a session from its canonical uuid (lower-case, 36 characters). All 128 bits
 * count, so uuids differing in either half get unrelated sequences.
 */
export function sessionSeed(uuid: string): bigint {
  const hex = uuid.replaceAll("-", "");
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new TypeError(`not a canonical uuid: ${uuid}`);
  const hi = BigInt(`0x${hex.slice(0, 16)}`);
  const lo = BigInt(`0x${hex.slice(16)}`);
  return hi ^ mix64(lo);
}

/** Value k (1-based) of the session with this seed: a uint32, as the seed's `rand.Uint32()`. */
export function valueAt(seed: bigint, k: number): number {
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`position must be an integer ≥ 1, got ${k}`);
  return Number(mix64(seed + BigInt(k) * GAMMA) >> 32n);
}

/** The seed's checksum step: c = (c + (x mod 123456)) mod 123456. */
export function addToChecksum(checksum: number, x: number): number {
  return (checksum + (x % CHECKSUM_MOD)) % CHECKSUM_MOD;
}

/** The inverse of `addToChecksum`: the checksum before x was added. */
export function removeFromChecksum(checksum: number, x: number): number {
  return (checksum - (x % CHECKSUM_MOD) + CHECKSUM_MOD) % CHECKSUM_MOD;
}

/** The checksum over values 1..k of a session: O(k). */
export function checksumAt(seed: bigint, k: number): number {
  let c = 0;
  for (let i = 1; i <= k; i++) c = addToChecksum(c, valueAt(seed, i));
  return c;
}

/**
 * A stateless stream's first value: 1..255, as the seed's `rand.Intn(255)+1`. `random` (in
 * [0, 1), like Math.random) is for tests; the default draws from the crypto source.
 */
export function firstStatelessValue(random?: () => number): bigint {
  const i = random ? Math.floor(random() * 255) : randomInt(0, 255);
  return BigInt(1 + Math.min(254, Math.max(0, i)));
}

/** The stateless successor: x·3 with uint64 wrap-around. */
export function nextStatelessValue(x: bigint): bigint {
  return (x * 3n) & MAX_UINT64;
}
