/**
 * Frames and bytes through the links of one transport kind: plain numbers that transports
 * increment, summed up only when someone reads them (a metrics scrape).
 *
 * A frame counts once it is whole: received and split from the stream (in), or handed to the
 * connection (out). Bytes are the frames' own bytes, the same figure for the same frame on
 * every transport: neither the 4-byte length prefix of tcp/tls nor the WebSocket framing is
 * included. A frame refused as too large is not counted, nor one dropped because the link was
 * already closed.
 */
export class TrafficCounters {
  framesIn = 0;
  bytesIn = 0;
  framesOut = 0;
  bytesOut = 0;
}

/**
 * One `TrafficCounters` per transport kind ("ws", "wss", "tcp", "tls", "memory"), shared by
 * every transport that is given it (`TransportOptions.traffic`). A transport resolves its
 * counters once, when it is created (listeners once, when they open, so that their kind is
 * listed at zero from the start); the per-frame cost is two additions.
 */
export class TrafficStats {
  readonly #byKind = new Map<string, TrafficCounters>();

  /** The counters of `kind`, created at zero on first use. */
  for(kind: string): TrafficCounters {
    let counters = this.#byKind.get(kind);
    if (counters === undefined) {
      counters = new TrafficCounters();
      this.#byKind.set(kind, counters);
    }
    return counters;
  }

  /** Every kind seen so far with its counters (live objects, not copies), in order of first use. */
  entries(): Array<[string, TrafficCounters]> {
    return [...this.#byKind];
  }
}

/** Where transports count when nobody reads their counts: one object, not one per transport. */
const UNREAD = new TrafficCounters();

/** The counters of `kind` in `stats`, or counters that nobody reads when there are none. */
export function trafficCounters(stats: TrafficStats | undefined, kind: string): TrafficCounters {
  return stats?.for(kind) ?? UNREAD;
}
