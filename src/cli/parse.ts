import { InvalidArgumentError } from "commander";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `3s`, `1.5m`, `2h`, `30d` into milliseconds; a unit is required. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) {
    throw new InvalidArgumentError(
      `"${text}" is not a duration: use a number and a unit, e.g. 500ms, 3s, 2m, 1h`,
    );
  }
  const ms = Number(m[1]) * UNITS[m[2]!]!;
  if (!Number.isFinite(ms) || ms > 2 ** 31 - 1)
    throw new InvalidArgumentError(`duration "${text}" is too long`);
  return Math.round(ms);
}

/** Parses `key=value` into a pair; used by repeatable `--label`. */
export function parseLabel(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = text.indexOf("=");
  if (i <= 0) throw new InvalidArgumentError(`"${text}" is not a label: use key=value, e.g. role=web`);
  const key = text.slice(0, i).trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/.test(key)) {
    throw new InvalidArgumentError(`label key "${key}" is invalid: letters, digits and . _ - /, at most 63`);
  }
  return { ...previous, [key]: text.slice(i + 1) };
}

/** Collects a repeatable option; each value may also be a comma-separated list. */
export function collectList(text: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...text
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  ];
}

/** Parses a JSON argument for a call; an empty string means no argument. */
export function parseJsonArg(text: string | undefined): unknown {
  if (text === undefined || text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`the call argument is not valid JSON: ${(err as Error).message}`);
  }
}

/** `--log-level` values. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"] as const;

export function parseLogLevel(text: string): (typeof LOG_LEVELS)[number] {
  if (!(LOG_LEVELS as readonly string[]).includes(text)) {
    throw new InvalidArgumentError(`log level must be one of ${LOG_LEVELS.join(", ")}`);
  }
  return text as (typeof LOG_LEVELS)[number];
}
