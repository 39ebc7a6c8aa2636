import type { IncomingMessage } from "node:http";
import type { Revocation } from "../auth/revocations.js";
import type { Logger } from "../internal/logger.js";
import type { AgentInfo } from "../presence/presence.js";
import type { EnrolmentRequest } from "./enrolment.js";
import type { RuntimeFlags } from "./flags.js";
import type { Dashboard } from "./live/dashboard.js";
import type { ServerMetrics } from "./metrics.js";
import type { ServerInfo } from "./server-info.js";
import type { EnrolmentDecision, RevocationOutcome } from "./shared-ops.js";

/**
 * Where the server is in its life: `/readyz` answers 200 when `ready`, and when `degraded` (in
 * a cluster whose backplane is unreachable: it serves its own agents, not the others').
 */
export type Readiness = "starting" | "ready" | "degraded" | "draining";

/** The roles of the admin API: an operator reads, an admin also changes things. */
export type AdminRole = "operator" | "admin";

/** Who sent an admin request. */
export interface AdminIdentity {
  /** The token's subject (`standalone` on a standalone server). */
  subject: string;
  role: AdminRole;
  /** The token's grants: the agent methods it may call through the server (undefined: all). */
  methods?: readonly string[];
}

/** What the admin API needs from its server. */
export interface AdminHost {
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  readiness(): Readiness;
  /** Standalone mode (no authentication, loopback only): `/readyz` says so in its body. */
  readonly standalone: boolean;
  /** Serve `/metrics` without a token. */
  readonly metricsPublic: boolean;
  /** This server's name. */
  readonly serverName: string;
  /**
   * Who sent this request, from its `Authorization: Bearer <token>` header (on a standalone
   * server, anyone on loopback is `{ subject: "standalone", role: "admin" }`).
   *
   * Rejects with a MusterError: UNAUTHENTICATED (no header; a bad, expired or revoked token;
   * rate-limited) or PERMISSION_DENIED (a valid token of a role that is not operator or admin,
   * or a non-loopback address on a standalone server). The message is safe to return to the
   * client.
   */
  authenticate(req: IncomingMessage): Promise<AdminIdentity>;
  /** The servers of the cluster (or this one alone). */
  servers(): ServerInfo[];
  /** Every known agent: live, pending enrolment (state `pending`), then recently offline. */
  agents(): AgentInfo[];
  /** One agent's details (AgentInfo plus session state, pending calls, …) as a JSON-able object, or undefined. */
  agentDetails(name: string): Record<string, unknown> | undefined;
  /** Enrolment requests waiting (none on a server without `approve`); in a cluster, every server's. */
  enrolments(): EnrolmentRequest[];
  /**
   * Accepts or rejects a waiting enrolment request (the one with `fingerprint`, required when
   * several agents ask for `name`), logged with who decided, on the server of the cluster that
   * holds it. Rejects with a MusterError: NOT_FOUND, INVALID_ARGUMENT (several wait and no
   * fingerprint; a server without `approve`; an accept whose token cannot be issued).
   */
  decideEnrolment(
    action: "accept" | "reject",
    name: string,
    who: AdminIdentity,
    fingerprint?: string,
  ): Promise<EnrolmentDecision>;
  /** The revoked token ids; UNIMPLEMENTED on a server without a revocation list. */
  revocations(): Revocation[];
  /**
   * Revokes a token id here and, in a cluster, on every server; logged with who asked.
   * UNIMPLEMENTED without a revocation list, INVALID_ARGUMENT for a malformed id.
   */
  revoke(id: string, reason: string | undefined, who: AdminIdentity): Promise<RevocationOutcome>;
  /** The runtime flags; `set` logs every change with who made it. */
  readonly flags: RuntimeFlags;
  /** The server's caches. */
  caches(): Array<{ name: string; entries: number; description: string }>;
  /**
   * Clears one cache (or all when `name` is undefined) and logs it at info with who asked; a
   * NOT_FOUND MusterError for an unknown name.
   */
  clearCache(name: string | undefined, who: AdminIdentity): Array<{ name: string; cleared: number }>;
  /**
   * Starts a graceful drain (idempotent) and logs it at info with who asked; returns at once.
   * The admin API answers 202 right after: the drain must let that answer out.
   */
  shutdown(who: AdminIdentity): { drainTimeoutMs: number };
  /** The web dashboard (`/ui/`, `/api/live/:page`, `POST /api/calls`); absent, those answer 404. */
  readonly dashboard?: Dashboard;
}
