import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { CallCallbacks, CallHandle } from "../rpc/endpoint.js";
import { type Payload, PayloadKind } from "../wire/frame.js";
import { type CallOrigin, originFrom } from "../wire/origin.js";
import type { ClusterBus } from "./bus.js";
import { type Envelope, encodeEnvelope, toWireError, type WireError } from "./envelope.js";
import type { ClusterSubjects } from "./node-subjects.js";

/** How the runner starts a call on an agent this server holds (undefined: not here). */
export type StartLocal = (
  name: string,
  method: string,
  payload: Payload,
  timeoutMs: number,
  cb: CallCallbacks,
  origin?: CallOrigin,
) => CallHandle | undefined;

/** One outcome waiting to be sent back. */
interface Pending {
  n: string;
  /** 1: the agent is not on this server (the call never started here). */
  m?: 1;
  e?: WireError;
  k?: PayloadKind;
  bytes?: Uint8Array;
}

/** Bytes of head each outcome costs, at most, besides its name and result (a safe estimate). */
const OUTCOME_OVERHEAD = 160;

/** One agent's call of a part, as its callbacks. */
class Run implements CallCallbacks {
  handle: CallHandle | undefined;
  constructor(
    readonly runner: PartRunner,
    readonly key: string,
    readonly origin: string,
    readonly id: string,
    readonly name: string,
  ) {}
  onSettle(err: MusterError | undefined, payload: Payload | undefined): void {
    this.runner.settled(this, err, payload);
  }
}

/**
 * The owner's side of calls from other servers: runs each named agent's call on its local
 * session and sends the outcomes back to the origin, batched per turn of the event loop and
 * split to fit the backplane's largest message. A result too large to carry becomes an error
 * outcome (RESOURCE_EXHAUSTED), never a lost one.
 */
export class PartRunner {
  /** Calls running, by `origin/part id/agent`. */
  readonly #runs = new Map<string, Run>();
  readonly #out = new Map<string, { origin: string; id: string; items: Pending[] }>();
  #flushQueued = false;

  constructor(
    readonly bus: ClusterBus,
    readonly subjects: ClusterSubjects,
    readonly start: StartLocal,
    readonly serverName: string,
    readonly logger: Logger,
  ) {}

  /** Calls running for other servers now. */
  get running(): number {
    return this.#runs.size;
  }

  onPart(env: Envelope): void {
    const h = env.head;
    const { id, origin, method, timeoutMs, k, names } = h;
    if (
      typeof id !== "string" ||
      typeof origin !== "string" ||
      typeof method !== "string" ||
      typeof timeoutMs !== "number" ||
      !(timeoutMs > 0) ||
      typeof k !== "number" ||
      !Array.isArray(names) ||
      env.blobs.length < 1
    ) {
      this.logger.warn(
        { id: String(id), origin: String(origin) },
        "malformed call part from another server: ignored",
      );
      return;
    }
    const payload: Payload = { kind: k as PayloadKind, bytes: new Uint8Array(env.blobs[0]) };
    const by = originFrom(h.by);
    for (const name of names) {
      if (typeof name !== "string") continue;
      const key = `${origin}/${id}/${name}`;
      if (this.#runs.has(key)) continue;
      const run = new Run(this, key, origin, id, name);
      this.#runs.set(key, run);
      const handle = this.start(name, method, payload, timeoutMs, run, by);
      if (handle === undefined) {
        // Not here (any more): the origin may find it at its new server and send it there.
        this.settled(
          run,
          new MusterError(
            ErrorCode.UNAVAILABLE,
            `agent ${name} is not connected to server ${this.serverName}`,
          ),
          undefined,
          true,
        );
      } else if (this.#runs.has(key)) run.handle = handle;
    }
  }

  onCancel(env: Envelope): void {
    const { id, origin, names } = env.head;
    if (typeof id !== "string" || typeof origin !== "string" || !Array.isArray(names)) return;
    for (const name of names) {
      const run = this.#runs.get(`${origin}/${id}/${String(name)}`);
      run?.handle?.cancel(new MusterError(ErrorCode.CANCELLED, "cancelled by the calling server"));
    }
  }

  /** The origin is gone: nobody will read its outcomes; its calls are cancelled. */
  originDown(origin: string): void {
    for (const run of [...this.#runs.values()]) {
      if (run.origin !== origin) continue;
      this.#runs.delete(run.key);
      run.handle?.cancel(new MusterError(ErrorCode.CANCELLED, "the calling server is gone"));
    }
  }

  /** @internal A run's call settled. */
  settled(run: Run, err: MusterError | undefined, payload: Payload | undefined, notHere = false): void {
    if (!this.#runs.delete(run.key)) return;
    const item: Pending = { n: run.name };
    if (notHere) item.m = 1;
    if (err !== undefined) item.e = toWireError(err);
    else {
      payload ??= { kind: PayloadKind.NONE, bytes: new Uint8Array(0) };
      const size = payload.bytes.byteLength + run.name.length * 2 + OUTCOME_OVERHEAD;
      if (size > this.bus.maxPayload - 4096) {
        item.e = toWireError(
          new MusterError(
            ErrorCode.RESOURCE_EXHAUSTED,
            `the result of ${payload.bytes.byteLength} bytes is larger than the cluster backplane carries (${this.bus.maxPayload}): call agent ${run.name} through its own server`,
          ),
        );
      } else {
        item.k = payload.kind;
        item.bytes = payload.bytes;
      }
    }
    const batchKey = `${run.origin}/${run.id}`;
    let batch = this.#out.get(batchKey);
    if (batch === undefined) {
      batch = { origin: run.origin, id: run.id, items: [] };
      this.#out.set(batchKey, batch);
    }
    batch.items.push(item);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushQueued = false;
    const batches = [...this.#out.values()];
    this.#out.clear();
    const budget = this.bus.maxPayload - 4096;
    for (const b of batches) {
      let chunk: Pending[] = [];
      let size = 0;
      for (const item of b.items) {
        const cost =
          (item.bytes?.byteLength ?? 0) +
          item.n.length * 2 +
          OUTCOME_OVERHEAD +
          (item.e ? item.e.message.length * 2 : 0);
        if (chunk.length > 0 && size + cost > budget) {
          this.#send(b.origin, b.id, chunk);
          chunk = [];
          size = 0;
        }
        chunk.push(item);
        size += cost;
      }
      if (chunk.length > 0) this.#send(b.origin, b.id, chunk);
    }
  }

  #send(origin: string, id: string, items: Pending[]): void {
    const o = items.map((i) =>
      i.e !== undefined ? { n: i.n, e: i.e, ...(i.m !== undefined ? { m: i.m } : {}) } : { n: i.n, k: i.k },
    );
    const blobs = items
      .filter((i) => i.e === undefined && i.bytes !== undefined)
      .map((i) => i.bytes as Uint8Array);
    try {
      this.bus.publish(
        this.subjects.node(origin, "outcomes"),
        encodeEnvelope({ t: "outcomes", id, o }, blobs),
      );
    } catch (err) {
      // The origin settles them itself: by its deadline, or at once when it loses the backplane.
      this.logger.warn(
        { origin, part: id, outcomes: items.length, err: (err as Error).message },
        "outcomes not sent",
      );
    }
  }
}
