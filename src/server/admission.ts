/**
 * Admission of new connections, checked when a connection arrives (before its handshake):
 * a global limit, a limit per address, and a bounded rate of new handshakes. A connection
 * refused for the rate is told when to come back, and the hints handed out are spread over
 * time at the admitted rate, so that a reconnect storm turns into a steady stream instead of
 * coming back all at once.
 */

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
}

export type Admitted = { ok: true; ip: string };
export type Refused = {
  ok: false;
  reason: "max_connections" | "max_connections_per_ip" | "handshake_rate";
  message: string;
  retryAfterMs: number;
};

/** The IP of a `host:port` or `[v6]:port` address (as transports report it). */
export function ipOf(remoteAddress: string): string {
  if (remoteAddress.startsWith("[")) {
    const end = remoteAddress.indexOf("]");
    return end > 0 ? remoteAddress.slice(1, end) : remoteAddress;
  }
  const colon = remoteAddress.lastIndexOf(":");
  return colon > 0 ? remoteAddress.slice(0, colon) : remoteAddress;
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

  /** Connections open now from `ip`. */
  openFrom(ip: string): number {
    return this.#perIp.get(ip) ?? 0;
  }

  /**
   * Decides on a new connection from `remoteAddress`. An admitted one counts as open until
   * `release(ip)` is called for it.
   */
  admit(remoteAddress: string, now: number): Admitted | Refused {
    const l = this.limits;
    const ip = ipOf(remoteAddress);
    if (l.maxConnections > 0 && this.#open >= l.maxConnections) {
      return this.#refuse("max_connections", `server is at its connection limit (${l.maxConnections})`, now);
    }
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (l.maxConnectionsPerIp > 0 && fromIp >= l.maxConnectionsPerIp) {
      return this.#refuse(
        "max_connections_per_ip",
        `too many connections from ${ip} (limit ${l.maxConnectionsPerIp})`,
        now,
      );
    }
    if (l.handshakesPerSecond > 0) {
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
    this.#perIp.set(ip, fromIp + 1);
    return { ok: true, ip };
  }

  /** An admitted connection from `ip` has closed. */
  release(ip: string): void {
    const n = this.#perIp.get(ip);
    if (n === undefined) return;
    if (n <= 1) this.#perIp.delete(ip);
    else this.#perIp.set(ip, n - 1);
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
