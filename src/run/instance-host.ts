import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { AsyncQueue } from "../internal/async-queue.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import type { PreparedStage, RunSummary, StageSpec } from "./engine/types.js";
import { FileStore } from "./file-store.js";
import type {
  BootReply,
  BootRequest,
  FilesReply,
  FilesRequest,
  PutRequest,
  StageRef,
  StartItem,
} from "./protocol.js";
import { IntervalCollector } from "./stats/collector.js";
import type { Recorder } from "./stats/types.js";

/** Prepares a stage of one kind on this instance (connects, builds; throws a precise error). */
export type Preparer = (
  spec: StageSpec,
  files: Map<string, Uint8Array>,
  o: { instance: string; signal: AbortSignal; logger: Logger },
) => Promise<PreparedStage>;

export interface InstanceHostOptions {
  /** How each kind of stage is prepared here; a kind without one is refused at boot. */
  preparers: Partial<Record<StageSpec["kind"], Preparer>>;
  logger?: Logger;
  /** Wall clock (ms since the epoch), for the reports' times. @default Date.now */
  now?: () => number;
  store?: FileStore;
  /** Stages booted or running at once (over every coordinator). @default 4 */
  maxStages?: number;
}

const NO_RECORDER: Recorder = { record: () => {}, error: () => {} };

/** One stage booted here, until it is released, forgotten or done. */
interface Booted {
  ref: StageRef;
  boot: BootRequest;
  prepared: PreparedStage;
  /** Forgets the stage when no start comes in time. */
  expiry: NodeJS.Timeout | undefined;
  /** Aborts the run: set once started. */
  abort: AbortController | undefined;
}

const key = (r: StageRef): string => `${r.run}/${r.stage}`;

/**
 * The instance side of runs: what an agent (or the local instance of `muster run`) does when
 * a coordinator hands it a stage. Transport-free: the agent's built-in methods and the
 * in-process port call it alike.
 */
export class InstanceHost {
  readonly store: FileStore;
  readonly #o: InstanceHostOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #booted = new Map<string, Booted>();
  #closed = false;

  constructor(o: InstanceHostOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
    this.#now = o.now ?? Date.now;
    this.store = o.store ?? new FileStore();
  }

  files(req: FilesRequest): FilesReply {
    return { missing: this.store.missing(req.files) };
  }

  put(req: PutRequest): void {
    const data = Buffer.from(req.data, "base64");
    this.store.put(req.sha256, req.size, req.offset, data);
  }

  /** Prepares the stage; resolves once it is ready to start, or rejects saying why not. */
  async boot(req: BootRequest, signal: AbortSignal): Promise<BootReply> {
    if (this.#closed) throw new MusterError(ErrorCode.UNAVAILABLE, "this instance is closing");
    const k = key(req);
    if (this.#booted.has(k))
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `stage ${k} is already booted here`);
    // A new stage of a run replaces what the run had booted before it.
    for (const b of [...this.#booted.values()])
      if (b.ref.run === req.run && b.abort === undefined) await this.#forget(b, "a later stage was booted");
    if (this.#booted.size >= (this.#o.maxStages ?? 4))
      throw new MusterError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `this instance already has ${this.#booted.size} stages booted or running`,
      );
    const prepare = this.#o.preparers[req.spec.kind];
    if (prepare === undefined)
      throw new MusterError(
        ErrorCode.UNIMPLEMENTED,
        `this instance cannot run ${req.spec.kind} stages${req.spec.kind === "handler" ? " (it has no such handler)" : ""}`,
      );
    const files = this.store.take(req.files);
    const log = this.#log.child({ run: req.run, stage: req.stage });
    const prepared = await prepare(req.spec, files, { instance: req.instance, signal, logger: log });
    if (signal.aborted || this.#closed) {
      await prepared.close();
      throw new MusterError(ErrorCode.CANCELLED, "the boot was cancelled");
    }
    const b: Booted = {
      ref: { run: req.run, stage: req.stage },
      boot: req,
      prepared,
      expiry: undefined,
      abort: undefined,
    };
    b.expiry = setTimeout(() => {
      log.warn({ afterMs: req.startWithinMs }, "booted stage never started: released");
      void this.#forget(b, "not started in time");
    }, req.startWithinMs);
    b.expiry.unref();
    this.#booted.set(k, b);
    log.info({ clients: prepared.clients, trx: prepared.trx.length }, "stage booted");
    return { clients: prepared.clients, trx: prepared.trx };
  }

  /**
   * Runs a booted stage: `started`, then a report per stats interval (the last one partial,
   * marked final), then the summary as the value. `signal` (the stream cancelled) or `stop()`
   * ends the run early; the stats gathered still come.
   */
  async *start(ref: StageRef, signal: AbortSignal): AsyncGenerator<StartItem, RunSummary> {
    const b = this.#booted.get(key(ref));
    if (b === undefined)
      throw new MusterError(
        ErrorCode.NOT_FOUND,
        `stage ${key(ref)} is not booted here (it expired, or never was)`,
      );
    if (b.abort !== undefined)
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `stage ${key(ref)} already started`);
    clearTimeout(b.expiry);
    const abort = new AbortController();
    b.abort = abort;
    const onCancel = (): void => abort.abort(signal.reason);
    signal.addEventListener("abort", onCancel, { once: true });
    const { boot, prepared } = b;
    const collector = boot.statsDisabled
      ? undefined
      : new IntervalCollector(boot.instance, prepared.trx, prepared.clients, this.#now);
    const queue = new AsyncQueue<StartItem>({ maxItems: 10_000 });
    let ticker: NodeJS.Timeout | undefined;
    try {
      queue.push({ t: "started", atMs: this.#now() });
      const started = performance.now();
      if (collector !== undefined && boot.freqMs > 0)
        ticker = setInterval(() => {
          // A tick just before the runtime's end would leave a last interval of a few ms (and
          // a meaningless rate): that tail goes into the last interval instead.
          const left =
            boot.runtimeMs === undefined
              ? Number.POSITIVE_INFINITY
              : boot.runtimeMs - (performance.now() - started);
          if (left > boot.freqMs / 10) queue.push({ t: "report", report: collector.collect(false) });
        }, boot.freqMs);
      const running = prepared.run({ signal: abort.signal, recorder: collector ?? NO_RECORDER });
      let summary: RunSummary | undefined;
      let failure: unknown;
      running.then(
        (s) => {
          summary = s;
        },
        (e: unknown) => {
          failure = e;
        },
      );
      void running
        .catch(() => {})
        .finally(() => {
          clearInterval(ticker);
          if (collector !== undefined) queue.push({ t: "report", report: collector.collect(true) });
          queue.end();
        });
      for await (const item of queue) yield item;
      if (failure !== undefined) throw MusterError.from(failure, ErrorCode.INTERNAL);
      return summary ?? { clientErrors: {} };
    } finally {
      clearInterval(ticker);
      signal.removeEventListener("abort", onCancel);
      if (!abort.signal.aborted) abort.abort(new MusterError(ErrorCode.CANCELLED, "the run's stream ended"));
      await this.#forget(b, "done");
    }
  }

  /** Ends a running stage early; its stream still brings the last stats and the summary. */
  stop(ref: StageRef): boolean {
    const b = this.#booted.get(key(ref));
    if (b === undefined) return false;
    if (b.abort === undefined) {
      void this.#forget(b, "stopped before it started");
      return true;
    }
    b.abort.abort(new MusterError(ErrorCode.CANCELLED, "stopped by the coordinator"));
    return true;
  }

  /** Forgets every stage of `run` not running (a running one ends with its stream). */
  async release(run: string): Promise<void> {
    for (const b of [...this.#booted.values()])
      if (b.ref.run === run && b.abort === undefined) await this.#forget(b, "released");
  }

  /** Stops everything and frees every prepared stage. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const b of [...this.#booted.values()]) {
      b.abort?.abort(new MusterError(ErrorCode.CANCELLED, "the instance is closing"));
      await this.#forget(b, "closing");
    }
  }

  /** Stages booted or running here now. */
  get stages(): number {
    return this.#booted.size;
  }

  async #forget(b: Booted, why: string): Promise<void> {
    const k = key(b.ref);
    if (this.#booted.get(k) !== b) return;
    this.#booted.delete(k);
    clearTimeout(b.expiry);
    try {
      await b.prepared.close();
    } catch (err) {
      this.#log.warn(
        { run: b.ref.run, stage: b.ref.stage, err: (err as Error).message, why },
        "closing a stage failed",
      );
    }
  }
}
