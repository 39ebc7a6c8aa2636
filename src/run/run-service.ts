import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { AsyncQueue } from "../internal/async-queue.js";
import type { Logger } from "../internal/logger.js";
import type { AgentInfo, PresenceEvent } from "../presence/presence.js";
import type { MusterStream, StreamContext, StreamHandler, StreamOptions } from "../rpc/stream.js";
import { matcher, parseTarget } from "../rpc/target.js";
import type { CallContext, CallOptions, Handler, PeerInfo } from "../rpc/types.js";
import { coordinateRun } from "./coordinator.js";
import type { RunEvent, RunStatus } from "./events.js";
import { FileStore } from "./file-store.js";
import { type InstancePort, type PeerCaller, rpcPort } from "./instance-port.js";
import { RUN_METHODS, readFilesRequest, readPutRequest } from "./protocol.js";
import type { RunFleet } from "./stage-boot.js";
import { loadedStage, readSubmitRequest } from "./submit.js";

/** What the run service needs from its server. */
export interface RunServiceHost {
  readonly logger: Logger;
  /** Every agent the server (or its cluster) knows, with its state. */
  agents(): AgentInfo[];
  callAgent(name: string, method: string, request: unknown, options: CallOptions): Promise<unknown>;
  openStream(agent: string, name: string, request: unknown, options: StreamOptions): MusterStream;
  /** Calls and streams to the operator whose handler view is `peer` (its own session). */
  operator(peer: PeerInfo): PeerCaller | undefined;
  /** Throws PERMISSION_DENIED unless the operator's grants cover `method`. */
  authorizeRelay(peer: PeerInfo, method: string): void;
  /** Presence of the agents connected to this server; returns the unsubscribe. */
  onPresence(fn: (e: PresenceEvent) => void): () => void;
}

/** Runs kept in `muster runs` once over (the latest). */
const KEEP_DONE = 50;
/** Runs under way at once on one server. */
const MAX_ACTIVE = 16;

interface Active {
  status: RunStatus;
  stop: AbortController;
  stageStartedAt: number;
  runtimes: Array<number | undefined>;
}

/**
 * Coordinated runs on a server: operators upload a run's files (content-addressed, once),
 * submit it as a stream whose items are its events, list runs and stop them. The server is the
 * coordinator: it boots each stage on the agents the run selects (and on the submitting
 * operator's own instance unless disabled), starts them together and merges their stats.
 */
export class RunService {
  readonly store = new FileStore();
  readonly #host: RunServiceHost;
  readonly #active = new Map<string, Active>();
  readonly #done: RunStatus[] = [];
  readonly #watchers = new Set<(run: string, e: RunEvent) => void>();

  constructor(host: RunServiceHost) {
    this.#host = host;
  }

  /** Calls `fn` with every event of every run submitted here, as it happens; returns the unsubscribe. */
  watch(fn: (run: string, e: RunEvent) => void): () => void {
    this.#watchers.add(fn);
    return () => this.#watchers.delete(fn);
  }

  /** Operator methods: `muster.run.files`, `muster.run.put`, `muster.runs`, `muster.run.stop`. */
  methods(): Map<string, Handler> {
    const m = new Map<string, Handler>();
    m.set(RUN_METHODS.FILES, (req, ctx: CallContext) => {
      this.#host.authorizeRelay(ctx.peer, "muster.run");
      return { missing: this.store.missing(readFilesRequest(req).files) };
    });
    m.set(RUN_METHODS.PUT, (req, ctx: CallContext) => {
      this.#host.authorizeRelay(ctx.peer, "muster.run");
      const r = readPutRequest(req);
      this.store.put(r.sha256, r.size, r.offset, Buffer.from(r.data, "base64"));
      return null;
    });
    m.set("muster.runs", () => this.list());
    m.set(RUN_METHODS.STOP, (req, ctx: CallContext) => {
      this.#host.authorizeRelay(ctx.peer, "muster.run");
      const id = readFilesRequest({ run: (req as { run?: unknown } | null)?.run, files: [] }).run;
      const a = this.#active.get(id);
      if (a === undefined)
        throw new MusterError(ErrorCode.NOT_FOUND, `no run ${id} under way on this server`);
      a.stop.abort(
        new MusterError(ErrorCode.CANCELLED, `stopped by ${ctx.peer.identity?.subject ?? ctx.peer.name}`),
      );
      return { stopping: id };
    });
    return m;
  }

  /** The operator stream `muster.run.submit`. */
  streams(): Map<string, StreamHandler> {
    const service = this;
    const m = new Map<string, StreamHandler>();
    m.set("muster.run.submit", async function* (req: unknown, ctx: StreamContext) {
      service.#host.authorizeRelay(ctx.peer, "muster.run");
      return yield* service.#submit(req, ctx);
    });
    return m;
  }

  /** Runs under way, then the latest ones over. */
  list(): RunStatus[] {
    const now = performance.now();
    const active = [...this.#active.values()].map((a) => ({
      ...a.status,
      elapsedS: a.stageStartedAt > 0 ? Math.round((now - a.stageStartedAt) / 100) / 10 : 0,
    }));
    return [...active, ...this.#done];
  }

  /** Stops every run (the server drains or closes). */
  stopAll(why: string): void {
    for (const a of this.#active.values()) a.stop.abort(new MusterError(ErrorCode.UNAVAILABLE, why));
  }

  async *#submit(req: unknown, ctx: StreamContext): AsyncGenerator<RunEvent, { ok: boolean }> {
    const r = readSubmitRequest(req);
    if (this.#active.has(r.run))
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `run ${r.run} is already under way`);
    if (this.#active.size >= MAX_ACTIVE)
      throw new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `${MAX_ACTIVE} runs are under way on this server`);
    const target = parseTarget(r.select);
    // Every file of every stage must have been uploaded: fail now rather than at stage 3.
    const stages = r.stages.map((s) => loadedStage(s, this.store.take(s.files)));
    let local: InstancePort | undefined;
    if (r.local) {
      const caller = this.#host.operator(ctx.peer);
      if (caller === undefined)
        throw new MusterError(ErrorCode.UNAVAILABLE, "the submitting operator's session is gone");
      local = rpcPort("local", caller);
    }
    const host = this.#host;
    const fleet: RunFleet = {
      selector: r.select,
      candidates: () => {
        const match = matcher(target);
        return host
          .agents()
          .filter((a) => a.state === "connected" && a.name !== "local" && match(a))
          .map((a) => a.name)
          .sort();
      },
      port: (name) =>
        rpcPort(name, {
          call: (method, request, o) => host.callAgent(name, method, request, o),
          openStream: (n, request, o) => host.openStream(name, n, request, o),
        }),
    };
    const stop = new AbortController();
    const onCancel = (): void => stop.abort(ctx.signal.reason);
    ctx.signal.addEventListener("abort", onCancel, { once: true });
    const a: Active = {
      status: {
        id: r.run,
        stages: r.stages.map((s) => s.name),
        stage: 0,
        state: "booting",
        instances: [],
        elapsedS: 0,
        submittedBy: ctx.peer.identity?.subject ?? ctx.peer.name,
        startedAt: new Date().toISOString(),
      },
      stop,
      stageStartedAt: 0,
      runtimes: r.stages.map((s) => s.runtimeMs),
    };
    this.#active.set(r.run, a);
    const queue = new AsyncQueue<RunEvent>({ maxItems: 10_000 });
    const tell = (e: RunEvent): void => {
      queue.push(e);
      for (const fn of this.#watchers) fn(r.run, e);
    };
    const running = coordinateRun({
      id: r.run,
      stages,
      ...(local !== undefined && { local }),
      fleet,
      bootTimeoutMs: r.bootTimeoutMs,
      onLoss: r.onLoss,
      signal: stop.signal,
      logger: host.logger,
      emit: (e) => {
        this.#track(a, e);
        tell(e);
      },
    }).finally(() => queue.end());
    // A dropped link is reported at once (the stream fails only if the session cannot resume).
    const unwatch = host.onPresence((e) => {
      const s = a.status;
      if (s.state !== "running" || !s.instances.includes(e.agent.name)) return;
      if (e.type === "disconnect")
        tell({ t: "unreachable", stage: s.stage, instance: e.agent.name, reason: e.reason });
      else if (e.type === "resume")
        tell({ t: "reachable", stage: s.stage, instance: e.agent.name, downtimeMs: e.downtimeMs });
    });
    host.logger.info(
      { run: r.run, stages: a.status.stages, by: a.status.submittedBy, select: r.select },
      "run submitted",
    );
    try {
      for await (const e of queue) yield e;
      const outcome = await running;
      return { ok: outcome.ok };
    } finally {
      unwatch();
      ctx.signal.removeEventListener("abort", onCancel);
      stop.abort(new MusterError(ErrorCode.CANCELLED, "the submitter went away"));
      await running.catch(() => {});
      this.#active.delete(r.run);
      this.#done.unshift({ ...a.status, elapsedS: 0 });
      this.#done.length = Math.min(this.#done.length, KEEP_DONE);
    }
  }

  #track(a: Active, e: RunEvent): void {
    const s = a.status;
    switch (e.t) {
      case "stage":
        s.stage = e.stage;
        s.state = "booting";
        s.instances = [];
        a.stageStartedAt = 0;
        delete s.qps;
        delete s.errors;
        if (a.runtimes[e.stage] !== undefined) s.runtimeS = a.runtimes[e.stage]! / 1000;
        else delete s.runtimeS;
        break;
      case "started":
        s.state = "running";
        s.instances = e.instances;
        a.stageStartedAt = performance.now();
        break;
      case "interval": {
        const c = e.merged.combined;
        s.qps = e.merged.seconds > 0 ? Math.round((c.total.n[3] ?? 0) / e.merged.seconds) : 0;
        s.errors = (s.errors ?? 0) + Object.values(c.total.errors).reduce((x, y) => x + y, 0);
        break;
      }
      case "stopping":
        s.state = "stopping";
        break;
      case "run-done":
        s.state = e.ok ? "done" : "failed";
        if (e.error !== undefined) s.error = e.error.message;
        break;
      default:
        break;
    }
  }
}
