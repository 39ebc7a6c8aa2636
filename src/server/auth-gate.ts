import type { IncomingMessage } from "node:http";
import { AuthFailureLimiter } from "../auth/failures.js";
import type { AuthKey } from "../auth/keys.js";
import type { RevocationList } from "../auth/revocations.js";
import type { TokenClaims } from "../auth/tokens.js";
import { TokenVerifier } from "../auth/verifier.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { addressKey } from "../internal/address-key.js";
import { isLoopbackAddress } from "../internal/host-port.js";
import type { Logger } from "../internal/logger.js";
import { globMatcher } from "../rpc/target.js";
import type { PeerCertificate, Transport } from "../transport/types.js";
import { CloseCode, type HelloBody } from "../wire/frame.js";
import type { AdminIdentity } from "./admin-host.js";
import type { Enrolment, EnrolmentRequest } from "./enrolment.js";
import { EnrolmentGate } from "./enrolment-gate.js";
import {
  type GateVerdict,
  type Identity,
  type IdentityRole,
  type Refusal,
  refuse,
  sameLabels,
  showLabels,
  tokenRefusal,
} from "./gate-verdict.js";

/** A method pattern of a grant, compiled once (linear time: see globMatcher). */
type Matcher = (method: string) => boolean;

export type { GateVerdict, Identity, IdentityRole } from "./gate-verdict.js";

/** How the server authenticates its peers (`ServerOptions.auth`). */
export interface ServerAuthOptions {
  /**
   * The key tokens are verified with: an Ed25519 public or private key, or an HMAC secret
   * (see `loadKeyFile`). Enrolment (`approve`) needs a key that can sign.
   */
  key: AuthKey;
  /** Revoked token ids; a revocation ends live sessions that use the token. */
  revocations?: RevocationList;
  /**
   * Accept a client certificate that chains to the listener's `tls.ca` as an identity: its CN is
   * the name, its OU the role (`agent` unless an OU says `operator` or `admin`). Certificates
   * bind the name and role, not labels. @default false
   */
  certificates?: boolean;
  /**
   * Enrolment: an agent presenting an `enrol` token waits as `pending` until an admin accepts it
   * (`muster agents accept NAME`); it then receives a token of its own. @default false
   */
  approve?: boolean;
  /** Server methods (globs) an agent may call when its token grants none. @default [] */
  agentMethods?: readonly string[];
  /** Lifetime of tokens issued at enrolment. @default 365 days */
  enrolledTokenTtlMs?: number;
  /** Failed authentications allowed per address and minute, with a burst above it. @default 10, 20 */
  failuresPerMinute?: number;
  failureBurst?: number;
  /** Enrolment requests waiting at once made with one enrolment token. @default 128 */
  enrolmentMaxPendingPerToken?: number;
  /** Enrolment requests waiting at once from one address (an IPv6 /64). @default 32 */
  enrolmentMaxPendingPerAddress?: number;
}

const ROLE_RANK: Record<IdentityRole, number> = { agent: 0, operator: 1, admin: 2 };

/** True when `role` includes everything `needed` may do. */
export function roleCovers(role: IdentityRole, needed: IdentityRole): boolean {
  if (needed === "agent") return role === "agent";
  return ROLE_RANK[role] >= ROLE_RANK[needed];
}

/** What the gate reports to its server, and the server's clock. */
export interface GateHooks {
  logger: Logger;
  onFailure(reason: string): void;
  /** The server's clock (ms): failures are counted and refilled on it, handshakes and HTTP alike. */
  now(): number;
  /**
   * What an address counts under for per-address limits (failed authentications, enrolment
   * requests): the server's admission key, so that an IPv6 client counts by its /64 here too.
   * @default `addressKey` with its defaults
   */
  keyOf?(address: string): string;
}

/**
 * The server's authentication: checks the credential of every HELLO (resumes included) and of
 * every admin HTTP request, rate-limits failures per address, keeps the enrolment book, and
 * answers whether an identity may call a method. With `standalone`, nobody presents anything
 * and only loopback addresses are let in.
 */
export class AuthGate {
  readonly standalone: boolean;
  readonly #o: ServerAuthOptions | undefined;
  readonly #verifier: TokenVerifier | undefined;
  readonly #limiter: AuthFailureLimiter;
  readonly #hooks: GateHooks;
  readonly #keyOf: (address: string) => string;
  readonly #agentMethods: readonly Matcher[];
  readonly #grantCache = new WeakMap<readonly string[], Matcher[]>();
  readonly #enrolment: EnrolmentGate | undefined;

  constructor(auth: ServerAuthOptions | undefined, standalone: boolean, hooks: GateHooks) {
    if (standalone && auth !== undefined) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "standalone and auth exclude each other: give one");
    }
    if (!standalone && auth === undefined) {
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        "a server needs auth: { key } (tokens from `muster token create`) or standalone: true (no authentication, loopback only)",
      );
    }
    if (auth?.approve === true && !auth.key.canSign) {
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        "enrolment (approve) needs a key that can sign: an Ed25519 private key or an HMAC secret, not a public key",
      );
    }
    this.standalone = standalone;
    this.#o = auth;
    this.#hooks = hooks;
    this.#keyOf = hooks.keyOf ?? ((address) => addressKey(address));
    this.#verifier = auth ? new TokenVerifier(auth.key) : undefined;
    const limits: { perMinute?: number; burst?: number } = {};
    if (auth?.failuresPerMinute !== undefined) limits.perMinute = auth.failuresPerMinute;
    if (auth?.failureBurst !== undefined) limits.burst = auth.failureBurst;
    this.#limiter = new AuthFailureLimiter(limits);
    this.#agentMethods = (auth?.agentMethods ?? []).map(globMatcher);
    if (auth?.approve === true) {
      const o: ConstructorParameters<typeof EnrolmentGate>[2] = {};
      if (auth.enrolmentMaxPendingPerToken !== undefined)
        o.maxPendingPerToken = auth.enrolmentMaxPendingPerToken;
      if (auth.enrolmentMaxPendingPerAddress !== undefined)
        o.maxPendingPerAddress = auth.enrolmentMaxPendingPerAddress;
      if (auth.enrolledTokenTtlMs !== undefined) o.enrolledTokenTtlMs = auth.enrolledTokenTtlMs;
      o.keyOf = this.#keyOf;
      this.#enrolment = new EnrolmentGate(auth.key, hooks.logger, o);
    }
  }

  /** The enrolment book (servers with `approve`). */
  get enrolment(): Enrolment | undefined {
    return this.#enrolment?.book;
  }

  /** The key's fingerprint (for the start-up log), or undefined when standalone. */
  get keyFingerprint(): string | undefined {
    return this.#o?.key.fingerprint;
  }

  /** Verified tokens cached, to make reconnect storms cheap. */
  get verifiedTokens(): number {
    return this.#verifier?.size ?? 0;
  }

  clearVerifiedTokens(): number {
    return this.#verifier?.clear() ?? 0;
  }

  /**
   * Checks the credential of a HELLO; `now` is the server's clock. `resuming`: the HELLO
   * resumes a live session of this server (its session token is known). Never throws: an
   * unexpected failure is a refusal, logged.
   *
   * Failures are counted per address, but only to decide whether to spend a signature check on
   * a credential this server does not know: a token already verified (in the cache), a resume
   * of a live session and a client certificate the TLS layer verified always pass, whatever
   * others failed from the same address.
   */
  async checkHello(
    hello: HelloBody,
    transport: Transport,
    now: number,
    resuming = false,
  ): Promise<GateVerdict> {
    try {
      return await this.#checkHello(hello, transport, now, resuming);
    } catch (err) {
      const e = MusterError.from(err);
      let remote: string;
      try {
        remote = transport.remoteAddress;
      } catch {
        remote = "unknown";
      }
      this.#hooks.logger.error(
        { remote, name: hello.name, err: e.rawMessage },
        "the handshake's credential check failed: refusing the connection",
      );
      return refuse(
        CloseCode.REJECTED,
        "the server could not check this credential (an internal error, which it logged)",
        "internal",
        {
          failure: false,
        },
      );
    }
  }

  async #checkHello(
    hello: HelloBody,
    transport: Transport,
    now: number,
    resuming: boolean,
  ): Promise<GateVerdict> {
    if (this.standalone) {
      if (!transport.isLoopback) {
        return refuse(
          CloseCode.REJECTED,
          "this server runs --standalone (no authentication) and accepts loopback connections only",
          "standalone_remote",
        );
      }
      const role: IdentityRole = hello.role === "operator" ? "admin" : "agent";
      return { ok: true, identity: { role, subject: hello.name, via: "standalone" } };
    }
    const ip = this.#keyOf(transport.remoteAddress);
    let verdict: GateVerdict;
    const known = this.#known(hello.auth);
    if ("refusal" in known) verdict = known.refusal;
    else {
      // What passes whatever others failed: a token verified before, a live session's resume,
      // and a client certificate the TLS layer verified (no signature check is spent on them).
      const trusted =
        known.claims !== undefined ||
        resuming ||
        (hello.auth === undefined &&
          this.#o?.certificates === true &&
          transport.peerCertificate?.authorized === true);
      const wait = trusted ? 0 : this.#limiter.check(ip, now);
      if (wait > 0) {
        return refuse(
          CloseCode.BUSY,
          `too many failed authentications from ${ip}: retry in ${Math.ceil(wait / 1000)} s`,
          "rate_limited",
          { retryAfterMs: wait, failure: false },
        );
      }
      verdict = await this.#checkCredential(hello, transport, known.claims);
    }
    if (!verdict.ok && verdict.failure) {
      this.#limiter.fail(ip, now);
      this.#hooks.onFailure(verdict.reason);
    }
    return verdict;
  }

  /**
   * A token's claims when the verification cache holds it (no signature check), a refusal when
   * it holds it expired, or nothing known.
   */
  #known(token: string | undefined): { claims: TokenClaims | undefined } | { refusal: Refusal } {
    if (token === undefined) return { claims: undefined };
    try {
      return { claims: this.#verifier!.lookup(token, Date.now()) };
    } catch (err) {
      return { refusal: tokenRefusal(err) };
    }
  }

  async #checkCredential(
    hello: HelloBody,
    transport: Transport,
    known: TokenClaims | undefined,
  ): Promise<GateVerdict> {
    const o = this.#o!;
    if (hello.auth === undefined) {
      const cert = transport.peerCertificate;
      if (o.certificates === true && cert !== undefined) return this.#checkCertificate(hello, cert);
      return refuse(
        CloseCode.UNAUTHENTICATED,
        `no credential: present a token (muster token create --name ${hello.name} --role ${
          hello.role === "agent" ? "agent" : "operator"
        })${o.certificates === true ? " or a client certificate" : ""}`,
        "missing",
      );
    }
    let claims: TokenClaims;
    if (known !== undefined) claims = known;
    else {
      try {
        claims = await this.#verifier!.verify(hello.auth, Date.now());
      } catch (err) {
        return tokenRefusal(err);
      }
    }
    if (o.revocations?.has(claims.id)) {
      return refuse(CloseCode.UNAUTHENTICATED, `token ${claims.id} was revoked`, "revoked");
    }
    // Enrolment times are shown to people and kept for minutes: wall-clock time.
    if (claims.role === "enrol") {
      if (this.#enrolment === undefined) {
        return refuse(
          CloseCode.REJECTED,
          "this server does not take enrolment requests (start it with --approve), or present an agent token",
          "enrol_disabled",
        );
      }
      return this.#enrolment.check(hello, transport, claims, Date.now());
    }
    const wanted = hello.role === "agent" ? "agent" : "operator or admin";
    if ((hello.role === "agent") !== (claims.role === "agent")) {
      return refuse(
        CloseCode.REJECTED,
        `a ${claims.role} token cannot open a${hello.role === "agent" ? "n agent" : "n operator"} session: it needs an ${wanted} token`,
        "role",
      );
    }
    if (claims.role === "agent") {
      const bad = this.#checkAgentBinding(hello, claims.subject, claims.labels);
      if (bad) return bad;
    }
    return { ok: true, identity: identityOf(claims, claims.role) };
  }

  #checkAgentBinding(
    hello: HelloBody,
    name: string,
    labels: Record<string, string> | undefined,
    what: "token" | "certificate" = "token",
  ): GateVerdict | undefined {
    if (hello.name !== name) {
      return refuse(CloseCode.REJECTED, `the ${what} is for agent ${name}, not ${hello.name}`, "name");
    }
    if (labels !== undefined && !sameLabels(hello.labels, labels)) {
      return refuse(
        CloseCode.REJECTED,
        `agent ${hello.name} presents labels ${showLabels(hello.labels)}, but its token binds ${showLabels(labels)}`,
        "labels",
      );
    }
    return undefined;
  }

  #checkCertificate(hello: HelloBody, cert: PeerCertificate): GateVerdict {
    if (!cert.authorized) {
      return refuse(
        CloseCode.UNAUTHENTICATED,
        `client certificate not trusted: ${cert.authorizationError ?? "not signed by the server's CA"}`,
        "certificate",
      );
    }
    const cn = cert.commonName;
    if (cn === undefined || cn === "") {
      return refuse(CloseCode.UNAUTHENTICATED, "client certificate has no common name (CN)", "certificate");
    }
    const ou = cert.organizationalUnits.find((u) => u === "agent" || u === "operator" || u === "admin");
    const role: IdentityRole = (ou as IdentityRole | undefined) ?? "agent";
    if ((hello.role === "agent") !== (role === "agent")) {
      return refuse(
        CloseCode.REJECTED,
        `a certificate for role ${role} cannot open a${hello.role === "agent" ? "n agent" : "n operator"} session`,
        "role",
      );
    }
    if (role === "agent") {
      const bad = this.#checkAgentBinding(hello, cn, undefined, "certificate");
      if (bad) return bad;
    }
    const identity: Identity = { role, subject: cn, via: "certificate" };
    const validTo = Date.parse(cert.validTo);
    if (Number.isFinite(validTo)) identity.expiresAt = validTo;
    return { ok: true, identity };
  }

  /**
   * Accepts or rejects a waiting enrolment request: the one with `fingerprint`, or the only one
   * for `name` (INVALID_ARGUMENT when several wait: the fingerprint must choose). An accept whose
   * token could not be issued fails with INVALID_ARGUMENT, and the agent is refused saying why.
   */
  decide(
    action: "accept" | "reject",
    name: string,
    by: string,
    now: number,
    fingerprint?: string,
  ): EnrolmentRequest {
    if (this.#enrolment === undefined) {
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        "this server does not take enrolment requests (--approve)",
      );
    }
    return this.#enrolment.decide(action, name, by, now, fingerprint);
  }

  /**
   * True when `identity` may call `method` on the server (agents: their grants, or the
   * server's `agentMethods`) or, for operators, relay a call of `method` to agents.
   */
  allows(identity: Identity, method: string): boolean {
    if (identity.via === "standalone") return true;
    const grants = identity.methods;
    let res: readonly Matcher[];
    if (grants === undefined) {
      if (identity.role !== "agent") return true;
      res = this.#agentMethods;
    } else {
      let cached = this.#grantCache.get(grants);
      if (cached === undefined) {
        cached = grants.map(globMatcher);
        this.#grantCache.set(grants, cached);
      }
      res = cached;
    }
    return res.some((matches) => matches(method));
  }

  /** Whether a token id was revoked. */
  isRevoked(id: string | undefined): boolean {
    return id !== undefined && this.#o?.revocations?.has(id) === true;
  }

  /**
   * Who sent an admin HTTP request (`Authorization: Bearer <token>`). Standalone: anyone on
   * loopback is an admin. Rejects with UNAUTHENTICATED or PERMISSION_DENIED.
   */
  async checkHttp(req: IncomingMessage): Promise<AdminIdentity> {
    const remote = this.#keyOf(req.socket.remoteAddress ?? "");
    if (this.standalone) {
      if (!isLoopbackAddress(remote)) {
        throw new MusterError(
          ErrorCode.PERMISSION_DENIED,
          "this server runs --standalone (no authentication) and answers loopback addresses only",
        );
      }
      return { subject: "standalone", role: "admin" };
    }
    const now = this.#hooks.now();
    const fail = (code: ErrorCode, message: string, reason: string): never => {
      this.#limiter.fail(remote, now);
      this.#hooks.onFailure(reason);
      throw new MusterError(code, message, { details: { reason } });
    };
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    // A token already verified passes whatever others failed from this address (see checkHello).
    const known = m === null ? { claims: undefined } : this.#known(m[1]!);
    if ("refusal" in known) {
      return fail(ErrorCode.UNAUTHENTICATED, known.refusal.message, known.refusal.reason);
    }
    let claims: TokenClaims;
    if (known.claims !== undefined) claims = known.claims;
    else {
      this.#throwIfLimited(remote, now);
      if (header === undefined)
        return fail(
          ErrorCode.UNAUTHENTICATED,
          "no credential: send Authorization: Bearer <token>",
          "missing",
        );
      if (m === null)
        return fail(ErrorCode.UNAUTHENTICATED, "Authorization must be: Bearer <token>", "malformed");
      try {
        claims = await this.#verifier!.verify(m[1]!, Date.now());
      } catch (err) {
        const r = tokenRefusal(err);
        return fail(ErrorCode.UNAUTHENTICATED, r.message, r.reason);
      }
    }
    if (this.isRevoked(claims.id))
      return fail(ErrorCode.UNAUTHENTICATED, `token ${claims.id} was revoked`, "revoked");
    if (claims.role !== "operator" && claims.role !== "admin") {
      return fail(
        ErrorCode.PERMISSION_DENIED,
        `a ${claims.role} token does not open the admin API: it needs an operator or admin token`,
        "role",
      );
    }
    return {
      subject: claims.subject,
      role: claims.role,
      ...(claims.methods !== undefined ? { methods: claims.methods } : {}),
    };
  }

  /** UNAUTHENTICATED (`rate_limited`, with the wait) while `remote` has no failure left. */
  #throwIfLimited(remote: string, now: number): void {
    const wait = this.#limiter.check(remote, now);
    if (wait <= 0) return;
    this.#hooks.onFailure("rate_limited");
    throw new MusterError(
      ErrorCode.UNAUTHENTICATED,
      `too many failed authentications from ${remote}: retry in ${Math.ceil(wait / 1000)} s`,
      { details: { reason: "rate_limited", retryAfterMs: wait } },
    );
  }

  /**
   * Who sent a text message with `token=<token>` (docs/auth.md, "Text endpoints"): the token is
   * verified as at a handshake, revocation included, and failures count against `remote`'s
   * budget; only operator and admin tokens are taken. Rejects with UNAUTHENTICATED or
   * PERMISSION_DENIED, with a message that never holds the token.
   */
  async checkTextToken(token: string, address: string): Promise<Identity> {
    const remote = this.#keyOf(address);
    // The limiter runs on the server's clock, as for handshakes and admin requests (one clock:
    // a wall-clock time against a monotonic one locked addresses out for good).
    const now = this.#hooks.now();
    // A token verified before passes whatever others failed from this address (see checkHello).
    const known = this.#known(token);
    if (!("claims" in known && known.claims !== undefined)) this.#throwIfLimited(remote, now);
    const fail = (code: ErrorCode, message: string, reason: string): never => {
      this.#limiter.fail(remote, now);
      this.#hooks.onFailure(reason);
      throw new MusterError(code, message, { details: { reason } });
    };
    if ("refusal" in known)
      return fail(ErrorCode.UNAUTHENTICATED, known.refusal.message, known.refusal.reason);
    let claims: TokenClaims;
    if (known.claims !== undefined) claims = known.claims;
    else {
      try {
        claims = await this.#verifier!.verify(token, Date.now());
      } catch (err) {
        const e = MusterError.from(err, ErrorCode.UNAUTHENTICATED);
        const reason = (e.details as { reason?: unknown } | undefined)?.reason;
        return fail(ErrorCode.UNAUTHENTICATED, e.rawMessage, typeof reason === "string" ? reason : "invalid");
      }
    }
    if (this.isRevoked(claims.id))
      return fail(ErrorCode.UNAUTHENTICATED, `token ${claims.id} was revoked`, "revoked");
    if (claims.role !== "operator" && claims.role !== "admin")
      return fail(
        ErrorCode.PERMISSION_DENIED,
        `a ${claims.role} token does not send text commands: it needs an operator or admin token`,
        "role",
      );
    return identityOf(claims, claims.role);
  }

  /**
   * Who presented a client certificate on a `tls://` text endpoint: as at a handshake (CN the
   * name, OU the role), on a server that takes certificates; only operators and admins.
   * Throws UNAUTHENTICATED or PERMISSION_DENIED.
   */
  checkTextCertificate(cert: PeerCertificate): Identity {
    if (this.#o?.certificates !== true)
      throw new MusterError(
        ErrorCode.UNAUTHENTICATED,
        "this server does not take client certificates as credentials",
      );
    if (!cert.authorized)
      throw new MusterError(
        ErrorCode.UNAUTHENTICATED,
        `client certificate not trusted: ${cert.authorizationError ?? "not signed by the server's CA"}`,
      );
    const cn = cert.commonName;
    if (cn === undefined || cn === "")
      throw new MusterError(ErrorCode.UNAUTHENTICATED, "client certificate has no common name (CN)");
    const role = cert.organizationalUnits.find((u) => u === "operator" || u === "admin");
    if (role === undefined)
      throw new MusterError(
        ErrorCode.PERMISSION_DENIED,
        `the certificate of ${cn} is an agent's: text commands need an operator or admin certificate (OU)`,
      );
    return { role, subject: cn, via: "certificate" };
  }
}

/** Who a verified token says its bearer is (`role`: the claims' role, narrowed by the caller). */
function identityOf(claims: TokenClaims, role: IdentityRole): Identity {
  const identity: Identity = { role, subject: claims.subject, via: "token", tokenId: claims.id };
  if (claims.expiresAt !== undefined) identity.expiresAt = claims.expiresAt;
  if (claims.methods !== undefined) identity.methods = claims.methods;
  return identity;
}
