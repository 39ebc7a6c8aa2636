// What the server's authentication decides about a peer: who it is (Identity), or why it is
// refused (a CLOSE code, a message, a metrics reason), and the helpers that build refusals.
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { CloseCode } from "../wire/frame.js";

/** Roles of an authenticated peer: `admin` can do everything an `operator` can, and more. */
export type IdentityRole = "agent" | "operator" | "admin";

/** Who a peer is, once its credential was checked. */
export interface Identity {
  role: IdentityRole;
  /** The agent's name, or who an operator is (a token's subject, a certificate's CN). */
  subject: string;
  /** How it was established. */
  via: "token" | "certificate" | "standalone" | "enrolment";
  /** The token's id, for revocation. */
  tokenId?: string;
  /** When the credential expires (epoch ms): the session ends then. */
  expiresAt?: number;
  /**
   * Grants as globs: the server methods an agent may call, or the agent methods an operator may
   * call through the server. Undefined: every method.
   */
  methods?: readonly string[];
}

/** The outcome of checking a HELLO's credential. */
export type GateVerdict =
  | { ok: true; identity: Identity; issued?: string }
  | {
      ok: false;
      close: CloseCode;
      message: string;
      /** A metrics label: missing, malformed, bad_signature, expired, revoked, name, labels, role, … */
      reason: string;
      retryAfterMs?: number;
      /** Counted towards the address's failure budget. */
      failure: boolean;
    };

/** A refusal of the gate. */
export type Refusal = Extract<GateVerdict, { ok: false }>;

export function refuse(
  close: CloseCode,
  message: string,
  reason: string,
  extra: { retryAfterMs?: number; failure?: boolean } = {},
): Refusal {
  const v: Refusal = { ok: false, close, message, reason, failure: extra.failure ?? true };
  if (extra.retryAfterMs !== undefined) v.retryAfterMs = extra.retryAfterMs;
  return v;
}

/** A token verification's failure as a refusal (its reason from `details.reason`). */
export function tokenRefusal(err: unknown): Refusal {
  const e = MusterError.from(err, ErrorCode.UNAUTHENTICATED);
  const reason = (e.details as { reason?: unknown } | undefined)?.reason;
  return refuse(CloseCode.UNAUTHENTICATED, e.rawMessage, typeof reason === "string" ? reason : "invalid");
}

export function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

export function showLabels(l: Record<string, string>): string {
  const s = Object.entries(l)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return s === "" ? "none" : s;
}
