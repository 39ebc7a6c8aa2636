/**
 * The half of a `ClusterBus` that does not depend on the backplane: argument checks, the link
 * status and its listeners, failing fast while the link is down, request deadlines, callbacks
 * that throw, and watches that survive link losses. A backend supplies a `BusDriver` (the raw
 * operations, errors already mapped to MusterError) and reports its link with `setStatus`.
 *
 * Written once here so that the in-memory bus and the NATS bus behave alike by construction:
 * a test on the memory bus exercises the same checks the NATS bus applies.
 */
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { type Clock, systemClock } from "../internal/clock.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import type {
  BucketOptions,
  BusMessage,
  BusRequestOptions,
  BusStatus,
  BusSubscription,
  ClusterBus,
  KvBucket,
  KvEntry,
  KvWatch,
} from "./bus.js";
import { type OpenFeed, ResumableWatch } from "./resumable-watch.js";
import { checkBucketName, checkHeaders, checkKey, checkPayload, checkSubject } from "./subjects.js";

/** A message as a driver delivers it; `reply` is set on requests. */
export interface RawMessage {
  subject: string;
  data: Uint8Array;
  headers: ReadonlyMap<string, string>;
  reply?: (data: Uint8Array, headers: Record<string, string> | undefined) => boolean;
}

/** The raw operations of a backend. Arguments arrive checked; errors leave as MusterError. */
export interface BusDriver {
  readonly maxPayload: number;
  publish(subject: string, data: Uint8Array, headers: Record<string, string> | undefined): void;
  /** Resolves with the first answer; `signal` fires when the core gives up (deadline, link). */
  request(
    subject: string,
    data: Uint8Array,
    headers: Record<string, string> | undefined,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<RawMessage>;
  subscribe(subject: string, handler: (msg: RawMessage) => void): BusSubscription;
  bucket(name: string, maxAgeMs: number): Promise<BucketDriver>;
  /** Closes the link; everything of the core is already stopped. */
  close(): Promise<void>;
}

/** A bucket's raw operations; `delete` returns false only on a revision mismatch. */
export interface BucketDriver {
  get(key: string): Promise<KvEntry | undefined>;
  create(key: string, value: Uint8Array): Promise<number | undefined>;
  update(key: string, value: Uint8Array, revision: number): Promise<number | undefined>;
  put(key: string, value: Uint8Array): Promise<number>;
  delete(key: string, revision: number | undefined): Promise<boolean>;
  keys(): Promise<string[]>;
  open: OpenFeed;
}

export interface BusCoreOptions {
  /** @default silentLogger */
  logger?: Logger;
  /** Timers of request deadlines and watch retries. @default systemClock */
  clock?: Clock;
  /** @default "connected" */
  initialStatus?: BusStatus;
}

export class BusCore implements ClusterBus {
  readonly #driver: BusDriver;
  readonly #log: Logger;
  readonly #clock: Clock;
  #status: BusStatus;
  readonly #statusListeners = new Set<(s: BusStatus) => void>();
  readonly #subscriptions = new Set<BusSubscription>();
  readonly #watches = new Set<ResumableWatch>();
  /** Requests waiting for an answer: failed at once when the link drops. */
  readonly #inFlight = new Set<(err: MusterError) => void>();

  constructor(driver: BusDriver, options: BusCoreOptions = {}) {
    this.#driver = driver;
    this.#log = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    this.#status = options.initialStatus ?? "connected";
  }

  get maxPayload(): number {
    return this.#driver.maxPayload;
  }

  get status(): BusStatus {
    return this.#status;
  }

  onStatus(fn: (status: BusStatus) => void): () => void {
    this.#statusListeners.add(fn);
    return () => this.#statusListeners.delete(fn);
  }

  /**
   * The backend's link changed. Going down fails the requests in flight with UNAVAILABLE and
   * suspends the watches; coming back resumes them after the last revision each one saw.
   */
  setStatus(status: BusStatus): void {
    if (status === this.#status || this.#status === "closed") return;
    this.#status = status;
    this.#log.info({ status }, `backplane link ${status}`);
    if (status !== "connected") {
      const code = status === "closed" ? ErrorCode.CLOSED : ErrorCode.UNAVAILABLE;
      const err = new MusterError(code, `the link to the backplane is ${status}: no answer will come`);
      for (const fail of [...this.#inFlight]) fail(err);
    }
    for (const w of this.#watches) {
      if (status === "connected") w.resume();
      else if (status === "disconnected") w.suspend();
      else w.stop();
    }
    for (const fn of [...this.#statusListeners]) this.#safely(() => fn(status), "a status listener");
  }

  publish(subject: string, data: Uint8Array, headers?: Record<string, string>): void {
    checkSubject(subject, false);
    checkHeaders(headers);
    checkPayload(`publish to ${subject}`, data, headers, this.maxPayload);
    this.#ensureUp(`publish to ${subject}`);
    this.#driver.publish(subject, data, headers);
  }

  async request(subject: string, data: Uint8Array, options: BusRequestOptions): Promise<BusMessage> {
    checkSubject(subject, false);
    checkHeaders(options.headers);
    checkPayload(`request to ${subject}`, data, options.headers, this.maxPayload);
    if (!(options.timeoutMs > 0)) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `request to ${subject}: timeoutMs must be > 0`);
    }
    this.#ensureUp(`request to ${subject}`);
    const abort = new AbortController();
    let fail!: (err: MusterError) => void;
    const failed = new Promise<never>((_, reject) => {
      fail = (err) => {
        abort.abort(err);
        reject(err);
      };
    });
    this.#inFlight.add(fail);
    const timer = this.#clock.setTimeout(
      () =>
        fail(
          new MusterError(
            ErrorCode.DEADLINE_EXCEEDED,
            `no answer on ${subject} within ${options.timeoutMs} ms`,
          ),
        ),
      options.timeoutMs,
    );
    try {
      const answer = this.#driver.request(subject, data, options.headers, options.timeoutMs, abort.signal);
      return this.#toMessage(await Promise.race([answer, failed]));
    } finally {
      this.#clock.clearTimeout(timer);
      this.#inFlight.delete(fail);
    }
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void): BusSubscription {
    checkSubject(subject, true);
    this.#ensureOpen(`subscribe to ${subject}`);
    const inner = this.#driver.subscribe(subject, (raw) => {
      this.#safely(() => handler(this.#toMessage(raw)), `the handler of ${subject}`);
    });
    const sub: BusSubscription = {
      unsubscribe: () => {
        if (!this.#subscriptions.delete(sub)) return;
        inner.unsubscribe();
      },
    };
    this.#subscriptions.add(sub);
    return sub;
  }

  async bucket(name: string, options: BucketOptions = {}): Promise<KvBucket> {
    checkBucketName(name);
    const maxAgeMs = options.maxAgeMs ?? 0;
    if (!(maxAgeMs >= 0)) throw new MusterError(ErrorCode.INVALID_ARGUMENT, "maxAgeMs must be >= 0");
    this.#ensureUp(`open bucket ${name}`);
    return this.#wrapBucket(name, await this.#driver.bucket(name, maxAgeMs));
  }

  async close(): Promise<void> {
    if (this.#status === "closed") return;
    for (const s of [...this.#subscriptions]) s.unsubscribe();
    this.setStatus("closed");
    this.#watches.clear();
    await this.#driver.close();
  }

  #wrapBucket(name: string, raw: BucketDriver): KvBucket {
    const op = <T>(what: string, key: string | undefined, run: () => Promise<T>): Promise<T> => {
      try {
        if (key !== undefined) checkKey(key);
        this.#ensureUp(`${what} in bucket ${name}`);
      } catch (err) {
        return Promise.reject(err);
      }
      return run();
    };
    const sized = (key: string, value: Uint8Array): void =>
      checkPayload(`value of ${key} in bucket ${name}`, value, undefined, this.maxPayload);
    return {
      name,
      get: (key) => op("get", key, () => raw.get(key)),
      create: (key, value) =>
        op("create", key, async () => {
          sized(key, value);
          return raw.create(key, value);
        }),
      update: (key, value, revision) =>
        op("update", key, async () => {
          sized(key, value);
          if (!(Number.isInteger(revision) && revision > 0)) {
            throw new MusterError(ErrorCode.INVALID_ARGUMENT, `update of ${key}: revision must be > 0`);
          }
          return raw.update(key, value, revision);
        }),
      put: (key, value) =>
        op("put", key, async () => {
          sized(key, value);
          return raw.put(key, value);
        }),
      delete: (key, revision) =>
        op("delete", key, async () => {
          if (revision !== undefined && !(Number.isInteger(revision) && revision > 0)) {
            throw new MusterError(ErrorCode.INVALID_ARGUMENT, `delete of ${key}: revision must be > 0`);
          }
          return raw.delete(key, revision);
        }),
      keys: () => op("list keys", undefined, () => raw.keys()),
      watch: (onEntry, onReady) => op("watch", undefined, () => this.#watch(raw.open, onEntry, onReady)),
    };
  }

  async #watch(open: OpenFeed, onEntry: (e: KvEntry) => void, onReady?: () => void): Promise<KvWatch> {
    const w = new ResumableWatch(open, onEntry, onReady, { clock: this.#clock, logger: this.#log });
    this.#watches.add(w);
    try {
      await w.start();
    } catch (err) {
      this.#watches.delete(w);
      throw err;
    }
    if (this.#status === "closed") w.stop();
    else if (this.#status === "disconnected") w.suspend();
    return {
      stop: () => {
        this.#watches.delete(w);
        w.stop();
      },
    };
  }

  #toMessage(raw: RawMessage): BusMessage {
    const reply = raw.reply;
    return {
      subject: raw.subject,
      data: raw.data,
      headers: raw.headers,
      respond: (data, headers) => {
        if (reply === undefined || this.#status !== "connected") return false;
        checkHeaders(headers);
        checkPayload(`answer on ${raw.subject}`, data, headers, this.maxPayload);
        return reply(data, headers);
      },
    };
  }

  #ensureOpen(what: string): void {
    if (this.#status === "closed") throw new MusterError(ErrorCode.CLOSED, `${what}: the bus is closed`);
  }

  #ensureUp(what: string): void {
    this.#ensureOpen(what);
    if (this.#status !== "connected") {
      throw new MusterError(ErrorCode.UNAVAILABLE, `${what}: the link to the backplane is down`);
    }
  }

  #safely(fn: () => void, what: string): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ err }, `${what} threw`);
    }
  }
}
