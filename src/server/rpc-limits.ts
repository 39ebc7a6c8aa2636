import { DEFAULTS } from "../internal/defaults.js";
import { optionLimit } from "../internal/limits.js";
import type { ServerOptions } from "./options.js";

/** The server's bounds on what one peer's calls, streams, relays and refusals may cost it. */
export interface RpcLimits {
  /** Longest target expression accepted, in UTF-8 bytes. */
  readonly maxTargetBytes: number;
  /** Largest window the server holds for a stream it reads on a peer's behalf (a relay). */
  readonly maxStreamWindowBytes: number;
  /** Streams of one peer that broke flow control before its link is closed. */
  readonly streamViolationsBeforeClose: number;
  /** Relayed calls one operator may have in flight on one agent. */
  readonly maxRelayedCallsPerAgent: number;
  /** Warnings one peer causes that are written per interval; the rest are counted. */
  readonly refusalLogBurst: number;
  readonly refusalLogIntervalMs: number;
}

/** The limits from the server's options (INVALID_ARGUMENT for a value that would disable one). */
export function resolveRpcLimits(o: ServerOptions): RpcLimits {
  return Object.freeze({
    maxTargetBytes: optionLimit(o.maxTargetBytes, DEFAULTS.maxTargetBytes, "maxTargetBytes", 1),
    maxStreamWindowBytes: optionLimit(
      o.maxStreamWindowBytes,
      DEFAULTS.maxStreamWindowBytes,
      "maxStreamWindowBytes",
      1,
    ),
    streamViolationsBeforeClose: optionLimit(
      o.streamViolationsBeforeClose,
      DEFAULTS.streamViolationsBeforeClose,
      "streamViolationsBeforeClose",
      1,
    ),
    maxRelayedCallsPerAgent: optionLimit(
      o.maxRelayedCallsPerAgent,
      DEFAULTS.maxRelayedCallsPerAgent,
      "maxRelayedCallsPerAgent",
      1,
    ),
    refusalLogBurst: optionLimit(o.refusalLogBurst, DEFAULTS.refusalLogBurst, "refusalLogBurst"),
    refusalLogIntervalMs: optionLimit(
      o.refusalLogIntervalMs,
      DEFAULTS.refusalLogIntervalMs,
      "refusalLogIntervalMs",
      1,
    ),
  });
}
