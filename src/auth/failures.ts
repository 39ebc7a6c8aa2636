import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";

export interface AuthFailureLimiterOptions {
  /** Failures per minute an address earns back. @default DEFAULTS.authFailuresPerMinute (10) */
  perMinute?: number;
  /** Failures an address may make in a row before it must wait. @default DEFAULTS.authFailureBurst (20) */
  burst?: number;
  /** Addresses tracked at most; beyond, the one that failed longest ago is forgotten. @default DEFAULTS.authFailureMaxAddresses (10 000) */
  maxAddresses?: number;
}

interface Bucket {
  /** Failures the address may still make, fractional while refilling. */
  tokens: number;
  /** When `tokens` was computed (ms). */
  at: number;
}

/** At most this many full buckets are dropped from the front per call, to keep calls O(1). */
const SWEEP_PER_CALL = 4;

/** An IPv4 address mapped into IPv6 counts as the IPv4 address. */
const normalise = (ip: string): string => (ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip);

/**
 * Failed authentications per IP address: a token bucket each (`burst` failures, refilled at
 * `perMinute`); an address whose bucket is full again is forgotten, so only addresses that
 * failed recently take memory, and never more than `maxAddresses`. Time comes only from the
 * `now` arguments.
 */
export class AuthFailureLimiter {
  readonly #perMinute: number;
  readonly #burst: number;
  readonly #maxAddresses: number;
  /** Map order is the order of the last failure: the first entry failed longest ago. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: AuthFailureLimiterOptions = {}) {
    const perMinute = options.perMinute ?? DEFAULTS.authFailuresPerMinute;
    const burst = options.burst ?? DEFAULTS.authFailureBurst;
    const maxAddresses = options.maxAddresses ?? DEFAULTS.authFailureMaxAddresses;
    const bad = (what: string): never => {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `AuthFailureLimiter: ${what}`);
    };
    if (!(Number.isFinite(perMinute) && perMinute > 0)) bad(`perMinute must be above 0, not ${perMinute}`);
    if (!(Number.isFinite(burst) && burst >= 1)) bad(`burst must be at least 1, not ${burst}`);
    if (!(Number.isSafeInteger(maxAddresses) && maxAddresses >= 1))
      bad(`maxAddresses must be a whole number ≥ 1, not ${maxAddresses}`);
    this.#perMinute = perMinute;
    this.#burst = burst;
    this.#maxAddresses = maxAddresses;
  }

  /** Addresses currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /** ms this address must wait before it may try again (0: it may try now). */
  check(ip: string, now: number): number {
    this.#sweep(now);
    const key = normalise(ip);
    const b = this.#buckets.get(key);
    if (b === undefined) return 0;
    const tokens = this.#refill(b, now);
    if (tokens >= this.#burst) {
      this.#buckets.delete(key);
      return 0;
    }
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 60_000) / this.#perMinute);
  }

  /** Records one failure from ip at now. */
  fail(ip: string, now: number): void {
    this.#sweep(now);
    const key = normalise(ip);
    const b = this.#buckets.get(key);
    const tokens = b === undefined ? this.#burst : this.#refill(b, now);
    this.#buckets.delete(key);
    // Never below 0: an address refused by check() that fails anyway waits at most 1/perMinute.
    this.#buckets.set(key, { tokens: Math.max(0, tokens - 1), at: now });
    while (this.#buckets.size > this.#maxAddresses) {
      this.#buckets.delete(this.#buckets.keys().next().value as string);
    }
  }

  #refill(b: Bucket, now: number): number {
    // A clock that went back (or times from two clocks) restarts the refill from `now`, rather
    // than freezing it until the clock catches up: an address is never locked out for ever.
    if (now < b.at) b.at = now;
    const elapsed = now - b.at;
    return Math.min(this.#burst, b.tokens + (elapsed * this.#perMinute) / 60_000);
  }

  /** Forgets addresses at the front (failed longest ago) whose buckets are full again. */
  #sweep(now: number): void {
    let n = 0;
    for (const [key, b] of this.#buckets) {
      if (n++ >= SWEEP_PER_CALL || this.#refill(b, now) < this.#burst) return;
      this.#buckets.delete(key);
    }
  }
}
