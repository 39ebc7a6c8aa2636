import type { Revocation, RevocationList } from "../auth/revocations.js";
import { checkTokenId } from "../auth/tokens.js";
import type { EnrolmentDecision } from "../cluster/cluster-enrolments.js";
import type { SharedHost, SharedState } from "../cluster/shared-state.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { AgentInfo } from "../presence/presence.js";
import type { AuthGate } from "./auth-gate.js";
import { type EnrolmentRequest, pendingRow } from "./enrolment.js";
import type { RuntimeFlags } from "./flags.js";
import type { Fleet } from "./fleet.js";

export type { EnrolmentDecision } from "../cluster/cluster-enrolments.js";

/** What `server.revoke` did. */
export interface RevocationOutcome {
  id: string;
  /** False when the id was revoked already on this server. */
  fresh: boolean;
  /**
   * `server`: in force on this server (not in a cluster); `cluster`: on every server of the
   * cluster; `queued`: in force here, and on the others once the backplane is back.
   */
  reach: "server" | "cluster" | "queued";
  /** Something that did not go as it should, e.g. the revocations file could not be written. */
  warning?: string;
}

export interface SharedOpsParts {
  readonly serverName: string;
  readonly standalone: boolean;
  readonly revocations: RevocationList | undefined;
  readonly gate: AuthGate;
  readonly fleet: Fleet;
  readonly logger: Logger;
  /** The cluster's shared state, once the server has joined one. */
  shared(): SharedState | undefined;
}

/**
 * The server's revocations, enrolment decisions and their listings, on a lone server and in a
 * cluster alike: with a cluster, each goes through the state its servers share.
 */
export class SharedOps {
  constructor(readonly parts: SharedOpsParts) {}

  /** What the cluster's shared state reads and changes on this server. */
  host(flags: () => RuntimeFlags): SharedHost {
    const { gate, fleet, revocations } = this.parts;
    return {
      revocations: { list: revocations, revoked: (ids) => fleet.onRevoked(ids) },
      enrolments: {
        pending: () => gate.enrolment?.pending() ?? [],
        decide: (action, name, by, fingerprint) => gate.decide(action, name, by, Date.now(), fingerprint),
        rejectRivals: (name, fingerprint, by, why) =>
          gate.enrolment?.rejectRivals(name, fingerprint, by, Date.now(), why) ?? [],
      },
      get flags() {
        return flags();
      },
    };
  }

  async revoke(id: string, reason: string | undefined, by: string): Promise<RevocationOutcome> {
    const { revocations: list, standalone, fleet, logger } = this.parts;
    if (list === undefined)
      throw new MusterError(
        ErrorCode.UNIMPLEMENTED,
        standalone
          ? "this server runs standalone (no authentication): there are no tokens to revoke"
          : "this server keeps no revocation list (auth.revocations): it cannot revoke tokens",
      );
    const bad = checkTokenId(id);
    if (bad !== undefined) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `cannot revoke: ${bad}`);
    const shared = this.parts.shared();
    if (shared !== undefined) {
      const r = await shared.revocations.revoke(id, reason, by);
      return { id, fresh: r.fresh, reach: r.cluster === "written" ? "cluster" : "queued" };
    }
    const fresh = !list.has(id);
    let warning: string | undefined;
    try {
      list.add(id, reason, by);
    } catch (err) {
      warning = `revoked in memory only: ${MusterError.from(err).rawMessage}`;
      logger.error({ id, by, why: warning }, "revocation not written to the revocations file");
    }
    fleet.onRevoked([id]);
    logger.info({ id, by, reason }, "token revoked");
    return { id, fresh, reach: "server", ...(warning !== undefined ? { warning } : {}) };
  }

  /** The ids revoked on this server (its file, its memory, and the cluster's). */
  revoked(): Revocation[] {
    const list = this.parts.revocations;
    if (list === undefined)
      throw new MusterError(
        ErrorCode.UNIMPLEMENTED,
        this.parts.standalone
          ? "this server runs standalone (no authentication): there are no tokens to revoke"
          : "this server keeps no revocation list (auth.revocations)",
      );
    return list.list();
  }

  /** Enrolment requests waiting: the cluster's, each with the server holding it, or this server's. */
  pendingEnrolments(): EnrolmentRequest[] {
    return this.parts.shared()?.enrolments.pending() ?? this.parts.gate.enrolment?.pending() ?? [];
  }

  /** The waiting requests as rows of the agent list, one per name. */
  enrolmentRows(): AgentInfo[] {
    const shared = this.parts.shared();
    if (shared === undefined) return this.parts.gate.enrolment?.rows() ?? [];
    const byName = new Map<string, EnrolmentRequest[]>();
    for (const r of shared.enrolments.pending()) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
    return [...byName.values()].map((rs) => pendingRow(rs));
  }

  /** Decides a request on whichever server holds it (this one, when not in a cluster). */
  async decideEnrolment(
    action: "accept" | "reject",
    name: string,
    by: string,
    fingerprint?: string,
  ): Promise<EnrolmentDecision> {
    const shared = this.parts.shared();
    if (shared !== undefined) return shared.enrolments.decide(action, name, by, fingerprint);
    const request = this.parts.gate.decide(action, name, by, Date.now(), fingerprint);
    return { request, server: this.parts.serverName };
  }
}
