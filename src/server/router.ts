import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock } from "../internal/clock.js";
import { truncateForLog } from "../internal/log-safe.js";
import type { Logger } from "../internal/logger.js";
import type { AgentInfo } from "../presence/presence.js";
import type { CallCallbacks, CallHandle } from "../rpc/endpoint.js";
import { FanOutCall, type ServerFanOut } from "../rpc/fan-out.js";
import { failedStream, type MusterStream, type StreamOptions } from "../rpc/stream.js";
import { formatTarget, matcher, parseTarget, type Target } from "../rpc/target.js";
import type { CallOptions, OutcomeStatus } from "../rpc/types.js";
import { type DecodeLimits, encodeValue } from "../wire/codec.js";
import type { Payload } from "../wire/frame.js";
import type { CallOrigin } from "../wire/origin.js";
import { SharedCall } from "../wire/shared-call.js";
import type { Fleet } from "./fleet.js";
import type { ServerMetrics } from "./metrics.js";
import type { RelayGate } from "./relay-limiter.js";
import type { RpcLimits } from "./rpc-limits.js";

/**
 * Delivers calls and streams to agents: one agent, or every agent of a target with one
 * outcome each. The server, the operator relays and the text router all go through it.
 */
export interface Router {
  /** With `gate` (relays of an operator), each agent's call is admitted by it first. */
  call<T>(
    target: string | Target,
    method: string,
    request?: unknown,
    options?: CallOptions,
    gate?: RelayGate,
  ): ServerFanOut<T>;
  callAgent<T>(name: string, method: string, request?: unknown, options?: CallOptions): Promise<T>;
  openStream<T>(agent: string, name: string, request?: unknown, options?: StreamOptions): MusterStream<T>;
}

/**
 * Where the agents are and how to reach one: this server's fleet, or the whole cluster's. The
 * router's logic (expected sets, outcomes, metrics) is written once over it.
 */
export interface Reach {
  /** Every agent a target is matched against (live and recently offline). */
  agents(): AgentInfo[];
  /** One agent of that list. */
  agent(name: string): AgentInfo | undefined;
  /** Whether an agent of that name is known at all (for the not-connected message). */
  known(name: string): boolean;
  /** Calls `fn` with the name of each agent whose listing may have changed; returns the unsubscribe. */
  watch(fn: (name: string) => void): () => void;
  /**
   * Why a known agent cannot be reached, when it is not a matter of the agent itself (its
   * server is cut off from this one), for the not-connected message; undefined otherwise.
   */
  whyUnreachable?(name: string): string | undefined;
  /**
   * Starts `method` on agent `name`; undefined when no live session is reachable. It may
   * batch the start until `flush()` (several agents of another server go in one message).
   */
  start(
    name: string,
    method: string,
    payload: Payload,
    timeoutMs: number,
    cb: CallCallbacks,
    origin?: CallOrigin,
  ): CallHandle | undefined;
  /** Sends whatever `start` batched; called once after each fan-out has started its members. */
  flush(): void;
  /**
   * Opens a stream on agent `agent`; undefined when no live session is reachable. With
   * `asCall`, it calls method `name` instead, the call's partial results being the items.
   */
  openStream<T>(
    agent: string,
    name: string,
    request: unknown,
    options: StreamOptions,
    asCall?: boolean,
  ): MusterStream<T> | undefined;
}

/** The agents connected to this server. */
export class LocalReach implements Reach {
  /**
   * The CALL of the fan-out being started, encoded once for all its members; dropped by
   * `flush()`, which the router calls once they have all started.
   */
  #shared: SharedCall | undefined;
  constructor(readonly fleet: Fleet) {}
  agents(): AgentInfo[] {
    return this.fleet.presence.list();
  }
  agent(name: string): AgentInfo | undefined {
    return this.fleet.presence.get(name);
  }
  known(name: string): boolean {
    return this.fleet.presence.get(name) !== undefined;
  }
  watch(fn: (name: string) => void): () => void {
    return this.fleet.presence.on((e) => fn(e.agent.name));
  }
  start(
    name: string,
    method: string,
    payload: Payload,
    timeoutMs: number,
    cb: CallCallbacks,
    origin?: CallOrigin,
  ): CallHandle | undefined {
    const peer = this.fleet.live(name);
    if (peer === undefined) return undefined;
    let shared = this.#shared;
    if (shared === undefined || !shared.matches(method, timeoutMs, payload)) {
      shared = new SharedCall(method, timeoutMs, payload);
      this.#shared = shared;
    }
    return peer.rpc.start(method, payload, timeoutMs, cb, false, origin, shared);
  }
  flush(): void {
    this.#shared = undefined;
  }
  openStream<T>(
    agent: string,
    name: string,
    request: unknown,
    options: StreamOptions,
  ): MusterStream<T> | undefined {
    return this.fleet.live(agent)?.rpc.openStream<T>(name, request, options);
  }
}

/** What a router reads from its server (live: runtime flags change the call timeout). */
export interface RouterHost {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  readonly callTimeoutMs: number;
  readonly rpcLimits: RpcLimits;
  readonly decodeLimits: Readonly<Required<DecodeLimits>>;
}

/** The error for an agent with no live session: offline (known) or unknown. */
export function notConnected(reach: Reach, name: string): MusterError {
  if (!reach.known(name)) return new MusterError(ErrorCode.NOT_FOUND, `no agent named ${name} is known`);
  const why = reach.whyUnreachable?.(name);
  return new MusterError(
    ErrorCode.UNAVAILABLE,
    why === undefined ? `agent ${name} is not connected` : `agent ${name} cannot be reached: ${why}`,
  );
}

/** Delivers to the agents its reach has: this server's, or the cluster's. */
export class FleetRouter implements Router {
  constructor(
    readonly host: RouterHost,
    readonly fleet: Fleet,
    readonly reach: Reach,
  ) {}

  call<T>(
    target: string | Target,
    method: string,
    request?: unknown,
    options: CallOptions = {},
    gate?: RelayGate,
  ): ServerFanOut<T> {
    const { host, reach } = this;
    const t = typeof target === "string" ? parseTarget(target, host.rpcLimits.maxTargetBytes) : target;
    const payload = encodeValue(request);
    const timeoutMs = options.timeoutMs ?? host.callTimeoutMs;
    let expected: string[];
    if (t !== "all" && "names" in t) expected = [...t.names];
    else {
      const match = matcher(t);
      expected = reach
        .agents()
        .filter(match)
        .map((a) => a.name);
    }
    if (host.logger.isLevelEnabled("debug"))
      host.logger.debug(
        {
          target: truncateForLog(formatTarget(t)),
          method: truncateForLog(method),
          expected: expected.length,
        },
        "fan-out",
      );
    const fanOut = new FanOutCall<T>(
      expected,
      { clock: host.clock, timeoutMs, signal: options.signal, method, decodeLimits: host.decodeLimits },
      (name, cb) => {
        const origin = options.origin;
        if (gate === undefined) return reach.start(name, method, payload, timeoutMs, cb, origin);
        const admitted = gate.admit(name, cb);
        if (admitted instanceof MusterError) {
          cb.onSettle(admitted, undefined); // answered here: the call never reaches the agent
          return SETTLED;
        }
        return reach.start(name, method, payload, timeoutMs, admitted, origin);
      },
    );
    reach.flush();
    // Recorded after whoever awaits the fan-out has run, so as not to add to its latency.
    void fanOut.done.then((r) => {
      setImmediate(() => host.metrics.recordOutcomes(method, r.outcomes));
    });
    return fanOut;
  }

  callAgent<T>(name: string, method: string, request?: unknown, options: CallOptions = {}): Promise<T> {
    const peer = this.fleet.live(name);
    if (peer === undefined)
      return options.onItem === undefined
        ? this.#callElsewhere<T>(name, method, request, options)
        : this.#streamElsewhere<T>(name, method, request, options, options.onItem);
    const metrics = this.host.metrics;
    const started = performance.now();
    const record = (status: OutcomeStatus) => metrics.recordCall(method, status, performance.now() - started);
    const o = options.timeoutMs === undefined ? { ...options, timeoutMs: this.host.callTimeoutMs } : options;
    return (peer.rpc.call(method, request, o) as Promise<T>).then(
      (value) => {
        record("ok");
        return value;
      },
      (err: unknown) => {
        record(err instanceof MusterError && err.code === ErrorCode.DEADLINE_EXCEEDED ? "timeout" : "error");
        throw err;
      },
    );
  }

  /**
   * An agent without a session here: a one-agent fan-out through the reach, which finds it on
   * another server or reports it not connected.
   */
  async #callElsewhere<T>(name: string, method: string, request: unknown, options: CallOptions): Promise<T> {
    const { reach, host } = this;
    const timeoutMs = options.timeoutMs ?? host.callTimeoutMs;
    const payload = encodeValue(request);
    let reachable = false;
    const fan = new FanOutCall<T>(
      [name],
      { clock: host.clock, timeoutMs, signal: options.signal, method, decodeLimits: host.decodeLimits },
      (n, cb) => {
        const handle = reach.start(n, method, payload, timeoutMs, cb, options.origin);
        reachable = handle !== undefined;
        return handle;
      },
    );
    reach.flush();
    if (!reachable) throw notConnected(reach, name);
    const outcome = (await fan.done).byAgent.get(name);
    const status = outcome?.status ?? "error";
    host.metrics.recordCall(method, status === "not_connected" ? "error" : status, outcome?.durationMs ?? 0);
    if (outcome?.status === "ok") return outcome.value as T;
    throw MusterError.fromBody(outcome?.error);
  }

  /**
   * A call with partial results to an agent without a session here: a relayed stream (the
   * only path that carries items between servers, with credit), its items handed to `onItem`
   * and its final value returned.
   */
  async #streamElsewhere<T>(
    name: string,
    method: string,
    request: unknown,
    options: CallOptions,
    onItem: (item: unknown) => void,
  ): Promise<T> {
    const { host } = this;
    const started = performance.now();
    const timeoutMs = options.timeoutMs ?? host.callTimeoutMs;
    const stream =
      this.reach.openStream<unknown>(
        name,
        method,
        request,
        { timeoutMs, signal: options.signal, origin: options.origin },
        true,
      ) ?? failedStream<unknown>(method, notConnected(this.reach, name));
    let status: OutcomeStatus = "error";
    try {
      for await (const item of stream) {
        try {
          onItem(item);
        } catch (err) {
          host.logger.warn({ err, method }, "onItem callback failed");
        }
      }
      if (options.signal?.aborted)
        throw new MusterError(ErrorCode.CANCELLED, `call ${method} to agent ${name} cancelled by the caller`);
      status = "ok";
      return stream.result as T;
    } catch (err) {
      if (err instanceof MusterError && err.code === ErrorCode.DEADLINE_EXCEEDED) status = "timeout";
      throw err;
    } finally {
      host.metrics.recordCall(method, status, performance.now() - started);
    }
  }

  openStream<T>(
    agent: string,
    name: string,
    request?: unknown,
    options: StreamOptions = {},
  ): MusterStream<T> {
    const stream = this.reach.openStream<T>(agent, name, request, options);
    return stream ?? failedStream(name, notConnected(this.reach, agent));
  }
}

/** The handle of a call answered without being started. */
const SETTLED: CallHandle = { id: 0, cancel: () => {} };
