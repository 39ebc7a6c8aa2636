/**
 * Admission of new connections, checked when a connection arrives (before its handshake):
 * a global limit, a limit per address, and a bounded rate of new handshakes. A connection
 * refused for the rate is told when to come back, and the hints handed out are spread over
 * time at the admitted rate, so that a reconnect storm turns into a steady stream instead of
 * coming back all at once. Addresses are counted by `addressKey`: an IPv6 client by its
 * network (a /64 by default), so that rotating source addresses does not escape the limit.
 */
import { addressKey, hostOf } from "../internal/address-key.js";

export interface AdmissionLimits {
  /** Connections open at once (handshaking or attached); 0 = no limit. */
  maxConnections: number;
  /** Connections open at once from one IP address; 0 = no limit. */
  maxConnectionsPerIp: number;
  /** New connections admitted per second, on average; 0 = no limit. */
  handshakesPerSecond: number;
  /** How many may arrive at once above the average rate. */
  handshakeBurst: number;
  /** Longest retry hint handed out. */
  maxRetryAfterMs: number;
  /** IPv6 addresses count per network of this many bits (see `addressKey`). */
  ipv6PrefixBits: number;
}

/** `key`: what the connection counts under (see `addressKey`); give it back to `release`. */
export type Admitted = { ok: true; key: string };
export type Refused = {
  ok: false;
  reason: "max_connections" | "max_connections_per_ip" | "handshake_rate";
  message: string;
  retryAfterMs: number;
};

/** The IP of a `host:port` or `[v6]:port` address (as transports report it), or of a bare IP. */
export function ipOf(remoteAddress: string): string {
  return hostOf(remoteAddress);
}

export class Admission {
  #open = 0;
  readonly #perIp = new Map<string, number>();
  #tokens: number;
  #refilledAt: number;
  /** Connections told to come back and not yet due: their hints are spaced by 1/rate. */
  #owed = 0;
  #owedAt: number;
  /** Refusals by reason, since start. */
  readonly refused = { max_connections: 0, max_connections_per_ip: 0, handshake_rate: 0 };

  constructor(
    readonly limits: AdmissionLimits,
    now: number,
    private readonly random: () => number = Math.random,
  ) {
    this.#tokens = limits.handshakeBurst;
    this.#refilledAt = now;
    this.#owedAt = now;
  }

  /** Connections open now. */
  get open(): number {
    return this.#open;
  }

  /** What connections from `address` (any form `addressKey` takes) count under. */
  keyOf(address: string): string {
    return addressKey(address, this.limits);
  }

  /** Connections open now under `key` (see `keyOf`). */
  openFrom(key: string): number {
    return this.#perIp.get(key) ?? 0;
  }

  /**
   * Decides on a new connection from `remoteAddress`. An admitted one counts as open until
   * `release(key)` is called with the key returned. With `rate: false` (an HTTP connection,
   * which is no handshake yet) only the connection limits apply.
   */
  admit(remoteAddress: string, now: number, { rate = true }: { rate?: boolean } = {}): Admitted | Refused {
    const l = this.limits;
    const key = this.keyOf(remoteAddress);
    if (l.maxConnections > 0 && this.#open >= l.maxConnections) {
      return this.#refuse("max_connections", `server is at its connection limit (${l.maxConnections})`, now);
    }
    const fromIp = this.#perIp.get(key) ?? 0;
    if (l.maxConnectionsPerIp > 0 && fromIp >= l.maxConnectionsPerIp) {
      return this.#refuse(
        "max_connections_per_ip",
        `too many connections from ${key} (limit ${l.maxConnectionsPerIp})`,
        now,
      );
    }
    if (rate && l.handshakesPerSecond > 0) {
      this.#refill(now);
      if (this.#tokens < 1) {
        return this.#refuse(
          "handshake_rate",
          `too many new connections (more than ${l.handshakesPerSecond}/s): retry later`,
          now,
        );
      }
      this.#tokens -= 1;
    }
    this.#open++;
    this.#perIp.set(key, fromIp + 1);
    return { ok: true, key };
  }

  /** An admitted connection has closed: `key` is the one `admit` returned. */
  release(key: string): void {
    const n = this.#perIp.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#perIp.delete(key);
    else this.#perIp.set(key, n - 1);
    this.#open--;
  }

  #refill(now: number): void {
    const l = this.limits;
    const elapsed = Math.max(0, now - this.#refilledAt);
    this.#refilledAt = now;
    this.#tokens = Math.min(l.handshakeBurst, this.#tokens + (elapsed * l.handshakesPerSecond) / 1000);
  }

  /**
   * The retry hint: each refusal takes the next free slot after those already handed out
   * (slots are 1/rate apart and fall due as time passes), with ±10 % jitter, capped.
   */
  #refuse(reason: Refused["reason"], message: string, now: number): Refused {
    this.refused[reason]++;
    const l = this.limits;
    const rate = l.handshakesPerSecond > 0 ? l.handshakesPerSecond : 1000;
    this.#owed = Math.max(0, this.#owed - ((now - this.#owedAt) * rate) / 1000);
    this.#owedAt = now;
    this.#owed += 1;
    const base = Math.max(100, (this.#owed * 1000) / rate);
    const retryAfterMs = Math.round(Math.min(l.maxRetryAfterMs, base * (0.9 + 0.2 * this.random())));
    return { ok: false, reason, message, retryAfterMs };
  }
}
