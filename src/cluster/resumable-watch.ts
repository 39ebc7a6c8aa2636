/**
 * A bucket watch that outlives its backend's feeds. A backend only knows how to open one feed
 * (`OpenFeed`): a stream of entries from a revision, which may end when the link drops or the
 * backplane restarts. `ResumableWatch` turns feeds into the contract of `KvBucket.watch`:
 * initial values, `onReady` once, then every change in revision order, with no revision seen
 * twice and none missed across link losses (a new feed starts after the last revision seen).
 *
 * Both backends use it; the bus suspends every watch when its link goes down and resumes them
 * when it comes back, and a feed that ends by itself is re-opened with backoff (never in a
 * tight loop: a reconnect storm must not turn into a storm of consumers, openobserve #13676).
 */
import { Backoff } from "../internal/backoff.js";
import type { Clock, TimerHandle } from "../internal/clock.js";
import type { Logger } from "../internal/logger.js";
import type { KvEntry, KvWatch } from "./bus.js";
import { CLUSTER_DEFAULTS } from "./defaults.js";

/** What a backend's feed reports to. Calls after the feed was stopped are ignored. */
export interface FeedSink {
  /** One stored entry (deletion markers included), in increasing revision order. */
  entry(entry: KvEntry): void;
  /** Every entry stored when the feed opened has been passed to `entry`. */
  ready(): void;
  /** The feed stopped by itself (not through `stop()`); a new one will be opened. */
  ended(err?: unknown): void;
}

/** One feed of a backend; `stop` is idempotent. */
export interface Feed {
  stop(): void;
}

/**
 * Opens a feed. `fromRevision` 0: the latest entry of every key (deletion markers included),
 * then changes; n > 0: every stored entry of revision n or more, then changes. Rejects when the
 * backplane cannot be reached.
 */
export type OpenFeed = (fromRevision: number, sink: FeedSink) => Promise<Feed>;

export interface ResumableWatchOptions {
  clock: Clock;
  logger: Logger;
  /** First and largest delay between attempts to open a feed again. */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export class ResumableWatch implements KvWatch {
  readonly #open: OpenFeed;
  readonly #onEntry: (entry: KvEntry) => void;
  readonly #onReady: (() => void) | undefined;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  /** Highest revision seen (delivered, or skipped as an initial deletion marker). */
  #last = 0;
  #readyCalled = false;
  #feed: Feed | undefined;
  /** Bumped for every feed, so that a stale feed's calls are recognised and dropped. */
  #generation = 0;
  #retry: TimerHandle | undefined;
  #suspended = false;
  #stopped = false;

  constructor(
    open: OpenFeed,
    onEntry: (entry: KvEntry) => void,
    onReady: (() => void) | undefined,
    options: ResumableWatchOptions,
  ) {
    this.#open = open;
    this.#onEntry = onEntry;
    this.#onReady = onReady;
    this.#clock = options.clock;
    this.#log = options.logger;
    this.#backoff = new Backoff({
      initialMs: options.retryInitialMs ?? CLUSTER_DEFAULTS.watchRetryInitialMs,
      maxMs: options.retryMaxMs ?? CLUSTER_DEFAULTS.watchRetryMaxMs,
    });
  }

  /** Highest revision this watch has seen. */
  get lastRevision(): number {
    return this.#last;
  }

  /** Opens the first feed; rejects (and the watch is stopped) when it cannot. */
  async start(): Promise<void> {
    try {
      await this.#openFeed();
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /** The link is down: the current feed is dropped and nothing is retried until `resume`. */
  suspend(): void {
    if (this.#stopped) return;
    this.#suspended = true;
    this.#drop();
  }

  /** The link is back: a new feed starts after the last revision seen. */
  resume(): void {
    if (this.#stopped) return;
    this.#suspended = false;
    this.#backoff.reset();
    this.#drop();
    this.#attempt();
  }

  stop(): void {
    this.#stopped = true;
    this.#drop();
  }

  #drop(): void {
    this.#generation++;
    if (this.#retry !== undefined) this.#clock.clearTimeout(this.#retry);
    this.#retry = undefined;
    const feed = this.#feed;
    this.#feed = undefined;
    feed?.stop();
  }

  async #openFeed(): Promise<void> {
    const generation = ++this.#generation;
    // From 0 the feed gives initial values: deletion markers there are absent keys, skipped
    // until that feed is ready. Later feeds give changes, deletions included.
    const from = this.#last > 0 ? this.#last + 1 : 0;
    let initial = from === 0;
    const current = (): boolean => generation === this.#generation && !this.#stopped;
    const feed = await this.#open(from, {
      entry: (e) => {
        if (!current() || e.revision <= this.#last) return;
        this.#last = e.revision;
        if (initial && e.operation !== "PUT") return;
        this.#call(() => this.#onEntry(e));
      },
      ready: () => {
        if (!current()) return;
        initial = false;
        this.#backoff.reset();
        if (!this.#readyCalled) {
          this.#readyCalled = true;
          if (this.#onReady) this.#call(this.#onReady);
        }
      },
      ended: (err) => {
        if (!current()) return;
        this.#log.warn({ err, lastRevision: this.#last }, "bucket watch lost its feed: re-opening");
        this.#feed = undefined;
        this.#schedule();
      },
    });
    if (!current()) {
      feed.stop();
      return;
    }
    this.#feed = feed;
  }

  #attempt(): void {
    if (this.#stopped || this.#suspended) return;
    this.#openFeed().catch((err: unknown) => {
      if (this.#stopped || this.#suspended) return;
      this.#log.warn({ err, lastRevision: this.#last }, "bucket watch could not re-open its feed");
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#stopped || this.#suspended || this.#retry !== undefined) return;
    const delay = this.#backoff.next();
    const generation = this.#generation;
    this.#retry = this.#clock.setTimeout(() => {
      this.#retry = undefined;
      if (generation === this.#generation) this.#attempt();
    }, delay);
    this.#retry.unref();
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ err }, "a bucket watch callback threw");
    }
  }
}
