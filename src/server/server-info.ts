/** A server as `muster servers` and `GET /api/servers` list it. */
export interface ServerInfo {
  name: string;
  /** Where agents reach it, as they dial. */
  urls: string[];
  /**
   * `self` (the server answering), `ready`, `draining` (taking no new sessions), `suspect`
   * (its record is late) or `dead` (silent too long: its agents are reported not connected).
   */
  state: "self" | "ready" | "draining" | "suspect" | "dead";
  /** Agents with a session on it. */
  agents: number;
  /** Its event loop's lag (p99 over the last refresh interval), in ms. */
  lagMs: number;
  version: string;
  /** Time since its record was last refreshed, as the answering server saw it (0 for self). */
  lastHeartbeatMs: number;
}
