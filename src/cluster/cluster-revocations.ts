import type { RevocationList } from "../auth/revocations.js";
import { checkTokenId } from "../auth/tokens.js";
import type { Logger } from "../internal/logger.js";
import type { ClusterBus, KvEntry } from "./bus.js";
import { decodeRecord, encodeRecord, SharedBucket } from "./shared-bucket.js";

/**
 * A revocation as stored in bucket `muster_<cluster>_revocations`, under the token id (token
 * ids are base64url: valid keys as they are). JSON:
 *
 *     {"v":1,"at":"2030-01-01T12:00:00.000Z","reason":"laptop lost","by":"alice","server":"s1"}
 *
 * `at` is when it was revoked (ISO 8601, by the revoking server's clock), `by` who asked,
 * `server` where; `reason` is left out when none was given.
 */
export interface RevocationRecord {
  at: string;
  reason?: string;
  by: string;
  server: string;
}

/** What the cluster's revocations apply to: the server's list, and its sessions. */
export interface RevocationTarget {
  /** The server's revocation list; undefined when it keeps none (a standalone server). */
  readonly list: RevocationList | undefined;
  /** Ends the sessions that use these token ids, at once. */
  revoked(ids: string[]): void;
}

export interface ClusterRevocationsOptions {
  bus: ClusterBus;
  /** `muster_<cluster>_revocations`. */
  bucket: string;
  serverName: string;
  logger: Logger;
  target: RevocationTarget;
}

/** What `revoke` did. */
export interface RevokeResult {
  id: string;
  /** False when the id was revoked already (here); it is written to the cluster all the same. */
  fresh: boolean;
  /** `written`: every server has it or will at once; `queued`: written when the backplane is back. */
  cluster: "written" | "queued";
}

/**
 * Revocations every server of a cluster applies. A revocation made on one server (through the
 * admin API, `server.revoke`) goes into its own list (its file, when it has one) and into the
 * bucket; every server watches the bucket from its start, so a server that starts later learns
 * the earlier revocations too, and adds each id to its list in memory (`addShared`), ending the
 * sessions that use it. Revocations in a server's own file stay that server's (or those sharing
 * the file): they are not copied to the bucket.
 */
export class ClusterRevocations {
  readonly #o: ClusterRevocationsOptions;
  readonly #bucket: SharedBucket;

  constructor(options: ClusterRevocationsOptions) {
    this.#o = options;
    this.#bucket = new SharedBucket({
      bus: options.bus,
      name: options.bucket,
      logger: options.logger,
      onEntry: (e) => this.#onEntry(e),
    });
  }

  /** Opens the bucket and applies every revocation in it before resolving. */
  async start(): Promise<void> {
    await this.#bucket.open();
  }

  stop(): void {
    this.#bucket.stop();
  }

  /** Revocations not yet written to the cluster (its backplane is unreachable). */
  get queued(): number {
    return this.#bucket.unsent;
  }

  /**
   * Revokes `id` here (in force at once: sessions using it end) and for the whole cluster.
   * The caller has checked that this server keeps a revocation list.
   */
  async revoke(id: string, reason: string | undefined, by: string): Promise<RevokeResult> {
    const list = this.#o.target.list!;
    const fresh = !list.has(id);
    try {
      list.add(id, reason, by);
    } catch (err) {
      // In force in memory all the same (RevocationList.add); the file's trouble is logged.
      this.#o.logger.error(
        { id, err: (err as Error).message },
        "revocation not written to the revocations file",
      );
    }
    this.#o.target.revoked([id]);
    const record: RevocationRecord = {
      at: new Date().toISOString(),
      ...(reason !== undefined && reason !== "" ? { reason } : {}),
      by,
      server: this.#o.serverName,
    };
    // The first revocation of an id is the one kept: who, when and why it was revoked.
    const written = await this.#bucket.put(id, encodeRecord({ ...record }), true);
    this.#o.logger.info({ id, by, reason, cluster: written }, "token revoked for the cluster");
    return { id, fresh, cluster: written ? "written" : "queued" };
  }

  #onEntry(e: KvEntry): void {
    if (e.operation !== "PUT") return;
    const { list, revoked } = this.#o.target;
    if (list === undefined) return;
    const r = decodeRecord(e.value);
    if (r === undefined || checkTokenId(e.key) !== undefined) {
      this.#o.logger.warn({ key: e.key }, "malformed revocation in the cluster's bucket: ignored");
      return;
    }
    const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
    const meta = { at: str(r.at), reason: str(r.reason), by: str(r.by) };
    if (!list.addShared(e.key, meta)) return;
    this.#o.logger.info(
      { id: e.key, by: meta.by, server: str(r.server), reason: meta.reason },
      "token revoked by the cluster: sessions using it end",
    );
    revoked([e.key]);
  }
}
