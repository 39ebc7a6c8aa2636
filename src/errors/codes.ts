/**
 * The closed set of error codes muster produces. Every code is documented in
 * `docs/errors.md`; a test fails when the two disagree.
 *
 * Codes follow gRPC's vocabulary where one fits, so that users recognise them.
 */
export const ErrorCode = {
  /** The caller aborted the call (its AbortSignal fired) or the peer cancelled it. */
  CANCELLED: "CANCELLED",
  /** The call's deadline passed before an outcome arrived. */
  DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
  /** No live session to the peer: the agent is not connected, or the link is closed. */
  UNAVAILABLE: "UNAVAILABLE",
  /** No agent, session or resource by that name. */
  NOT_FOUND: "NOT_FOUND",
  /** No handler is registered for the method on the peer. */
  UNIMPLEMENTED: "UNIMPLEMENTED",
  /** The request was malformed (bad target, bad argument, bad option). */
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  /** No valid credential: a token missing, malformed, badly signed, expired or revoked. */
  UNAUTHENTICATED: "UNAUTHENTICATED",
  /** The peer refused the request: the caller's role or grants do not allow it. */
  PERMISSION_DENIED: "PERMISSION_DENIED",
  /** A bound was reached (replay window full, too many calls, queue full). */
  RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
  /** The bytes on the wire do not follow the protocol. */
  PROTOCOL_ERROR: "PROTOCOL_ERROR",
  /** A frame larger than the configured maximum was announced. */
  FRAME_TOO_LARGE: "FRAME_TOO_LARGE",
  /** The session could not be resumed: the resume window passed or the server forgot it. */
  SESSION_EXPIRED: "SESSION_EXPIRED",
  /** A newer connection under the same agent name replaced this session. */
  REPLACED: "REPLACED",
  /** The local endpoint was closed (server stopped, agent closed). */
  CLOSED: "CLOSED",
  /** A handler threw something that is not a MusterError. */
  INTERNAL: "INTERNAL",
  /** An error from the peer with a code this version does not know. */
  UNKNOWN: "UNKNOWN",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const known = new Set<string>(Object.values(ErrorCode));

/** True when `code` is one of the codes above. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && known.has(code);
}
