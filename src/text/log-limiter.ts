import { DEFAULTS } from "../internal/defaults.js";
import { truncateForLog } from "../internal/log-safe.js";
import type { Logger } from "../internal/logger.js";

/** How much a text endpoint or service logs about its peers. */
export interface PeerLogLimits {
  /** Lines about one peer (one address) in a row. @default DEFAULTS.textLogBurst (10) */
  burst?: number;
  /** Lines about one peer earned back per second. @default DEFAULTS.textLogPerSecond (1) */
  perSecond?: number;
  /** Lines about all peers together in a row. @default DEFAULTS.textLogTotalBurst (100) */
  totalBurst?: number;
  /** Lines about all peers earned back per second. @default DEFAULTS.textLogTotalPerSecond (20) */
  totalPerSecond?: number;
  /** When nothing else carries the count of lines left out, it is logged this long after the first. @default DEFAULTS.textLogSummaryMs (10 s) */
  summaryMs?: number;
}

interface Bucket {
  tokens: number;
  at: number;
  suppressed: number;
}

/** Peers tracked at most; beyond, the oldest is forgotten (its count goes to the total). */
const MAX_PEERS = 1000;

/** The address of a peer as the text layer names it: `10.0.0.1:50112` → `10.0.0.1`. */
export function peerAddress(peer: string): string {
  return peer.replace(/:\d+$/, "");
}

/**
 * Logs what peers cause — refused lines, errors they report, handlers that failed — without
 * letting one peer, or all of them, fill the log: each address has a bucket of lines (and all
 * together one more); a line beyond them is counted, not written, and the count is added as
 * `suppressed` to the next line written about that peer, or logged on its own after
 * `summaryMs`. Every string value of a line is cut to 200 characters (`truncateForLog`).
 */
export class PeerLogLimiter {
  readonly #logger: Logger;
  readonly #burst: number;
  readonly #rate: number;
  readonly #total: Bucket;
  readonly #totalBurst: number;
  readonly #totalRate: number;
  readonly #summaryMs: number;
  readonly #peers = new Map<string, Bucket>();
  #forgotten = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #now: () => number;

  /** `now` (ms) is for tests. */
  constructor(logger: Logger, limits: PeerLogLimits = {}, now: () => number = () => performance.now()) {
    this.#logger = logger;
    this.#now = now;
    this.#burst = limits.burst ?? DEFAULTS.textLogBurst;
    this.#rate = limits.perSecond ?? DEFAULTS.textLogPerSecond;
    this.#totalBurst = limits.totalBurst ?? DEFAULTS.textLogTotalBurst;
    this.#totalRate = limits.totalPerSecond ?? DEFAULTS.textLogTotalPerSecond;
    this.#summaryMs = limits.summaryMs ?? DEFAULTS.textLogSummaryMs;
    this.#total = { tokens: this.#totalBurst, at: now(), suppressed: 0 };
  }

  /** Lines left out since they were last reported, all peers together. */
  get suppressed(): number {
    let n = this.#forgotten + this.#total.suppressed;
    for (const b of this.#peers.values()) n += b.suppressed;
    return n;
  }

  /** Logs `msg` at `level` about `peer`, unless that peer or all of them have logged too much lately. */
  log(level: "info" | "warn" | "error", peer: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.#now();
    const key = peerAddress(peer);
    let bucket = this.#peers.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, at: now, suppressed: 0 };
      this.#peers.set(key, bucket);
      if (this.#peers.size > MAX_PEERS) this.#forgetOldest();
    }
    refill(bucket, now, this.#burst, this.#rate);
    refill(this.#total, now, this.#totalBurst, this.#totalRate);
    if (bucket.tokens < 1 || this.#total.tokens < 1) {
      bucket.suppressed++;
      this.#scheduleSummary();
      return;
    }
    bucket.tokens--;
    this.#total.tokens--;
    const line = safeFields(fields);
    if (bucket.suppressed > 0) {
      line.suppressed = bucket.suppressed;
      bucket.suppressed = 0;
    }
    this.#logger[level](line, msg);
  }

  /** Logs the counts not reported yet, now. */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    let shown = 0;
    let others = this.#forgotten;
    for (const [peer, b] of this.#peers) {
      if (b.suppressed === 0) continue;
      if (shown < 20) {
        this.#logger.warn(
          { peer: truncateForLog(peer), suppressed: b.suppressed },
          "text log lines left out",
        );
        shown++;
      } else others += b.suppressed;
      b.suppressed = 0;
    }
    if (others > 0) this.#logger.warn({ peers: "others", suppressed: others }, "text log lines left out");
    this.#forgotten = 0;
    // Peers whose bucket is full again need not be remembered.
    const now = this.#now();
    for (const [peer, b] of this.#peers) {
      refill(b, now, this.#burst, this.#rate);
      if (b.tokens >= this.#burst) this.#peers.delete(peer);
    }
  }

  #scheduleSummary(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => this.flush(), this.#summaryMs);
    this.#timer.unref();
  }

  #forgetOldest(): void {
    const [oldest, b] = this.#peers.entries().next().value as [string, Bucket];
    this.#forgotten += b.suppressed;
    this.#peers.delete(oldest);
  }
}

function refill(b: Bucket, now: number, burst: number, perSecond: number): void {
  b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
  b.at = now;
}

/** A copy of `fields` with every string cut to a loggable length. */
function safeFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = typeof v === "string" ? truncateForLog(v) : v;
  return out;
}
