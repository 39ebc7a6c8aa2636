import pino from "pino";
import pretty from "pino-pretty";
import type { Logger } from "../internal/logger.js";

export interface LogOptions {
  level: string;
  trace: boolean;
  /** Force JSON lines even on a terminal. */
  json?: boolean;
}

/**
 * The CLI's logger, on standard error: human-readable on a terminal, JSON lines otherwise.
 * `--trace` lowers the level to `trace`, which logs every frame in both directions.
 */
export function createCliLogger(o: LogOptions, name: string): Logger {
  const level = o.trace ? "trace" : o.level;
  const tty = process.stderr.isTTY === true && o.json !== true;
  const stream = tty
    ? pretty({
        destination: 2,
        sync: true,
        colorize: true,
        translateTime: "HH:MM:ss.l",
        ignore: "pid,hostname",
      })
    : pino.destination({ fd: 2, sync: true });
  return pino({ name, level, base: { pid: process.pid } }, stream) as unknown as Logger;
}
