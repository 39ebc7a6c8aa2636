import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { ClusterBus, KvBucket, KvEntry, KvWatch } from "./bus.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A record as stored: JSON of an object with the format version `v`. */
export function encodeRecord(record: Record<string, unknown>): Uint8Array {
  return encoder.encode(JSON.stringify({ v: 1, ...record }));
}

/**
 * A stored record, or undefined when it is not a JSON object of a version this server reads
 * (1, or the next: a rolling upgrade runs both; fields it does not know are ignored).
 */
export function decodeRecord(value: Uint8Array): Record<string, unknown> | undefined {
  try {
    const o = JSON.parse(decoder.decode(value)) as unknown;
    if (typeof o !== "object" || o === null || Array.isArray(o)) return undefined;
    const v = (o as { v?: unknown }).v;
    return v === 1 || v === 2 ? (o as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export interface SharedBucketOptions {
  bus: ClusterBus;
  /** `muster_<cluster>_<what>`. */
  name: string;
  logger: Logger;
  /** Every entry the watch delivers: the latest of each key at start, then every change. */
  onEntry(entry: KvEntry): void;
}

/**
 * One bucket of state the servers of a cluster share: opened and watched from start (`open`
 * resolves once the values present were delivered, so that a server starting late applies
 * them before it serves), with writes that outlive a lost backplane: a write that fails is
 * kept (the latest per key) and made again when the link is back.
 */
export class SharedBucket {
  readonly #o: SharedBucketOptions;
  #bucket: KvBucket | undefined;
  #watch: KvWatch | undefined;
  #offStatus: (() => void) | undefined;
  /** Writes to make again when the link is back, by key (`create`: only if still absent). */
  readonly #unsent = new Map<string, { value: Uint8Array; create: boolean }>();
  #stopped = false;

  constructor(options: SharedBucketOptions) {
    this.#o = options;
  }

  /** Writes waiting for the backplane. */
  get unsent(): number {
    return this.#unsent.size;
  }

  async open(): Promise<void> {
    const { bus, name, onEntry } = this.#o;
    this.#bucket = await bus.bucket(name);
    let ready!: () => void;
    const initial = new Promise<void>((resolve) => {
      ready = resolve;
    });
    this.#watch = await this.#bucket.watch(onEntry, ready);
    await initial;
    this.#offStatus = bus.onStatus((s) => {
      if (s === "connected") void this.#retry();
    });
  }

  /**
   * Writes `key`; true once stored. When the backplane cannot be reached the value is kept,
   * written when the link is back (false). RESOURCE_EXHAUSTED (too large) and other refusals
   * are thrown: writing again would not help. With `create`, a key present already is left as
   * it is (and counts as stored): the first write wins.
   */
  async put(key: string, value: Uint8Array, create = false): Promise<boolean> {
    if (this.#bucket === undefined || this.#stopped)
      throw new MusterError(ErrorCode.CLOSED, `bucket ${this.#o.name} is not open`);
    try {
      await this.#write(key, value, create);
      this.#unsent.delete(key);
      return true;
    } catch (err) {
      const e = MusterError.from(err);
      if (e.code !== ErrorCode.UNAVAILABLE && e.code !== ErrorCode.DEADLINE_EXCEEDED) throw e;
      this.#unsent.set(key, { value, create });
      this.#o.logger.warn(
        { bucket: this.#o.name, key, err: e.rawMessage },
        "cluster backplane unreachable: the change is written when it is back",
      );
      return false;
    }
  }

  async #write(key: string, value: Uint8Array, create: boolean): Promise<void> {
    if (create) await this.#bucket!.create(key, value);
    else await this.#bucket!.put(key, value);
  }

  /** Deletes `key` (best effort: a failure is logged). */
  async delete(key: string): Promise<void> {
    this.#unsent.delete(key);
    try {
      await this.#bucket?.delete(key);
    } catch (err) {
      this.#o.logger.debug({ bucket: this.#o.name, key, err: (err as Error).message }, "not deleted");
    }
  }

  async #retry(): Promise<void> {
    for (const [key, w] of [...this.#unsent]) {
      if (this.#stopped || this.#unsent.get(key) !== w) continue;
      try {
        await this.#write(key, w.value, w.create);
        if (this.#unsent.get(key) === w) this.#unsent.delete(key);
        this.#o.logger.info({ bucket: this.#o.name, key }, "change written to the cluster after all");
      } catch (err) {
        this.#o.logger.warn(
          { bucket: this.#o.name, key, err: (err as Error).message },
          "change still not written to the cluster: trying again when the link is back",
        );
      }
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#offStatus?.();
    this.#watch?.stop();
  }
}
