import { createHash } from "node:crypto";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import type { AuthKey } from "./keys.js";
import { checkTokenTimes, MAX_TOKEN_CHARS, type TokenClaims, verifyToken } from "./tokens.js";

export interface TokenVerifierOptions {
  /**
   * Successful verifications remembered; the least recently used is dropped beyond this
   * (0: remember none).
   * @default DEFAULTS.tokenCacheMaxEntries (10 000)
   */
  maxEntries?: number;
}

function copy(claims: TokenClaims): TokenClaims {
  const out: TokenClaims = { ...claims, labels: { ...claims.labels } };
  if (claims.methods !== undefined) out.methods = [...claims.methods];
  return out;
}

/**
 * verifyToken with a memory: the server verifies a token on every handshake and every resume,
 * and a reconnect storm presents the same tokens again and again. Successful verifications are
 * remembered by the SHA-256 of the token (the token itself is not kept) until the token
 * expires; its expiry is checked against `now` on every hit (with verifyToken's rule and
 * message), so a remembered token expires exactly when it would have without the memory. Failures are not remembered. Concurrent
 * verifications of one token share one signature check. Revocation is not this class's
 * business: check the claims' id against the revocation list after it.
 */
export class TokenVerifier {
  readonly key: AuthKey;
  readonly #maxEntries: number;
  /** Map order is use order: the first entry is the least recently used. */
  readonly #cache = new Map<string, TokenClaims>();
  readonly #pending = new Map<string, Promise<TokenClaims>>();
  /** Bumped by clear(), so that a verification running across it is not remembered. */
  #generation = 0;

  constructor(key: AuthKey, options: TokenVerifierOptions = {}) {
    const max = options.maxEntries ?? DEFAULTS.tokenCacheMaxEntries;
    if (!Number.isSafeInteger(max) || max < 0)
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `maxEntries must be a whole number ≥ 0, not ${max}`);
    this.key = key;
    this.#maxEntries = max;
  }

  /** Entries remembered. */
  get size(): number {
    return this.#cache.size;
  }

  /** Forgets every remembered verification; returns how many there were. */
  clear(): number {
    const n = this.#cache.size;
    this.#cache.clear();
    this.#generation++;
    return n;
  }

  /**
   * The claims of a token this cache remembers as valid, without verifying anything: undefined
   * when it is not remembered (verify it), the claims when it is and has not expired, and
   * verifyToken's `expired` error when it has. Costs one hash. A caller that must not spend a
   * signature check on an unknown credential (a rate-limited address) can still let a known
   * good one through.
   */
  lookup(token: string, now: number = Date.now()): TokenClaims | undefined {
    if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_CHARS) return undefined;
    const hash = createHash("sha256").update(token).digest("base64url");
    const hit = this.#cache.get(hash);
    if (hit === undefined) return undefined;
    this.#cache.delete(hash);
    const late = checkTokenTimes(hit.expiresAt, undefined, now);
    if (late !== undefined) throw late;
    this.#cache.set(hash, hit);
    return copy(hit);
  }

  /** Verifies a token as verifyToken does (same errors), remembering successes. */
  async verify(token: string, now: number = Date.now()): Promise<TokenClaims> {
    // Garbage is refused by verifyToken at once; there is no point hashing it.
    if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_CHARS)
      return this.verifyUncached(token, now);
    const hash = createHash("sha256").update(token).digest("base64url");
    const hit = this.#cache.get(hash);
    if (hit !== undefined) {
      this.#cache.delete(hash);
      const late = checkTokenTimes(hit.expiresAt, undefined, now);
      if (late !== undefined) throw late;
      this.#cache.set(hash, hit);
      return copy(hit);
    }
    let pending = this.#pending.get(hash);
    if (pending === undefined) {
      const generation = this.#generation;
      pending = this.verifyUncached(token, now)
        .then((claims) => {
          if (generation === this.#generation) this.#remember(hash, claims);
          return claims;
        })
        .finally(() => this.#pending.delete(hash));
      this.#pending.set(hash, pending);
    }
    const claims = await pending;
    // A verification started by another caller ran at its own `now`.
    const late = checkTokenTimes(claims.expiresAt, undefined, now);
    if (late !== undefined) throw late;
    return copy(claims);
  }

  /** One full verification (signature, claims, times); the cache's only way to verify. */
  protected verifyUncached(token: string, now: number): Promise<TokenClaims> {
    return verifyToken(this.key, token, now);
  }

  #remember(hash: string, claims: TokenClaims): void {
    if (this.#maxEntries === 0) return;
    this.#cache.set(hash, copy(claims));
    while (this.#cache.size > this.#maxEntries) {
      const oldest = this.#cache.keys().next().value as string;
      this.#cache.delete(oldest);
    }
  }
}
