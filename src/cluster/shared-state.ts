import type { Logger } from "../internal/logger.js";
import type { RuntimeFlags } from "../server/flags.js";
import type { ClusterBus } from "./bus.js";
import { ClusterEnrolments, type EnrolmentHost } from "./cluster-enrolments.js";
import { ClusterFlags } from "./cluster-flags.js";
import { ClusterRevocations, type RevocationTarget } from "./cluster-revocations.js";

/** What the state a cluster shares needs from each of its servers. */
export interface SharedHost {
  /** The server's revocation list and its sessions. */
  readonly revocations: RevocationTarget;
  /** The server's enrolment book. */
  readonly enrolments: EnrolmentHost;
  /** The server's runtime flags (those of scope `cluster` are shared). */
  readonly flags: RuntimeFlags;
}

export interface SharedStateOptions {
  bus: ClusterBus;
  clusterName: string;
  serverName: string;
  serverId: string;
  logger: Logger;
  host: SharedHost;
  /** Whether the server with this id is alive (the registry's view). */
  isLive(serverId: string): boolean;
}

/**
 * What the servers of a cluster share besides their fleet: revocations (bucket
 * `muster_<cluster>_revocations`), enrolment requests and decisions (bucket
 * `muster_<cluster>_enrolments`, subject `muster.<cluster>.enrolment`) and runtime flags of
 * scope `cluster` (bucket `muster_<cluster>_flags`). Each bucket is watched from the server's
 * start, and `start` resolves once the values present are applied: a server starting later
 * serves with the cluster's revocations and flags in force.
 */
export class SharedState {
  readonly revocations: ClusterRevocations;
  readonly enrolments: ClusterEnrolments;
  readonly flags: ClusterFlags;

  constructor(o: SharedStateOptions) {
    const base = { bus: o.bus, serverName: o.serverName };
    const prefix = `muster_${o.clusterName}`;
    this.revocations = new ClusterRevocations({
      ...base,
      bucket: `${prefix}_revocations`,
      logger: o.logger.child({ shared: "revocations" }),
      target: o.host.revocations,
    });
    this.enrolments = new ClusterEnrolments({
      ...base,
      bucket: `${prefix}_enrolments`,
      subject: `muster.${o.clusterName}.enrolment`,
      serverId: o.serverId,
      logger: o.logger.child({ shared: "enrolments" }),
      host: o.host.enrolments,
      isLive: o.isLive,
    });
    this.flags = new ClusterFlags({
      ...base,
      bucket: `${prefix}_flags`,
      logger: o.logger.child({ shared: "flags" }),
      flags: o.host.flags,
    });
  }

  async start(): Promise<void> {
    try {
      await this.revocations.start();
      await this.flags.start();
      await this.enrolments.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** A server declared gone: what it shared of its own goes with it. */
  serverDown(serverId: string): void {
    this.enrolments.serverDown(serverId);
  }

  async stop(): Promise<void> {
    this.revocations.stop();
    this.flags.stop();
    await this.enrolments.stop().catch(() => undefined);
  }
}
