import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { AgentInfo } from "../presence/presence.js";
import type { FanOut } from "../rpc/fan-out.js";
import type { MusterStream, StreamContext, StreamHandler, StreamOptions } from "../rpc/stream.js";
import { parseTarget } from "../rpc/target.js";
import type { CallContext, CallOptions, Handler, OutcomeSummary, PeerInfo } from "../rpc/types.js";
import type { EnrolmentRequest } from "./enrolment.js";

/** What the operator methods need from the server. */
export interface OperatorHost {
  call(target: string, method: string, request?: unknown, options?: CallOptions): FanOut;
  openStream(agent: string, name: string, request?: unknown, options?: StreamOptions): MusterStream;
  agents(): AgentInfo[];
  agent(name: string): AgentInfo | undefined;
  /** Throws PERMISSION_DENIED when this operator's grants do not cover `method` on agents. */
  authorizeRelay(peer: PeerInfo, method: string): void;
  decideEnrolment(
    action: "accept" | "reject",
    name: string,
    by?: string,
    fingerprint?: string,
  ): EnrolmentRequest;
  pendingEnrolments(): EnrolmentRequest[];
}

/**
 * Request of `muster.enrol` (admin role): accept or reject a waiting enrolment request. The
 * fingerprint binds the decision to one agent's request; it must be given when several agents
 * ask for the same name.
 */
export interface EnrolRequest {
  action: "accept" | "reject";
  name: string;
  fingerprint?: string;
}

/** Request of `muster.call`. */
export interface RelayCallRequest {
  target: string;
  method: string;
  args?: unknown;
  timeoutMs?: number;
}

/** Partial results of `muster.call`, in this order: one `expected`, then one `outcome` per agent. */
export type RelayCallItem =
  | { type: "expected"; agents: string[] }
  | ({ type: "outcome" } & import("../rpc/types.js").CallOutcome);

function invalid(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

function checkRelay(req: unknown): RelayCallRequest {
  if (typeof req !== "object" || req === null)
    throw invalid("muster.call needs an object {target, method, args?, timeoutMs?}");
  const r = req as Record<string, unknown>;
  if (typeof r.target !== "string") throw invalid("muster.call: target must be a string");
  if (typeof r.method !== "string" || r.method.length === 0)
    throw invalid("muster.call: method must be a non-empty string");
  if (
    r.timeoutMs !== undefined &&
    (typeof r.timeoutMs !== "number" || !(r.timeoutMs > 0) || r.timeoutMs > 2 ** 31)
  ) {
    throw invalid("muster.call: timeoutMs must be a positive number of milliseconds");
  }
  return r as unknown as RelayCallRequest;
}

/**
 * Methods the server answers for operator sessions (the CLI): the same protocol as
 * agents use, so that the CLI works against a remote server.
 */
export function operatorHandlers(host: OperatorHost): Map<string, Handler> {
  const m = new Map<string, Handler>();
  m.set("muster.agents", () => host.agents());
  m.set("muster.agent", (req) => {
    const name = (req as { name?: unknown } | undefined)?.name;
    if (typeof name !== "string") throw invalid("muster.agent needs {name}");
    const a = host.agent(name);
    if (!a) throw new MusterError(ErrorCode.NOT_FOUND, `no agent named ${name} is known`);
    return a;
  });
  m.set("muster.enrol", (req, ctx: CallContext): EnrolmentRequest => {
    const r = req as Partial<EnrolRequest> | undefined;
    if (typeof r !== "object" || r === null || (r.action !== "accept" && r.action !== "reject"))
      throw invalid('muster.enrol needs {action: "accept" | "reject", name, fingerprint?}');
    if (typeof r.name !== "string" || r.name.length === 0)
      throw invalid("muster.enrol: name must be a non-empty string");
    if (r.fingerprint !== undefined && typeof r.fingerprint !== "string")
      throw invalid("muster.enrol: fingerprint must be a string of 16 hexadecimal digits");
    return host.decideEnrolment(r.action, r.name, ctx.peer.identity?.subject ?? ctx.peer.name, r.fingerprint);
  });
  m.set("muster.enrolments", () => host.pendingEnrolments());
  m.set("muster.call", async (req, ctx: CallContext): Promise<OutcomeSummary> => {
    const r = checkRelay(req);
    parseTarget(r.target); // precise INVALID_ARGUMENT before anything starts
    host.authorizeRelay(ctx.peer, r.method);
    // Leave the operator a moment to receive the last outcome before its own deadline.
    const timeoutMs = Math.max(1, Math.min(r.timeoutMs ?? ctx.remainingMs(), ctx.remainingMs() - 250));
    const fanOut = host.call(r.target, r.method, r.args, { timeoutMs, signal: ctx.signal });
    ctx.emit({ type: "expected", agents: [...fanOut.expected] } satisfies RelayCallItem);
    for await (const o of fanOut) ctx.emit({ type: "outcome", ...o } satisfies RelayCallItem);
    return fanOut.summary();
  });
  return m;
}

/** Request of the operator stream `muster.stream`. */
export interface RelayStreamRequest {
  /** The agent that serves the stream. */
  agent: string;
  /** The stream's name on that agent. */
  name: string;
  args?: unknown;
  /** The server's window towards the agent. @default 256 KiB */
  windowBytes?: number;
}

function checkRelayStream(req: unknown): RelayStreamRequest {
  if (typeof req !== "object" || req === null)
    throw invalid("muster.stream needs an object {agent, name, args?, windowBytes?}");
  const r = req as Record<string, unknown>;
  if (typeof r.agent !== "string" || r.agent.length === 0)
    throw invalid("muster.stream: agent must be a non-empty string");
  if (typeof r.name !== "string" || r.name.length === 0)
    throw invalid("muster.stream: name must be a non-empty string");
  if (
    r.windowBytes !== undefined &&
    (typeof r.windowBytes !== "number" || !(r.windowBytes >= 1) || r.windowBytes > 0xffffffff)
  )
    throw invalid("muster.stream: windowBytes must be a number of bytes ≥ 1");
  return r as unknown as RelayStreamRequest;
}

/**
 * Streams the server serves to operator sessions: `muster.stream` relays a stream of one
 * agent. Flow control holds end to end: the server reads from the agent only as fast as the
 * operator makes room, so it holds at most one window per relayed stream; cancelling either
 * end cancels the other.
 */
export function operatorStreams(host: OperatorHost): Map<string, StreamHandler> {
  const m = new Map<string, StreamHandler>();
  m.set("muster.stream", async function* (req: unknown, ctx: StreamContext) {
    const r = checkRelayStream(req);
    host.authorizeRelay(ctx.peer, r.name);
    const options: StreamOptions = { signal: ctx.signal };
    if (r.windowBytes !== undefined) options.windowBytes = r.windowBytes;
    if (Number.isFinite(ctx.deadline)) options.timeoutMs = Math.max(1, ctx.remainingMs());
    const inner = host.openStream(r.agent, r.name, r.args, options);
    for await (const item of inner) yield item;
    return inner.result;
  });
  return m;
}
