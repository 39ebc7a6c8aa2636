/**
 * Durations and byte rates as text, for schedules and the command line. Parsers throw a plain
 * `Error` whose message says what was wrong and what is accepted.
 */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const RATE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1000,
  kB: 1000,
  MB: 1_000_000,
  GB: 1_000_000_000,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

/** The longest duration accepted: what a timer can wait (about 24.8 days). */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const DURATION_HELP = "use a number and a unit: ms, s, m, h or d (e.g. 500ms, 3s, 1.5m)";
const RATE_HELP =
  "use a number and a unit in bytes per second: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), optionally followed by /s (e.g. 64KB/s, 1MB/s)";

/** Parses `500ms`, `3s`, `1.5m`, `2h`, `1d` into whole milliseconds (rounded). */
export function parseDurationText(text: string): number {
  const t = text.trim();
  const m = /^([+-]?)(\d+(?:\.\d+)?)([A-Za-z]*)$/.exec(t);
  if (!m) throw new Error(`"${text}" is not a duration: ${DURATION_HELP}`);
  if (m[1] === "-") throw new Error(`"${text}" is negative: a duration cannot be`);
  if (m[1] === "+") throw new Error(`"${text}" is not a duration: no sign allowed; ${DURATION_HELP}`);
  const unit = m[3]!;
  if (unit === "") throw new Error(`"${text}" has no unit: ${DURATION_HELP}`);
  const factor = DURATION_UNITS[unit];
  if (factor === undefined) throw new Error(`"${text}" has an unknown unit "${unit}": ${DURATION_HELP}`);
  const ms = Math.round(Number(m[2]) * factor);
  if (!(ms <= MAX_DURATION_MS)) throw new Error(`"${text}" is too long: at most ${MAX_DURATION_MS} ms`);
  return ms;
}

/** Parses `64KB/s`, `1MB/s`, `512KiB`, `100B/s` into whole bytes per second (at least 1). */
export function parseRateText(text: string): number {
  const t = text.trim();
  const m = /^([+-]?)(\d+(?:\.\d+)?)([A-Za-z]*)(\/s)?$/.exec(t);
  if (!m) throw new Error(`"${text}" is not a bandwidth: ${RATE_HELP}`);
  if (m[1] === "-") throw new Error(`"${text}" is negative: a bandwidth cannot be`);
  if (m[1] === "+") throw new Error(`"${text}" is not a bandwidth: no sign allowed; ${RATE_HELP}`);
  const unit = m[3]!;
  if (unit === "") throw new Error(`"${text}" has no unit: ${RATE_HELP}`);
  const factor = RATE_UNITS[unit];
  if (factor === undefined) {
    const bits = /^[kKMG]?b(it)?$/.test(unit) ? " (bandwidth is in bytes: B, not b or bit)" : "";
    throw new Error(`"${text}" has an unknown unit "${unit}"${bits}: ${RATE_HELP}`);
  }
  const bps = Math.round(Number(m[2]) * factor);
  if (bps < 1) throw new Error(`"${text}" is below 1 B/s: a bandwidth must be at least 1 B/s`);
  if (!Number.isSafeInteger(bps)) throw new Error(`"${text}" is too large`);
  return bps;
}

/** The shortest exact form of a duration: `3s`, `1500ms`, `2m`. */
export function formatDuration(ms: number): string {
  if (ms > 0 && Number.isInteger(ms)) {
    for (const unit of ["d", "h", "m", "s"] as const) {
      const f = DURATION_UNITS[unit]!;
      if (ms % f === 0) return `${ms / f}${unit}`;
    }
  }
  return `${ms}ms`;
}

/** The shortest exact form of a rate: `1MB/s`, `64KiB/s`, `1500B/s`. */
export function formatRate(bytesPerSec: number): string {
  if (bytesPerSec > 0 && Number.isInteger(bytesPerSec)) {
    for (const unit of ["GB", "GiB", "MB", "MiB", "KB", "KiB"] as const) {
      const f = RATE_UNITS[unit]!;
      if (bytesPerSec % f === 0) return `${bytesPerSec / f}${unit}/s`;
    }
  }
  return `${bytesPerSec}B/s`;
}
