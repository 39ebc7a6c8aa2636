import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { AsyncQueue } from "../internal/async-queue.js";
import type { Clock } from "../internal/clock.js";
import { deferred } from "../internal/deferred.js";
import { type DecodeLimits, decodeValue } from "../wire/codec.js";
import type { Payload } from "../wire/frame.js";
import type { CallCallbacks, CallHandle } from "./endpoint.js";
import type { CallOutcome, OutcomeSummary } from "./types.js";

/**
 * A call to several agents. The set of expected agents is fixed when it starts; each one
 * gets exactly one outcome — ok, error, timeout or not_connected — available as they arrive
 * (`for await (const o of fanOut)`) and all together (`await fanOut.done`).
 */
export interface FanOut<T = unknown> extends AsyncIterable<CallOutcome<T>> {
  /**
   * Names of the agents expected to answer, fixed when the call starts. A server knows them at
   * once (also as `expectedNames`); an operator learns them from the server first thing.
   */
  readonly expected: Promise<readonly string[]>;
  /**
   * Every outcome, once all are in. A server's fan-out never rejects (each agent's failure is
   * its outcome); an operator's rejects when the call as a whole failed (refused, link lost).
   */
  readonly done: Promise<FanOutResult<T>>;
  /** Counts by status of the outcomes so far. */
  summary(): OutcomeSummary;
  /** Cancels every call still in flight (their outcome: error CANCELLED). */
  cancel(): void;
}

/** What a fan-out's `done` resolves with. */
export interface FanOutResult<T = unknown> {
  /** One outcome per expected agent, in the order they arrived. */
  readonly outcomes: readonly CallOutcome<T>[];
  /** The same outcomes by agent name. */
  readonly byAgent: ReadonlyMap<string, CallOutcome<T>>;
  /** Counts by status. */
  readonly summary: OutcomeSummary;
}

/** A fan-out started on a server, whose expected agents are known at once. */
export interface ServerFanOut<T = unknown> extends FanOut<T> {
  /** The expected agents, known synchronously on the server (the same as `await expected`). */
  readonly expectedNames: readonly string[];
}

/** How to start the call on one expected agent; returns undefined when it is not connected. */
export type StartOne = (name: string, cb: CallCallbacks) => CallHandle | undefined;

export function summarize(outcomes: Iterable<CallOutcome>): OutcomeSummary {
  const s: OutcomeSummary = { ok: 0, error: 0, timeout: 0, notConnected: 0 };
  for (const o of outcomes) {
    if (o.status === "ok") s.ok++;
    else if (o.status === "error") s.error++;
    else if (o.status === "timeout") s.timeout++;
    else s.notConnected++;
  }
  return s;
}

/** One expected agent of a fan-out: its call's callbacks and, while it runs, its handle. */
class Member<T> implements CallCallbacks {
  handle: CallHandle | undefined;
  constructor(
    readonly fan: FanOutCall<T>,
    readonly name: string,
  ) {}
  onSettle(err: MusterError | undefined, payload: Payload | undefined): void {
    this.handle = undefined;
    this.fan._settle(this.name, err, payload);
  }
}

export class FanOutCall<T = unknown> implements ServerFanOut<T> {
  readonly expectedNames: readonly string[];
  readonly done: Promise<FanOutResult<T>>;
  readonly #outcomes = new Map<string, CallOutcome<T>>();
  readonly #members: Member<T>[] = [];
  /** Made when someone iterates; until then the outcomes wait in `#outcomes` only. */
  #queue: AsyncQueue<CallOutcome<T>> | undefined;
  readonly #resolve: (r: FanOutResult<T>) => void;
  readonly #clock: Clock;
  readonly #decodeLimits: DecodeLimits | undefined;
  readonly #started: number;
  #iterated = false;
  #timer: ReturnType<Clock["setTimeout"]> | undefined;
  #onAbort: (() => void) | undefined;
  #signal: AbortSignal | undefined;

  constructor(
    expected: readonly string[],
    options: {
      clock: Clock;
      timeoutMs: number;
      signal?: AbortSignal;
      method: string;
      decodeLimits?: DecodeLimits;
    },
    startOne: StartOne,
  ) {
    this.expectedNames = expected;
    this.#clock = options.clock;
    this.#decodeLimits = options.decodeLimits;
    this.#started = options.clock.now();
    const d = deferred<FanOutResult<T>>();
    this.done = d.promise;
    this.#resolve = d.resolve;
    if (expected.length > 0) {
      this.#timer = options.clock.setTimeout(() => {
        this.#timer = undefined;
        const err = new MusterError(
          ErrorCode.DEADLINE_EXCEEDED,
          `${options.method}: no answer in ${options.timeoutMs} ms`,
        );
        this.#cancelAll(err);
      }, options.timeoutMs);
      // Not unref()ed: a pending fan-out keeps the process alive until its deadline.
      if (options.signal) {
        this.#signal = options.signal;
        this.#onAbort = () => this.cancel();
        options.signal.addEventListener("abort", this.#onAbort, { once: true });
      }
    }
    for (const name of expected) {
      if (this.#outcomes.has(name)) continue;
      const member = new Member(this, name);
      const handle = startOne(name, member);
      if (handle === undefined) {
        this.#record({
          agent: name,
          status: "not_connected",
          error: { code: ErrorCode.UNAVAILABLE, message: `agent ${name} is not connected` },
          durationMs: 0,
        });
      } else if (!this.#outcomes.has(name)) {
        member.handle = handle;
        this.#members.push(member);
      }
    }
    if (options.signal?.aborted) this.cancel();
    this.#maybeDone();
  }

  get expected(): Promise<readonly string[]> {
    return Promise.resolve(this.expectedNames);
  }

  summary(): OutcomeSummary {
    return summarize(this.#outcomes.values());
  }

  cancel(): void {
    this.#cancelAll(new MusterError(ErrorCode.CANCELLED, "fan-out cancelled by the caller"));
  }

  #cancelAll(err: MusterError): void {
    for (const m of this.#members) m.handle?.cancel(err);
  }

  [Symbol.asyncIterator](): AsyncIterator<CallOutcome<T>> {
    if (this.#iterated)
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "a fan-out can be iterated only once");
    this.#iterated = true;
    const queue = new AsyncQueue<CallOutcome<T>>({ maxItems: this.expectedNames.length + 1 });
    for (const o of this.#outcomes.values()) queue.push(o);
    if (this.#outcomes.size >= this.expectedNames.length) queue.end();
    this.#queue = queue;
    return queue;
  }

  /** @internal A member's call settled. */
  _settle(name: string, err: MusterError | undefined, payload: Payload | undefined): void {
    const durationMs = Math.round((this.#clock.now() - this.#started) * 100) / 100;
    if (err) {
      this.#record({
        agent: name,
        status: err.code === ErrorCode.DEADLINE_EXCEEDED ? "timeout" : "error",
        error: err.toBody(),
        durationMs,
      });
    } else {
      let value: unknown;
      try {
        value = decodeValue(payload!, this.#decodeLimits);
      } catch (e) {
        this.#record({ agent: name, status: "error", error: MusterError.from(e).toBody(), durationMs });
        this.#maybeDone();
        return;
      }
      this.#record({ agent: name, status: "ok", value: value as T, durationMs });
    }
    this.#maybeDone();
  }

  #record(o: CallOutcome<T>): void {
    if (this.#outcomes.has(o.agent)) return;
    this.#outcomes.set(o.agent, o);
    this.#queue?.push(o);
  }

  #maybeDone(): void {
    if (this.#outcomes.size < this.expectedNames.length) return;
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#onAbort) this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#queue?.end();
    this.#members.length = 0;
    const byAgent = this.#outcomes;
    this.#resolve({ outcomes: [...byAgent.values()], byAgent, summary: summarize(byAgent.values()) });
  }
}
