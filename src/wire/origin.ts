import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";

/**
 * Who started a call that a server relays to an agent (docs/protocol.md §4.7): the operator
 * behind `muster call`, the agent or text client behind a routed message. The hop — the server
 * — is the session's peer; the origin is the one on whose behalf it calls.
 */
export interface CallOrigin {
  /** "operator", "agent", "text" or "server"; a later version may add roles. */
  role: string;
  /** The caller's name: an operator's session name, an agent's name, a text client's address. */
  name: string;
  /** The identity it authenticated as, when it did (a token's subject). */
  subject?: string;
  /** The server it reached first (in a cluster, not necessarily the agent's own). */
  server?: string;
}

/** HELLO `features` entry of a dialer that reads ORIGIN frames. */
export const ORIGIN_FEATURE = "origin";

/** Bounds of an ORIGIN body (docs/protocol.md §12). */
export const ORIGIN_LIMITS = {
  /** The whole JSON part, in bytes. */
  maxJsonBytes: 8192,
  roleMaxChars: 32,
  /** `name`, `subject` and `server`. */
  fieldMaxChars: 256,
} as const;

const ROLE = /^[a-z][a-z0-9-]*$/;

function refuse(message: string): MusterError {
  return new MusterError(ErrorCode.PROTOCOL_ERROR, message);
}

function field(o: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || v.length === 0 || v.length > ORIGIN_LIMITS.fieldMaxChars)
    throw refuse(`ORIGIN.${key} must be a string of 1–${ORIGIN_LIMITS.fieldMaxChars} characters`);
  return v;
}

/** Checks a parsed ORIGIN object; unknown fields are dropped (a later version may add some). */
export function checkOrigin(o: Record<string, unknown>): CallOrigin {
  const role = o.role;
  if (typeof role !== "string" || role.length > ORIGIN_LIMITS.roleMaxChars || !ROLE.test(role))
    throw refuse(`ORIGIN.role must be 1–${ORIGIN_LIMITS.roleMaxChars} lowercase letters, digits or dashes`);
  const origin: CallOrigin = { role, name: field(o, "name", true)! };
  const subject = field(o, "subject", false);
  if (subject !== undefined) origin.subject = subject;
  const server = field(o, "server", false);
  if (server !== undefined) origin.server = server;
  return origin;
}

/** An origin carried between servers; a malformed one is dropped (undefined), never fatal. */
export function originFrom(value: unknown): CallOrigin | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  try {
    return checkOrigin(value as Record<string, unknown>);
  } catch {
    return undefined;
  }
}

/**
 * The JSON part of an ORIGIN frame. What the decoder would refuse is made to fit instead —
 * fields cut to the limits, an empty name shown as "-", a role outside the pattern as
 * "unknown" — since an origin is information for the handler, not an identity check, and a
 * frame the peer refuses would cost the link.
 */
export function originJson(origin: CallOrigin): Buffer {
  const cut = (s: string): string => s.slice(0, ORIGIN_LIMITS.fieldMaxChars);
  const role =
    origin.role.length <= ORIGIN_LIMITS.roleMaxChars && ROLE.test(origin.role) ? origin.role : "unknown";
  const o: CallOrigin = { role, name: origin.name === "" ? "-" : cut(origin.name) };
  if (origin.subject) o.subject = cut(origin.subject);
  if (origin.server) o.server = cut(origin.server);
  const json = Buffer.from(JSON.stringify(o), "utf8");
  if (json.length > ORIGIN_LIMITS.maxJsonBytes)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `an origin of ${json.length} bytes is over ${ORIGIN_LIMITS.maxJsonBytes} bytes`,
    );
  return json;
}
