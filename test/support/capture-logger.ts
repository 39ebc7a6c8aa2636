import type { Logger } from "../../src/internal/logger.js";

/** One line a capturing logger kept. */
export interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps every line in `lines`, for checking what was said. */
export function captureLogger(lines: LogLine[], enabled: (level: string) => boolean = () => true): Logger {
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      if (typeof obj === "string") lines.push({ level, obj: {}, msg: obj });
      else lines.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? "" });
    };
  const logger: Logger = {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    isLevelEnabled: enabled,
    child: () => logger,
  };
  return logger;
}
