import { isIPv4, isIPv6 } from "node:net";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { quote } from "../wire/text.js";

/**
 * The types a parameter definition can ask for. Every value travels as text; the type says
 * which texts are acceptable:
 * - `string`: anything;
 * - `integer`: decimal digits with an optional sign, within a signed 64-bit integer;
 * - `address`: `a.b.c.d[:port]`, `[ipv6][:port]`, a bare IPv6 (no port), or `host[:port]`;
 * - `timespec`: `<seconds>[.<nanoseconds>]`, optionally signed, optionally ending in `s`.
 */
export type ParamType = "string" | "integer" | "address" | "timespec";

export const PARAM_TYPES: readonly ParamType[] = ["string", "integer", "address", "timespec"];

/** A point in time or a duration: `sec` seconds plus `nsec` (0 ≤ nsec < 10⁹) nanoseconds. */
export interface Timespec {
  readonly sec: number;
  readonly nsec: number;
}

/** A parsed `address` value. `port` is undefined when the text gave none. */
export interface Address {
  readonly family: "ipv4" | "ipv6" | "name";
  readonly host: string;
  readonly port: number | undefined;
}

const INT64_MAX = "9223372036854775807";
const INT64_MIN_MAGNITUDE = "9223372036854775808";

function bad(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

/** Whether the decimal `digits` (no sign) are at most `limit`, compared as text so that any length costs O(n). */
function withinDigits(digits: string, limit: string): boolean {
  let i = 0;
  while (i < digits.length - 1 && digits[i] === "0") i++;
  const n = digits.length - i;
  if (n !== limit.length) return n < limit.length;
  return digits.slice(i) <= limit;
}

const INTEGER = /^([+-]?)([0-9]+)$/;

/** Why `text` is not an `integer` value, or undefined when it is one. */
export function checkInteger(text: string): string | undefined {
  const m = INTEGER.exec(text);
  if (m === null) return `must be an integer (digits with an optional sign), got ${quote(text, 40)}`;
  if (!withinDigits(m[2]!, m[1] === "-" ? INT64_MIN_MAGNITUDE : INT64_MAX))
    return `must be an integer within 64 bits (−2⁶³…2⁶³−1), got ${quote(text, 40)}`;
  return undefined;
}

/** Reads an `integer` value; throws INVALID_ARGUMENT with the reason when it is not one. */
export function parseInteger(text: string): bigint {
  const why = checkInteger(text);
  if (why !== undefined) throw bad(`integer value ${why}`);
  return BigInt(text);
}

// Blanks as C's isspace() sees them: upstream trims these around a timespec.
const TIMESPEC = /^[ \t\n\v\f\r]*([+-]?)([0-9]+)(?:\.([0-9]*))?s?[ \t\n\v\f\r]*$/;

/** Why `text` is not a `timespec` value, or undefined when it is one. */
export function checkTimespec(text: string): string | undefined {
  const m = TIMESPEC.exec(text);
  if (m === null) return `must be a timespec (<seconds>[.<nanoseconds>]), got ${quote(text, 40)}`;
  if (!withinDigits(m[2]!, INT64_MAX))
    return `must be a timespec with at most 2⁶³−1 seconds, got ${quote(text, 40)}`;
  return undefined;
}

/**
 * Reads a `timespec` value. Nanosecond digits past the ninth are dropped, as upstream does.
 * The sign applies to the whole value (`-1.5` is −1.5 s, returned as sec −2, nsec 5·10⁸);
 * upstream applies it to the seconds only. Seconds beyond 2⁵³−1, which a timespec check
 * accepts, are refused here: no number holds them exactly.
 */
export function parseTimespec(text: string): Timespec {
  const why = checkTimespec(text);
  if (why !== undefined) throw bad(`timespec value ${why}`);
  const m = TIMESPEC.exec(text)!;
  const sec = Number(m[2]);
  if (!Number.isSafeInteger(sec)) throw bad(`timespec ${quote(text, 40)} has more than 2⁵³−1 seconds`);
  const nsec = Number((m[3] ?? "").slice(0, 9).padEnd(9, "0"));
  if (m[1] !== "-" || (sec === 0 && nsec === 0)) return { sec, nsec };
  return nsec === 0 ? { sec: -sec, nsec: 0 } : { sec: -sec - 1, nsec: 1e9 - nsec };
}

/**
 * Writes a timespec as `<seconds>.<9 digits>` (`1725000000.123456789`). Upstream drops the
 * trailing zeros; every reader, upstream's included, reads both forms alike.
 */
export function formatTimespec(t: Timespec): string {
  const { sec, nsec } = t;
  if (!Number.isSafeInteger(sec) || !Number.isInteger(nsec) || nsec < 0 || nsec >= 1e9)
    throw bad(`timespec must have integer seconds and 0 ≤ nsec < 10⁹, got ${sec}.${nsec}`);
  if (sec >= 0) return `${sec}.${String(nsec).padStart(9, "0")}`;
  // A negative value is written sign and magnitude, so that parseTimespec reads it back.
  return nsec === 0 ? `-${-sec}.000000000` : `-${-(sec + 1)}.${String(1e9 - nsec).padStart(9, "0")}`;
}

/** The timespec of a time in milliseconds since the epoch (as `Date.now()` gives). */
export function timespecFromMs(ms: number): Timespec {
  if (!Number.isFinite(ms)) throw bad(`time in milliseconds must be finite, got ${ms}`);
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6)) };
}

/** The milliseconds of a timespec (fractions of a millisecond kept). */
export function timespecToMs(t: Timespec): number {
  return t.sec * 1000 + t.nsec / 1e6;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function hostFamily(host: string): "ipv4" | "name" | string {
  if (isIPv4(host)) return "ipv4";
  if (host.length > 253) return "the host name is longer than 253 characters";
  const labels = host.split(".");
  if (labels.every((l) => LABEL.test(l))) {
    // "300.1.1.1" or "10.1" look like IPv4 addresses, not names: refuse rather than resolve.
    if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return `${quote(host, 40)} is not a valid IPv4 address`;
    return "name";
  }
  return `${quote(host, 40)} is neither an IPv4 address nor a host name`;
}

function portNumber(port: string): number | string {
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) return `port ${quote(port, 20)} is not 0–65535`;
  return Number(port);
}

/** The address in `text`, or why it is not one. */
function readAddress(text: string): Address | string {
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return "'[' has no closing ']'";
    const host = text.slice(1, close);
    if (!isIPv6(host)) return `${quote(host, 40)} is not an IPv6 address`;
    const rest = text.slice(close + 1);
    if (rest === "") return { family: "ipv6", host, port: undefined };
    if (!rest.startsWith(":")) return `${quote(rest, 20)} follows ']' where ':port' or nothing was expected`;
    const port = portNumber(rest.slice(1));
    return typeof port === "string" ? port : { family: "ipv6", host, port };
  }
  const first = text.indexOf(":");
  if (first >= 0 && text.indexOf(":", first + 1) >= 0) {
    if (!isIPv6(text)) return "it is not an IPv6 address (an IPv6 with a port goes in [brackets])";
    return { family: "ipv6", host: text, port: undefined };
  }
  const host = first < 0 ? text : text.slice(0, first);
  if (host === "") return "the host is missing";
  const family = hostFamily(host);
  if (family !== "ipv4" && family !== "name") return family;
  if (first < 0) return { family, host, port: undefined };
  const port = portNumber(text.slice(first + 1));
  return typeof port === "string" ? port : { family, host, port };
}

/**
 * Reads an `address` value, following upstream's parser: two colons or more make a bare
 * IPv6 (no port), brackets carry an IPv6 with a port, one colon separates host and port.
 * Host names are checked for their form only: nothing is resolved. Upstream also accepts
 * an empty host (meaning 0.0.0.0) and an empty port; both are refused here.
 */
export function parseAddress(text: string): Address {
  const a = readAddress(text);
  if (typeof a === "string") throw bad(`address ${quote(text, 60)}: ${a}`);
  return a;
}

/** Why `text` is not an `address` value, or undefined when it is one. */
export function checkAddress(text: string): string | undefined {
  const a = readAddress(text);
  if (typeof a !== "string") return undefined;
  return `must be an address such as 10.0.0.1:4040 or [::1]:4040, got ${quote(text, 60)}: ${a}`;
}

/** Writes an address back: an IPv6 with a port goes in brackets. */
export function formatAddress(a: Address): string {
  if (a.port === undefined) return a.host;
  return a.family === "ipv6" ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Why `value` is not of `type`, or undefined when it is. */
export function checkParamValue(type: ParamType, value: string): string | undefined {
  switch (type) {
    case "string":
      return undefined;
    case "integer":
      return checkInteger(value);
    case "address":
      return checkAddress(value);
    case "timespec":
      return checkTimespec(value);
  }
}
