import type { ErrorBody } from "../errors/muster-error.js";
import type { CallOrigin } from "../wire/origin.js";

/** Who is on the other side of a call, as seen by a handler. */
export interface PeerInfo {
  /** "agent", "operator" or "server". */
  role: "agent" | "operator" | "server";
  name: string;
  labels: Readonly<Record<string, string>>;
  sessionId: string;
  remoteAddress: string;
  /** Who the peer authenticated as (server side): its role and subject. */
  identity?: Readonly<{ role: string; subject: string }>;
}

/** Who a call is made for (`ctx.caller`). */
export interface CallerInfo {
  /** "operator", "agent", "server", "text", … */
  readonly role: string;
  readonly name: string;
  /** The identity it authenticated as (a token's subject), when known. */
  readonly subject?: string;
  /** The server it reached first, for a relayed call. */
  readonly server?: string;
  /** True when a server relayed the call on its behalf (then `ctx.peer` is that server). */
  readonly relayed: boolean;
}

/**
 * What a handler gets besides the request. Call its methods on it (`ctx.emit(x)`): they are
 * not bound, so `const { emit } = ctx` does not work.
 */
export interface CallContext {
  /** The method called. */
  readonly method: string;
  /** The other end of this session: for a call relayed by a server, the server (the hop). */
  readonly peer: PeerInfo;
  /**
   * Who the call is made for: the operator behind `muster call`, the agent or text client
   * behind a routed message, as the relaying server names it; for a direct call, the peer.
   */
  readonly caller: CallerInfo;
  /** Fires when the deadline passes, the caller cancels, or the session ends. `reason` is a MusterError. */
  readonly signal: AbortSignal;
  /** Clock time (ms) at which the caller gives up. */
  readonly deadline: number;
  /** Milliseconds left before the deadline (never negative). */
  remainingMs(): number;
  /**
   * Sends a partial result ahead of the final one (an ITEM frame). Returns false when the link
   * is backed up (or the call is over): await `whenWritable()` before emitting more, so that a
   * slow caller slows this handler down instead of growing memory.
   */
  emit(item: unknown): boolean;
  /** Resolves when emitting may go on; rejects with the reason when the call's signal fires. */
  whenWritable(): Promise<void>;
}

/** A function that answers calls. Its return value (or the promise's) is the result. */
export type Handler<Req = unknown, Res = unknown> = (request: Req, ctx: CallContext) => Res | Promise<Res>;

/** Options of one call. */
export interface CallOptions {
  /**
   * Deadline of the call, in ms from now. The remaining time travels with the call.
   * @default 10000
   */
  timeoutMs?: number;
  /** Aborting cancels the call: the callee is told, and the call fails with CANCELLED. */
  signal?: AbortSignal;
  /** Receives partial results (ITEM frames) as they arrive, before the final result. */
  onItem?: (item: unknown) => void;
  /**
   * Who the call is made on behalf of, shown to the agent's handler as `ctx.caller` (agents of
   * this version and later; others see the server). Servers set it on the calls they relay.
   */
  origin?: CallOrigin;
}

/** The outcome of a call on one agent. */
export type OutcomeStatus = "ok" | "error" | "timeout" | "not_connected";

export interface CallOutcome<T = unknown> {
  agent: string;
  status: OutcomeStatus;
  /** The result, when status is "ok". */
  value?: T;
  /** Code and message, when status is not "ok". */
  error?: ErrorBody;
  /** Time from the start of the call to this outcome. */
  durationMs: number;
}

/** Counts of a finished fan-out, by status. */
export interface OutcomeSummary {
  ok: number;
  error: number;
  timeout: number;
  notConnected: number;
}
