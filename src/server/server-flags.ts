import { DEFAULTS } from "../internal/defaults.js";
import type { Logger } from "../internal/logger.js";
import { booleanFlag, durationFlag, enumFlag, type FlagSource, type RuntimeFlags } from "./flags.js";
import type { ServerOptions } from "./options.js";

/** What the runtime flags change on their server. */
export interface FlagTarget {
  readonly logger: Logger;
  readonly sessionLimits: { heartbeatIntervalMs: number; suspectAfterMs: number; deadAfterMs: number };
  callTimeoutMs: number;
  resumeWindowMs: number;
  drainTimeoutMs: number;
  /** Tells every connected agent the new heartbeat interval. */
  pushConfig(config: { heartbeatIntervalMs: number }): void;
}

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
type Level = (typeof LEVELS)[number];

function from(given: unknown): FlagSource {
  return given === undefined ? "default" : "option";
}

/**
 * The server's runtime flags: log level and trace (when the logger's level can be set, as
 * pino's can), heartbeat interval (applied to every session at once and pushed to agents),
 * resume window, default call timeout and drain timeout.
 */
export function defineServerFlags(flags: RuntimeFlags, server: FlagTarget, o: ServerOptions): RuntimeFlags {
  const logger = server.logger as Logger & { level?: unknown };
  if (typeof logger.level === "string") {
    let before: Level = LEVELS.includes(logger.level as Level) ? (logger.level as Level) : "info";
    flags.define({
      name: "log-level",
      description: "least severe log level written",
      parse: enumFlag("log-level", LEVELS),
      get: () => logger.level as Level,
      apply: (v) => {
        logger.level = v;
      },
      source: "option",
    });
    flags.define({
      name: "trace",
      description:
        "log every frame in both directions (sets the log level to trace; off restores the level before)",
      parse: booleanFlag("trace"),
      get: () => logger.level === "trace",
      apply: (on) => {
        if (on && logger.level !== "trace") {
          before = logger.level as Level;
          logger.level = "trace";
        } else if (!on && logger.level === "trace") logger.level = before === "trace" ? "info" : before;
      },
      source: "option",
    });
  }
  const limits = server.sessionLimits;
  const baseSuspect = limits.suspectAfterMs;
  const baseDead = limits.deadAfterMs;
  flags.define({
    name: "heartbeat-interval",
    description:
      "PING interval on idle links; suspect and dead thresholds grow with it (2.4× and 6×); pushed to connected agents",
    unit: "ms",
    parse: durationFlag("heartbeat-interval", 100, 300_000),
    get: () => limits.heartbeatIntervalMs,
    apply: (ms) => {
      limits.heartbeatIntervalMs = ms;
      limits.suspectAfterMs = Math.max(baseSuspect, Math.round(ms * 2.4));
      limits.deadAfterMs = Math.max(baseDead, ms * 6);
      server.pushConfig({ heartbeatIntervalMs: ms });
    },
    source: from(o.heartbeatIntervalMs),
  });
  // Plain durations: a field of the server, read and written as it is.
  const durations: Array<
    [
      name: string,
      field: "resumeWindowMs" | "callTimeoutMs" | "drainTimeoutMs",
      min: number,
      max: number,
      description: string,
    ]
  > = [
    [
      "resume-window",
      "resumeWindowMs",
      1000,
      86_400_000,
      "how long a dropped session can be resumed (sessions detached now get the new window too)",
    ],
    ["call-timeout", "callTimeoutMs", 1, 3_600_000, "default deadline of calls that name none"],
    [
      "drain-timeout",
      "drainTimeoutMs",
      0,
      600_000,
      `how long calls in flight may run on at shutdown (default ${DEFAULTS.drainTimeoutMs} ms)`,
    ],
  ];
  for (const [name, field, min, max, description] of durations) {
    flags.define({
      name,
      description,
      unit: "ms",
      parse: durationFlag(name, min, max),
      get: () => server[field],
      apply: (ms) => {
        server[field] = ms;
      },
      source: from(o[field]),
    });
  }
  return flags;
}
