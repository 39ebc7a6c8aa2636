import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { FlagChange, RuntimeFlags } from "../server/flags.js";
import type { ClusterBus, KvEntry } from "./bus.js";
import { decodeRecord, encodeRecord, SharedBucket } from "./shared-bucket.js";

/**
 * A runtime flag of scope `cluster` as stored in bucket `muster_<cluster>_flags`, under the
 * flag's name (kebab-case: a valid key as it is). JSON:
 *
 *     {"v":1,"value":30000,"by":"alice","server":"s1","at":"2030-01-01T12:00:00.000Z"}
 *
 * `value` is the parsed value in force on the server that set it (durations in ms), so that
 * every server parses the same thing; `by` is who set it, `server` where, `at` when.
 */
export interface FlagRecord {
  value: unknown;
  by: string;
  server: string;
  at: string;
}

export interface ClusterFlagsOptions {
  bus: ClusterBus;
  /** `muster_<cluster>_flags`. */
  bucket: string;
  serverName: string;
  logger: Logger;
  flags: RuntimeFlags;
}

/**
 * Runtime flags of scope `cluster` shared by every server: a change through `PUT /api/flags`
 * (or `flags.set`) on one server is applied there, written to the bucket, and applied by every
 * other server from its watch, listed with source `cluster` and who set it. A server starting
 * later applies the values in the bucket before it serves, over its own options. Concurrent
 * changes of one flag settle on the last write the backplane stored, on every server.
 */
export class ClusterFlags {
  readonly #o: ClusterFlagsOptions;
  readonly #bucket: SharedBucket;
  #unshare: (() => void) | undefined;

  constructor(options: ClusterFlagsOptions) {
    this.#o = options;
    this.#bucket = new SharedBucket({
      bus: options.bus,
      name: options.bucket,
      logger: options.logger,
      onEntry: (e) => this.#onEntry(e),
    });
  }

  async start(): Promise<void> {
    await this.#bucket.open();
    this.#unshare = this.#o.flags.share(this.#o.serverName, (changes, who) => this.#write(changes, who));
  }

  stop(): void {
    this.#unshare?.();
    this.#bucket.stop();
  }

  #write(changes: FlagChange[], who: string): void {
    const at = new Date().toISOString();
    for (const { name, value } of changes) {
      const record: FlagRecord = { value, by: who, server: this.#o.serverName, at };
      this.#bucket.put(name, encodeRecord({ ...record })).catch((err: unknown) => {
        this.#o.logger.error(
          { flag: name, err: MusterError.from(err).rawMessage },
          "runtime flag not written to the cluster: it holds on this server only",
        );
      });
    }
  }

  #onEntry(e: KvEntry): void {
    if (e.operation !== "PUT") return;
    const r = decodeRecord(e.value);
    const by = typeof r?.by === "string" ? r.by : "?";
    const server = typeof r?.server === "string" ? r.server : "?";
    if (r === undefined || !("value" in r)) {
      this.#o.logger.warn({ flag: e.key }, "malformed runtime flag in the cluster's bucket: ignored");
      return;
    }
    try {
      this.#o.flags.applyShared(e.key, r.value, by, server);
    } catch (err) {
      // A flag this version does not have, or a value it refuses (a newer server set it).
      this.#o.logger.warn(
        { flag: e.key, by, server, err: MusterError.from(err).rawMessage },
        "runtime flag from the cluster not applied here",
      );
    }
  }
}
