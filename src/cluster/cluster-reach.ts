import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { AgentInfo } from "../presence/presence.js";
import type { CallCallbacks, CallHandle } from "../rpc/endpoint.js";
import { failedStream, type MusterStream, type StreamOptions } from "../rpc/stream.js";
import { type LocalReach, notConnected, type Reach } from "../server/router.js";
import type { Payload } from "../wire/frame.js";
import type { CallOrigin } from "../wire/origin.js";
import { callAsStream } from "./call-stream.js";
import type { Owner, RemoteCalls } from "./remote-calls.js";
import type { StreamRelay } from "./stream-relay.js";

/** How long a call whose agent left its server waits for the agent to show up elsewhere. */
export const REROUTE_WAIT_MS = 3000;
/** How often it looks meanwhile. */
const REROUTE_POLL_MS = 50;

/** What the cluster knows of agents held by other servers. */
export interface ClusterView {
  /** This server's name. */
  readonly self: string;
  /** Agents whose latest record names another server (live or not), with that server. */
  remoteAgents(): AgentInfo[];
  /** The other live server holding a session of `name`, if any. */
  ownerOf(name: string): Owner | undefined;
  /** Whether that server relays streams (an older version in a rolling upgrade does not). */
  relaysStreams(owner: Owner): boolean;
  /** Why the server the directory names for `name` cannot be reached from here, if so. */
  whyUnreachable(name: string): string | undefined;
  /** Calls `fn` with the name of each agent of another server whose listing may have changed. */
  onAgentChange(fn: (name: string) => void): () => void;
}

/**
 * The whole cluster's agents: this server's first, then those other servers hold. A call to an
 * agent held elsewhere goes to its owner in one message per server and fan-out; a stream is
 * relayed through its owner with flow control end to end.
 */
export class ClusterReach implements Reach {
  /** Agents with calls being sent on to their new server: the tail of each one's queue. */
  readonly #following = new Map<string, Promise<unknown>>();

  constructor(
    readonly local: LocalReach,
    readonly view: ClusterView,
    readonly remote: RemoteCalls,
    readonly streams: StreamRelay,
  ) {}

  agents(): AgentInfo[] {
    const self = this.view.self;
    const byName = new Map<string, AgentInfo>();
    for (const a of this.local.agents()) byName.set(a.name, { ...a, server: self });
    for (const a of this.view.remoteAgents()) {
      const here = byName.get(a.name);
      // A session here wins, unless it is one that ended here and lives on elsewhere.
      if (here === undefined || (here.state === "offline" && a.state !== "offline")) byName.set(a.name, a);
    }
    const live: AgentInfo[] = [];
    const offline: AgentInfo[] = [];
    for (const a of byName.values()) (a.state === "offline" ? offline : live).push(a);
    return [...live, ...offline];
  }

  agent(name: string): AgentInfo | undefined {
    return this.agents().find((a) => a.name === name);
  }

  whyUnreachable(name: string): string | undefined {
    return this.local.known(name) && this.local.agent(name)?.state !== "offline"
      ? undefined
      : this.view.whyUnreachable(name);
  }

  known(name: string): boolean {
    return this.local.known(name) || this.view.remoteAgents().some((a) => a.name === name);
  }

  watch(fn: (name: string) => void): () => void {
    const offLocal = this.local.watch(fn);
    const offRemote = this.view.onAgentChange(fn);
    return () => {
      offLocal();
      offRemote();
    };
  }

  start(
    name: string,
    method: string,
    payload: Payload,
    timeoutMs: number,
    cb: CallCallbacks,
    origin?: CallOrigin,
  ): CallHandle | undefined {
    // Calls to an agent still being followed to its new server go after them, in order.
    if (this.#following.has(name)) {
      const at = performance.now();
      return this.#after(name, cb, (d) =>
        this.#startNow(name, method, payload, timeoutMs - (performance.now() - at), d, 0, origin),
      );
    }
    return this.#startNow(name, method, payload, timeoutMs, cb, 0, origin);
  }

  #startNow(
    name: string,
    method: string,
    payload: Payload,
    timeoutMs: number,
    cb: CallCallbacks,
    hops = 0,
    origin?: CallOrigin,
  ): CallHandle | undefined {
    const left = Math.max(1, Math.round(timeoutMs));
    const handle = this.local.start(name, method, payload, left, cb, origin);
    if (handle !== undefined) return handle;
    const owner = this.view.ownerOf(name);
    if (owner === undefined) return undefined;
    return this.remote.start(owner, name, method, payload, left, cb, hops, origin);
  }

  /**
   * Runs `begin` once the calls to `name` queued before it have started, with a handle the
   * caller holds meanwhile (cancelling it cancels the call, started or not). A call that cannot
   * start (`begin` gives nothing) settles as not connected.
   */
  #after(
    name: string,
    cb: CallCallbacks,
    begin: (d: Deferred) => CallHandle | undefined | Promise<CallHandle | undefined>,
    orElse?: MusterError,
  ): Deferred {
    const d = new Deferred(cb);
    const prev = this.#following.get(name) ?? Promise.resolve();
    const next = prev.then(async () => {
      if (d.done) return;
      const handle = await begin(d);
      if (handle === undefined) d.onSettle(orElse ?? notConnected(this, name), undefined);
      else if (d.done) handle.cancel(d.reason ?? new MusterError(ErrorCode.CANCELLED, "call cancelled"));
      else d.handle = handle;
    });
    const tail = next.catch(() => undefined);
    this.#following.set(name, tail);
    void tail.then(() => {
      if (this.#following.get(name) === tail) this.#following.delete(name);
    });
    return d;
  }

  flush(): void {
    this.local.flush();
    this.remote.flush();
  }

  /**
   * Sends on a call whose server (`from`) answered that agent `name` is not there: to where the
   * directory places the agent now, here or on another server, as soon as it says so (an agent
   * handed over by a draining server is taken over within about a second), after any call to
   * the agent already being sent on, and before any made later: calls reach the agent in the
   * order they were made. Settles with `err` when the agent is nowhere else within
   * `REROUTE_WAIT_MS` or the call's time.
   */
  reroute(
    name: string,
    from: Owner,
    method: string,
    payload: Payload,
    remainingMs: number,
    cb: CallCallbacks,
    hops: number,
    err: MusterError,
    origin?: CallOrigin,
  ): CallHandle {
    const at = performance.now();
    return this.#after(
      name,
      cb,
      async (d) => {
        const waitMs = Math.min(remainingMs, REROUTE_WAIT_MS);
        for (;;) {
          const left = remainingMs - (performance.now() - at);
          if (left < 1) return undefined;
          const here = this.local.start(name, method, payload, Math.round(left), d, origin);
          if (here !== undefined) return here;
          const owner = this.view.ownerOf(name);
          if (owner !== undefined && owner.serverId !== from.serverId) {
            const handle = this.remote.start(owner, name, method, payload, Math.round(left), d, hops, origin);
            this.remote.flush();
            return handle;
          }
          if (performance.now() - at >= waitMs) return undefined;
          await new Promise((r) => setTimeout(r, REROUTE_POLL_MS));
        }
      },
      err,
    );
  }

  openStream<T>(
    agent: string,
    name: string,
    request: unknown,
    options: StreamOptions,
    asCall = false,
  ): MusterStream<T> | undefined {
    const here = asCall
      ? (callAsStream(this.local, agent, name, request, options, this.streams.decodeLimits) as
          | MusterStream<T>
          | undefined)
      : this.local.openStream<T>(agent, name, request, options);
    if (here !== undefined) return here;
    const owner = this.view.ownerOf(agent);
    if (owner === undefined) return undefined;
    if (!this.view.relaysStreams(owner))
      return failedStream(
        name,
        new MusterError(
          ErrorCode.UNAVAILABLE,
          `agent ${agent} is connected to server ${owner.server}, whose version does not relay streams: open the stream there`,
        ),
      );
    return this.streams.open<T>(owner, agent, name, request, options, asCall);
  }
}

/** A call's handle before the call has started: cancelling it settles it now, or cancels the call. */
class Deferred implements CallHandle, CallCallbacks {
  readonly id = 0;
  handle: CallHandle | undefined;
  done = false;
  reason: MusterError | undefined;
  constructor(readonly cb: CallCallbacks) {}
  cancel(reason?: MusterError): void {
    this.reason = reason ?? new MusterError(ErrorCode.CANCELLED, "call cancelled by the caller");
    if (this.handle !== undefined) this.handle.cancel(this.reason);
    else this.onSettle(this.reason, undefined);
  }
  onSettle(err: MusterError | undefined, payload: Payload | undefined): void {
    if (this.done) return;
    this.done = true;
    this.cb.onSettle(err, payload);
  }
  onItem(payload: Payload): void {
    if (!this.done) this.cb.onItem?.(payload);
  }
}
