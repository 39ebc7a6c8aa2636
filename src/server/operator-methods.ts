import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { truncateForLog } from "../internal/log-safe.js";
import type { AgentInfo } from "../presence/presence.js";
import { type ServerFanOut, summarize } from "../rpc/fan-out.js";
import {
  DEFAULT_STREAM_WINDOW,
  type MusterStream,
  type StreamContext,
  type StreamHandler,
  type StreamOptions,
} from "../rpc/stream.js";
import { parseTarget, type Target } from "../rpc/target.js";
import type {
  CallContext,
  CallOptions,
  CallOutcome,
  Handler,
  OutcomeSummary,
  PeerInfo,
} from "../rpc/types.js";
import type { CallOrigin } from "../wire/origin.js";
import { agentsPage } from "./agents-page.js";
import type { EnrolmentRequest } from "./enrolment.js";
import { type RelayGate, RelayLimiter } from "./relay-limiter.js";
import type { RpcLimits } from "./rpc-limits.js";
import type { ServerInfo } from "./server-info.js";
import { watchAgentsStream } from "./watch-agents.js";

/** What the operator methods need from the server. */
export interface OperatorHost {
  /** This server's name: relayed calls name it in their origin. */
  readonly serverName: string;
  /** Bounds on targets, relayed windows and relayed calls. */
  readonly rpcLimits: RpcLimits;
  /** Largest frame an operator accepts: replies are made to fit it. */
  readonly maxFrameBytes: number;
  /** A fan-out; with `gate`, each agent's call is admitted by it first. */
  call(
    target: string | Target,
    method: string,
    request?: unknown,
    options?: CallOptions,
    gate?: RelayGate,
  ): ServerFanOut;
  openStream(agent: string, name: string, request?: unknown, options?: StreamOptions): MusterStream;
  agents(): AgentInfo[];
  agent(name: string): AgentInfo | undefined;
  /** Throws PERMISSION_DENIED when this operator's grants do not cover `method` on agents. */
  authorizeRelay(peer: PeerInfo, method: string): void;
  /** Decides a waiting request on whichever server of the cluster holds it. */
  decideEnrolmentInCluster(
    action: "accept" | "reject",
    name: string,
    by?: string,
    fingerprint?: string,
  ): Promise<{ request: EnrolmentRequest; server: string }>;
  pendingEnrolments(): EnrolmentRequest[];
  /** The servers of the cluster (or this one alone). */
  servers(): ServerInfo[];
  /** Calls `fn` with the name of each agent whose listing may have changed; returns the unsubscribe. */
  watchAgents(fn: (name: string) => void): () => void;
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

/**
 * Partial results of `muster.call`, in this order: the `expected` agents (in several items,
 * each but the last with `more: true`, when the list would not fit in one frame), then one
 * `outcome` per agent.
 */
export type RelayCallItem =
  | { type: "expected"; agents: string[]; more?: true }
  | ({ type: "outcome" } & CallOutcome);

function invalid(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

export function checkRelay(req: unknown): RelayCallRequest {
  if (typeof req !== "object" || req === null)
    throw invalid("muster.call needs an object {target, method, args?, timeoutMs?}");
  const r = req as Record<string, unknown>;
  if (typeof r.target !== "string") throw invalid("muster.call: target must be a string");
  if (typeof r.method !== "string" || r.method.length === 0)
    throw invalid("muster.call: method must be a non-empty string");
  if (r.method.startsWith("muster."))
    throw new MusterError(
      ErrorCode.PERMISSION_DENIED,
      `muster.call: ${truncateForLog(r.method, 80)} is an agent's built-in for its own server (its settings, its server list, text messages): operators cannot call it`,
    );
  const methodBytes = Buffer.byteLength(r.method);
  if (methodBytes > METHOD_MAX_BYTES)
    throw invalid(`muster.call: method is ${methodBytes} bytes, more than ${METHOD_MAX_BYTES}`);
  if (
    r.timeoutMs !== undefined &&
    (typeof r.timeoutMs !== "number" || !(r.timeoutMs > 0) || r.timeoutMs > 2 ** 31)
  ) {
    throw invalid("muster.call: timeoutMs must be a positive number of milliseconds");
  }
  return r as unknown as RelayCallRequest;
}

/** Longest method name on the wire (docs/protocol.md §4). */
const METHOD_MAX_BYTES = 255;
/** Bytes of a frame besides a list of names: header, item fields, punctuation. */
const ITEM_OVERHEAD_BYTES = 1024;

/** Who a relay is counted against (its key) and named as (its label). */
export function relayer(peer: PeerInfo): { key: string; label: string } {
  const id = peer.identity;
  return id === undefined
    ? { key: `${peer.role}:${peer.name}`, label: `${peer.role} ${peer.name}` }
    : { key: `${id.role}:${id.subject}`, label: id.subject };
}

/** Who an operator's relayed call is made for, as the agent's handler sees it (`ctx.caller`). */
export function originOf(peer: PeerInfo, server: string): CallOrigin {
  const subject = peer.identity?.subject;
  return subject === undefined
    ? { role: peer.role, name: peer.name, server }
    : { role: peer.role, name: peer.name, subject, server };
}

/**
 * Methods the server answers for operator sessions (the CLI): the same protocol as
 * agents use, so that the CLI works against a remote server. `relays` counts the relayed
 * calls and streams of each operator on each agent (shared with `operatorStreams`).
 */
export function operatorHandlers(host: OperatorHost, relays: RelayLimiter): Map<string, Handler> {
  const m = new Map<string, Handler>();
  m.set("muster.agents", (req) => agentsPage(host.agents(), req, host.maxFrameBytes));
  m.set("muster.agent", (req) => {
    const name = (req as { name?: unknown } | undefined)?.name;
    if (typeof name !== "string") throw invalid("muster.agent needs {name}");
    const a = host.agent(name);
    if (!a) throw new MusterError(ErrorCode.NOT_FOUND, `no agent named ${name} is known`);
    return a;
  });
  m.set("muster.enrol", async (req, ctx: CallContext): Promise<EnrolmentRequest> => {
    const r = req as Partial<EnrolRequest> | undefined;
    if (typeof r !== "object" || r === null || (r.action !== "accept" && r.action !== "reject"))
      throw invalid('muster.enrol needs {action: "accept" | "reject", name, fingerprint?}');
    if (typeof r.name !== "string" || r.name.length === 0)
      throw invalid("muster.enrol: name must be a non-empty string");
    if (r.fingerprint !== undefined && typeof r.fingerprint !== "string")
      throw invalid("muster.enrol: fingerprint must be a string of 16 hexadecimal digits");
    const by = ctx.peer.identity?.subject ?? ctx.peer.name;
    // In a cluster, `server` names the server that applied it: the one the agent dialed.
    return (await host.decideEnrolmentInCluster(r.action, r.name, by, r.fingerprint)).request;
  });
  m.set("muster.enrolments", () => host.pendingEnrolments());
  m.set("muster.servers", () => host.servers());
  m.set("muster.call", async (req, ctx: CallContext): Promise<OutcomeSummary> => {
    const r = checkRelay(req);
    // A precise INVALID_ARGUMENT before anything starts.
    const target = parseTarget(r.target, host.rpcLimits.maxTargetBytes);
    host.authorizeRelay(ctx.peer, r.method);
    // Leave the operator a moment to receive the last outcome before its own deadline.
    const timeoutMs = Math.max(1, Math.min(r.timeoutMs ?? ctx.remainingMs(), ctx.remainingMs() - 250));
    const { key, label } = relayer(ctx.peer);
    const fanOut = host.call(
      target,
      r.method,
      r.args,
      { timeoutMs, signal: ctx.signal, origin: originOf(ctx.peer, host.serverName) },
      relays.gate(key, label),
    );
    emitExpected(ctx, fanOut.expectedNames, host.maxFrameBytes - ITEM_OVERHEAD_BYTES);
    const sent: CallOutcome[] = [];
    for await (const o of fanOut) sent.push(emitOutcome(ctx, r.method, o));
    // Counted from what the operator received: an outcome too large to send is an error.
    return summarize(sent);
  });
  return m;
}

/** The expected agents, in as many items as it takes for each to fit in a frame. */
function emitExpected(ctx: CallContext, names: readonly string[], budget: number): void {
  let chunk: string[] = [];
  let bytes = 0;
  for (const name of names) {
    const cost = Buffer.byteLength(name) + 3;
    if (chunk.length > 0 && bytes + cost > budget) {
      ctx.emit({ type: "expected", agents: chunk, more: true } satisfies RelayCallItem);
      chunk = [];
      bytes = 0;
    }
    chunk.push(name);
    bytes += cost;
  }
  ctx.emit({ type: "expected", agents: chunk } satisfies RelayCallItem);
}

/**
 * Sends one outcome; one that would not fit in the operator's frame is sent as an error
 * outcome saying so (RESOURCE_EXHAUSTED with the sizes), and the link lives on.
 */
function emitOutcome(ctx: CallContext, method: string, o: CallOutcome): CallOutcome {
  try {
    ctx.emit({ type: "outcome", ...o } satisfies RelayCallItem);
    return o;
  } catch (err) {
    const e = MusterError.from(err);
    const d = e.details as { frameBytes?: number; maxFrameBytes?: number } | undefined;
    if (e.code !== ErrorCode.RESOURCE_EXHAUSTED || d?.frameBytes === undefined) throw err;
    const failed: CallOutcome = {
      agent: o.agent,
      status: "error",
      error: {
        code: ErrorCode.RESOURCE_EXHAUSTED,
        message: `${method} on ${o.agent}: the outcome is ${d.frameBytes} bytes as a frame, over the ${d.maxFrameBytes}-byte frame limit of ${ctx.peer.role} ${ctx.peer.name}`,
        details: d,
      },
      durationMs: o.durationMs,
    };
    ctx.emit({ type: "outcome", ...failed } satisfies RelayCallItem);
    return failed;
  }
}

/** Request of the operator stream `muster.stream`. */
export interface RelayStreamRequest {
  /** The agent that serves the stream. */
  agent: string;
  /** The stream's name on that agent. */
  name: string;
  args?: unknown;
  /** The server's window towards the agent, capped to `maxStreamWindowBytes`. @default 256 KiB */
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
  if (r.name.startsWith("muster."))
    throw new MusterError(
      ErrorCode.PERMISSION_DENIED,
      `muster.stream: ${truncateForLog(r.name, 80)} is an agent's built-in for its own server (runs, settings): operators cannot open it`,
    );
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
 * operator makes room, so it holds at most one window per relayed stream (at most
 * `maxStreamWindowBytes`, whatever the operator asks for); while the operator's link is down
 * the relay waits, and it ends with the operator's session. Cancelling either end cancels the
 * other. A relayed stream counts against the operator's relays on that agent.
 */
export function operatorStreams(host: OperatorHost, relays: RelayLimiter): Map<string, StreamHandler> {
  const m = new Map<string, StreamHandler>();
  m.set("muster.stream", async function* (req: unknown, ctx: StreamContext) {
    const r = checkRelayStream(req);
    host.authorizeRelay(ctx.peer, r.name);
    const { key, label } = relayer(ctx.peer);
    const place = relays.acquire(key, label, r.agent);
    try {
      const windowBytes = Math.min(
        r.windowBytes ?? DEFAULT_STREAM_WINDOW,
        host.rpcLimits.maxStreamWindowBytes,
      );
      const options: StreamOptions = {
        signal: ctx.signal,
        windowBytes,
        origin: originOf(ctx.peer, host.serverName),
      };
      if (Number.isFinite(ctx.deadline)) options.timeoutMs = Math.max(1, ctx.remainingMs());
      const inner = host.openStream(r.agent, r.name, r.args, options);
      for await (const item of inner) yield item;
      return inner.result;
    } finally {
      relays.release(place);
    }
  });
  m.set("muster.watch", watchAgentsStream(host));
  return m;
}

/** The relay limiter shared by the operator methods and streams of one server. */
export function relayLimiter(host: OperatorHost): RelayLimiter {
  return new RelayLimiter(host.rpcLimits.maxRelayedCallsPerAgent);
}
