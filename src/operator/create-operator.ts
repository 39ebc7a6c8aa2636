import { greet } from "../client/greet.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { AsyncQueue } from "../internal/async-queue.js";
import { type Clock, systemClock, type TimerHandle } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { deferred } from "../internal/deferred.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { VERSION } from "../internal/version.js";
import type { AgentInfo } from "../presence/presence.js";
import { RpcEndpoint } from "../rpc/endpoint.js";
import { type FanOut, summarize } from "../rpc/fan-out.js";
import type { MusterStream, StreamOptions } from "../rpc/stream.js";
import type { CallOutcome } from "../rpc/types.js";
import { type AgentRunOptions, runInstance } from "../run/agent-runs.js";
import type { RunEvent, RunStatus } from "../run/events.js";
import { type FileRef, RUN_METHODS } from "../run/protocol.js";
import type { SubmitRequest } from "../run/submit.js";
import { uploadFiles } from "../run/upload.js";
import type { AgentsPage, AgentsPageRequest } from "../server/agents-page.js";
import type { EnrolmentRequest } from "../server/enrolment.js";
import type { RelayCallItem, RelayStreamRequest } from "../server/operator-methods.js";
import type { ServerInfo } from "../server/server-info.js";
import type { WatchItem } from "../server/watch-agents.js";
import { Session } from "../session/session.js";
import type { MemoryNetwork } from "../transport/memory.js";
import type { TlsClientOptions } from "../transport/types.js";
import { CloseCode } from "../wire/frame.js";

export interface OperatorOptions {
  /** Server URL (ws, wss, tcp, tls, grpc, grpcs, http, https, memory). */
  server: string;
  /** Shown in the server's logs. @default `operator-<pid>` */
  name?: string;
  /**
   * The credential: an operator or admin token (`muster token create --role operator`). Not
   * needed with a client certificate (`tls.cert`, OU operator or admin) or a standalone server.
   */
  token?: string;
  tls?: TlsClientOptions;
  memory?: MemoryNetwork;
  logger?: Logger;
  clock?: Clock;
  /** @default 10000 */
  connectTimeoutMs?: number;
  /**
   * Take part in the runs this operator submits, as their instance "local": the run methods
   * are answered for these kinds of stage (`muster run --server` without --disable-local).
   */
  runs?: AgentRunOptions;
}

/**
 * A fan-out relayed by the server: the same shape as `server.call()`'s, outcomes streaming in
 * as the agents answer.
 * @deprecated Use `FanOut`: this name is kept as an alias.
 */
export type RemoteCall<T = unknown> = FanOut<T>;

/** A client that operates a server: lists agents and calls them through it. */
export interface MusterOperator {
  /**
   * Every agent the server knows, following its pages: live ones, then pending enrolment
   * requests, then recently offline ones, each by name.
   */
  agents(): Promise<AgentInfo[]>;
  /** One page of agents by name (`muster.agents`); give its `next` as `after` for the next one. */
  agentsPage(request?: AgentsPageRequest): Promise<AgentsPage>;
  agent(name: string): Promise<AgentInfo>;
  call<T = unknown>(
    target: string,
    method: string,
    args?: unknown,
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ): FanOut<T>;
  /**
   * Opens stream `name` on agent `agent`, relayed by the server (`muster.stream`) with flow
   * control end to end. Errors arrive through the iteration.
   */
  stream<T = unknown>(agent: string, name: string, args?: unknown, options?: StreamOptions): MusterStream<T>;
  /**
   * Accepts or rejects an agent's waiting enrolment request (admin role): the one with
   * `fingerprint`, which must be given when several agents ask for the same name.
   */
  enrol(action: "accept" | "reject", name: string, fingerprint?: string): Promise<EnrolmentRequest>;
  /** The enrolment requests waiting, each with its fingerprint and whether it is in conflict. */
  enrolments(): Promise<EnrolmentRequest[]>;
  /**
   * The agents, then each change to their listing as it happens (`muster.watch`): `agents` items
   * first (the last without `more`), then `agent` (its new row) or `gone` items.
   */
  watchAgents(): MusterStream<WatchItem>;
  /** The servers of the cluster (or the one server): name, URLs, agents, load, state. */
  servers(): Promise<ServerInfo[]>;
  /**
   * Submits a run: its files are uploaded first (those the server lacks), then the run starts
   * and its events stream in; the stream's value says whether every stage completed.
   */
  submitRun(
    request: SubmitRequest,
    files: Array<FileRef & { bytes: Uint8Array }>,
  ): Promise<MusterStream<RunEvent>>;
  /** Runs under way on the server, then the latest ones over. */
  runs(): Promise<RunStatus[]>;
  /** Stops a run: the stage under way ends on every instance, its stats still gathered. */
  stopRun(id: string): Promise<void>;
  close(): Promise<void>;
}

/** Connects to a server as an operator (loopback only until authentication is configured). */
export async function connectOperator(options: OperatorOptions): Promise<MusterOperator> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  let rpc!: RpcEndpoint;
  const runs =
    options.runs === undefined ? undefined : runInstance(options.runs, logger.child({ component: "runs" }));
  const session = new Session(
    { clock, logger },
    {
      onMessage: (f) => rpc.receive(f),
      onState: () => {},
      onLinkDown: (info) =>
        rpc.fail(new MusterError(ErrorCode.UNAVAILABLE, `link to the server lost: ${info.message}`)),
      onPeerClose: (close) =>
        rpc.fail(
          new MusterError(
            ErrorCode.UNAVAILABLE,
            `server closed the session (${close.code}): ${close.message}`,
          ),
        ),
    },
  );
  rpc = new RpcEndpoint(session, {
    clock,
    logger,
    handlers: runs?.handlers ?? new Map(),
    ...(runs !== undefined && { streamHandlers: runs.streams }),
    peer: { role: "server", name: "server", labels: {}, sessionId: "", remoteAddress: options.server },
    defaultTimeoutMs: DEFAULTS.callTimeoutMs,
    maxIncomingCalls: runs === undefined ? 0 : 64,
    describePeer: "the server",
    describeSelf: "this operator",
  });
  const link = await greet(
    options.server,
    {
      role: "operator",
      name: options.name ?? `operator-${process.pid}`,
      labels: {},
      version: VERSION,
      ...(options.token !== undefined ? { auth: options.token } : {}),
    },
    0,
    {
      clock,
      logger,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      maxFrameBytes: DEFAULTS.maxFrameBytes,
      tls: options.tls,
      memory: options.memory,
      onFrame: (t, b) => session.receive(t, b),
      onClose: (t, info) => session.linkClosed(t, info),
    },
  );
  session.attach(link.transport, 0);
  link.release();
  let ticker: TimerHandle | undefined;
  const tick = (): void => {
    session.tick(clock.now());
    if (session.state !== "closed") {
      ticker = clock.setTimeout(tick, 1000);
      ticker.unref();
    }
  };
  tick();

  const agentsPage = async (request: AgentsPageRequest = {}): Promise<AgentsPage> => {
    const reply = (await rpc.call("muster.agents", request)) as AgentsPage | AgentInfo[];
    // A server from before pages answers with the whole list.
    return Array.isArray(reply) ? { agents: reply, total: reply.length } : reply;
  };
  return {
    async agents() {
      const all: AgentInfo[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await agentsPage(after === undefined ? {} : { after });
        all.push(...page.agents);
        // Names only grow from page to page: anything else would loop for ever.
        if (page.next === undefined || (after !== undefined && page.next <= after)) break;
        after = page.next;
      }
      return all.sort(byStateThenName);
    },
    agentsPage,
    agent: (name) => rpc.call("muster.agent", { name }) as Promise<AgentInfo>,
    call<T = unknown>(
      target: string,
      method: string,
      args?: unknown,
      callOptions: { timeoutMs?: number; signal?: AbortSignal } = {},
    ): FanOut<T> {
      const timeoutMs = callOptions.timeoutMs ?? DEFAULTS.callTimeoutMs;
      const expected = deferred<string[]>();
      const expectedSoFar: string[] = [];
      const queue = new AsyncQueue<CallOutcome<T>>();
      const outcomes: CallOutcome<T>[] = [];
      const abort = new AbortController();
      const outer = callOptions.signal;
      if (outer?.aborted) abort.abort();
      else outer?.addEventListener("abort", () => abort.abort(), { once: true });
      const done = rpc
        .call(
          "muster.call",
          { target, method, args, timeoutMs },
          {
            // The server stops at `timeoutMs`; this side waits a little longer for the last outcomes.
            timeoutMs: timeoutMs + 2000,
            signal: abort.signal,
            onItem: (raw) => {
              const item = raw as RelayCallItem;
              if (item.type === "expected") {
                // A long list comes in several items: the last has no `more`.
                expectedSoFar.push(...item.agents);
                if (item.more !== true) expected.resolve(expectedSoFar);
              } else {
                const { type: _t, ...rest } = item;
                const o = rest as CallOutcome<T>;
                outcomes.push(o);
                queue.push(o);
              }
            },
          },
        )
        .then(
          () => {
            queue.end();
            const byAgent = new Map(outcomes.map((o) => [o.agent, o]));
            return { outcomes, byAgent, summary: summarize(outcomes) };
          },
          (err: unknown) => {
            expected.reject(err);
            queue.fail(err);
            throw err;
          },
        );
      expected.promise.catch(() => {});
      done.catch(() => {});
      return {
        expected: expected.promise,
        done,
        summary: () => summarize(outcomes),
        cancel: () => abort.abort(),
        [Symbol.asyncIterator]: () => queue,
      };
    },
    stream<T>(agent: string, name: string, args?: unknown, streamOptions: StreamOptions = {}) {
      const request: RelayStreamRequest = { agent, name, args };
      if (streamOptions.windowBytes !== undefined) request.windowBytes = streamOptions.windowBytes;
      return rpc.openStream<T>("muster.stream", request, streamOptions);
    },
    enrol: (action, name, fingerprint) =>
      rpc.call("muster.enrol", {
        action,
        name,
        ...(fingerprint !== undefined ? { fingerprint } : {}),
      }) as Promise<EnrolmentRequest>,
    enrolments: () => rpc.call("muster.enrolments", undefined) as Promise<EnrolmentRequest[]>,
    servers: () => rpc.call("muster.servers", undefined) as Promise<ServerInfo[]>,
    watchAgents: () => rpc.openStream<WatchItem>("muster.watch", {}),
    async submitRun(request, files) {
      await uploadFiles((m, r) => rpc.call(m, r, { timeoutMs: 30_000 }), request.run, files);
      return rpc.openStream<RunEvent>("muster.run.submit", request);
    },
    runs: () => rpc.call("muster.runs", undefined) as Promise<RunStatus[]>,
    async stopRun(id) {
      await rpc.call(RUN_METHODS.STOP, { run: id });
    },
    async close() {
      await runs?.host.close();
      if (ticker) clock.clearTimeout(ticker);
      rpc.fail(new MusterError(ErrorCode.CLOSED, "operator closed"));
      session.close(CloseCode.NORMAL, "operator done");
    },
  };
}

/** Live agents first, then pending enrolment requests, then recently offline ones; by name. */
function byStateThenName(a: AgentInfo, b: AgentInfo): number {
  const rank = (x: AgentInfo): number => (x.state === "offline" ? 2 : x.state === "pending" ? 1 : 0);
  return rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}
