import pino from "pino";
import pretty from "pino-pretty";
import type { Logger } from "../internal/logger.js";

export interface LogOptions {
  level: string;
  trace: boolean;
  /** Force JSON lines even on a terminal. */
  json?: boolean;
  /** Write JSON lines to this file instead of standard error; reopened by `reopenLogFiles()`. */
  file?: string;
}

/** The log files open in this process, to reopen after an external rotation. */
const logFiles = new Set<{ reopen(): void; file: string }>();

/**
 * Reopens every log file at its path: after a rotation renamed the file, lines go to a fresh
 * file under the old name. Writes are synchronous, so every line written before this call is in
 * the renamed file and every line after it in the new one: none is lost. Returns how many files
 * were reopened.
 */
export function reopenLogFiles(): number {
  for (const f of logFiles) f.reopen();
  return logFiles.size;
}

/**
 * The CLI's logger, on standard error: human-readable on a terminal, JSON lines otherwise.
 * `--trace` lowers the level to `trace`, which logs every frame in both directions.
 */
export function createCliLogger(o: LogOptions, name: string): Logger {
  const level = o.trace ? "trace" : o.level;
  if (o.file !== undefined) {
    const dest = pino.destination({ dest: o.file, sync: true, mkdir: true });
    const entry = { file: o.file, reopen: () => dest.reopen() };
    logFiles.add(entry);
    if (logFiles.size === 1) {
      // SIGHUP asks a daemon to reopen its logs (logrotate's postrotate). Without a log file it
      // keeps its default meaning.
      process.on("SIGHUP", () => {
        reopenLogFiles();
      });
    }
    return pino({ name, level, base: { pid: process.pid } }, dest) as unknown as Logger;
  }
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
