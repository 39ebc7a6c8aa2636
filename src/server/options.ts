import type { Clock } from "../internal/clock.js";
import type { Logger } from "../internal/logger.js";
import type { MemoryNetwork } from "../transport/memory.js";
import type { TlsServerOptions } from "../transport/types.js";

/** Options of `createServer`. Every duration is in milliseconds; defaults in `DEFAULTS`. */
export interface ServerOptions {
  /** Name of this server, sent to peers in WELCOME. @default the host name */
  name?: string;
  /**
   * Where to listen, as URLs: `ws://host:port`, `wss://…`, `tcp://host:port`, `tls://…`,
   * `memory://name` (with `memory`). `wss`/`tls` need `tls`.
   * @default ["ws://0.0.0.0:33075", "tcp://0.0.0.0:33076"] (wss/tls when `tls` is given)
   */
  listen?: string[];
  /** Certificate and key for wss:// and tls:// listeners. */
  tls?: TlsServerOptions;
  /** The in-process network for memory:// listeners. */
  memory?: MemoryNetwork;
  logger?: Logger;
  clock?: Clock;
  /** @default 30000 */
  resumeWindowMs?: number;
  /** @default 5000 */
  heartbeatIntervalMs?: number;
  /** @default 12000 */
  suspectAfterMs?: number;
  /** @default 30000 */
  deadAfterMs?: number;
  /** @default 10000 */
  handshakeTimeoutMs?: number;
  /** Default deadline of calls made by the server. @default 10000 */
  callTimeoutMs?: number;
  /** @default 1048576 */
  maxFrameBytes?: number;
  /** @default 4096 */
  replayMaxFrames?: number;
  /** @default 16777216 */
  replayMaxBytes?: number;
  /** Calls one peer may have running on the server at once. @default 1000 */
  maxIncomingCalls?: number;
  /** How long departed agents stay listed as `offline`. @default 300000 */
  offlineRetentionMs?: number;
  /**
   * Accept operator connections (the CLI's `call`, `agents`) from non-loopback addresses.
   * Without authentication this lets anyone who can reach the port call every agent.
   * @default false
   */
  allowRemoteOperators?: boolean;
}
