import { InvalidArgumentError } from "commander";
import { MAX_SEED } from "../chaos/prng.js";
import { parseRateText } from "../chaos/units.js";
import { splitHostPort } from "../internal/host-port.js";
import { TRANSPORT_SCHEMES } from "../transport/schemes.js";

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

/**
 * Parses `host:port`, with an IPv6 address in brackets (`[::1]:33076`). Port 0 (any free port)
 * is accepted only with `allowPortZero`, for addresses to listen on.
 */
export function parseHostPort(text: string, allowPortZero = false): { host: string; port: number } {
  const t = text.trim();
  const hint = allowPortZero
    ? "e.g. 127.0.0.1:7000, [::1]:7000, or port 0 for any free port"
    : "e.g. 127.0.0.1:33076, [::1]:33076";
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t))
    throw new InvalidArgumentError(`"${text}" is a URL; give HOST:PORT without a scheme, ${hint}`);
  const hp = splitHostPort(t);
  if (!hp) throw new InvalidArgumentError(`"${text}" is not HOST:PORT: ${hint}`);
  if (hp.port > 65535 || (hp.port === 0 && !allowPortZero))
    throw new InvalidArgumentError(
      `port ${t.slice(t.lastIndexOf(":") + 1)} in "${text}" is out of range: ${allowPortZero ? "0" : "1"} to 65535`,
    );
  return hp;
}

/** Parses a bandwidth such as `64KB/s`, `1MB/s` or `512KiB/s` into bytes per second. */
export function parseBandwidth(text: string): number {
  try {
    return parseRateText(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** Parses a seed: a decimal integer from 0 to 4294967295. */
export function parseSeed(text: string): number {
  const t = text.trim();
  const n = Number(t);
  if (!/^\d+$/.test(t) || n > MAX_SEED)
    throw new InvalidArgumentError(`seed "${text}" is invalid: use an integer from 0 to ${MAX_SEED}`);
  return n;
}

/** Parses a whole number ≥ 0 (`0` usually meaning "no limit"). */
export function parseCount(text: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(Number(t)))
    throw new InvalidArgumentError(`"${text}" is not a whole number ≥ 0`);
  return Number(t);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** Parses a size such as `4096`, `512KiB`, `8MiB` or `1GB` into bytes. */
export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new InvalidArgumentError(`"${text}" is not a size: use bytes or a unit, e.g. 65536, 512KiB, 8MiB`);
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError(`size "${text}" is too large`);
  return bytes;
}

/** The schemes the CLI dials a server with. */
export const CLI_SCHEMES: readonly string[] = TRANSPORT_SCHEMES.map((s) => s.scheme);

/**
 * A server URL from the command line: `host:port` (no scheme) means `ws://host:port`, as
 * `--admin host:port` does; a scheme muster does not dial (TRANSPORT_SCHEMES) is a usage error saying
 * which work.
 */
export function parseServerUrl(text: string): string {
  const t = text.trim();
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(t)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(t)) return `ws://${t}`;
    throw new InvalidArgumentError(
      `"${text}" is not a server URL: give ws://host:port, wss://host:port, tcp://host:port, tls://host:port, grpc://host:port, grpcs://host:port, http://host:port or https://host:port (host:port alone means ws://)`,
    );
  }
  if (!CLI_SCHEMES.includes(scheme))
    throw new InvalidArgumentError(
      `${scheme}:// is not a scheme the command line dials: give ${CLI_SCHEMES.map((s) => `${s}://`).join(", ")}`,
    );
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    throw new InvalidArgumentError(`"${text}" is not a server URL: check its host and port (0 to 65535)`);
  }
  if (url.hostname === "") throw new InvalidArgumentError(`"${text}" is not a server URL: it names no host`);
  return t;
}
