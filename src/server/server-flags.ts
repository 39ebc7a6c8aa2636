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

/** Where flag `name`'s initial value came from: as the options say, else whether it was given. */
function from(o: ServerOptions, name: string, given: boolean): FlagSource {
  return o.flagSources?.[name] ?? (given ? "option" : "default");
}

/**
 * The server's runtime flags: log level and trace (when the logger's level can be set, as
 * pino's can), heartbeat interval (applied to every session at once and pushed to agents),
 * resume window, default call timeout and drain timeout.
 *
 * Scope: log level and trace are each server's own (one server is debugged at a time, and
 * tracing every server of a fleet at once would flood their logs). The others are a policy of
 * the fleet, `cluster` flags: agents and their sessions move between servers (failover,
 * handoff on drain), so their heartbeat interval and resume window must not depend on which
 * server they reach; a call's default deadline must not depend on which server relays it; and
 * a rolling restart drains every server alike.
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
      source: from(o, "log-level", o.logLevelGiven === true),
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
      source: from(o, "trace", o.logLevelGiven === true),
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
    scope: "cluster",
    get: () => limits.heartbeatIntervalMs,
    apply: (ms) => {
      limits.heartbeatIntervalMs = ms;
      limits.suspectAfterMs = Math.max(baseSuspect, Math.round(ms * 2.4));
      limits.deadAfterMs = Math.max(baseDead, ms * 6);
      server.pushConfig({ heartbeatIntervalMs: ms });
    },
    source: from(o, "heartbeat-interval", o.heartbeatIntervalMs !== undefined),
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
      scope: "cluster",
      get: () => server[field],
      apply: (ms) => {
        server[field] = ms;
      },
      source: from(o, name, o[field] !== undefined),
    });
  }
  return flags;
}
