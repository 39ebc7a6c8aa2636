import type { AuthKey } from "../auth/keys.js";
import { checkIssue, type IssueOptions, issueToken, type TokenClaims } from "../auth/tokens.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import type { Logger } from "../internal/logger.js";
import { globMatcher } from "../rpc/target.js";
import type { Transport } from "../transport/types.js";
import { CloseCode, type HelloBody } from "../wire/frame.js";
import { Enrolment, type EnrolmentLimits, type EnrolmentRequest } from "./enrolment.js";
import { type GateVerdict, type Identity, refuse, sameLabels, showLabels } from "./gate-verdict.js";

/**
 * The server's side of enrolment (`auth.approve`), in the style of Salt's key acceptance: an
 * agent presenting an enrolment token is listed as pending in the book until an admin accepts
 * it, then it is issued a token of its own on its next attempt. A token that could not be
 * issued (longer than the limit) is refused when the agent asks, never promised.
 */
export class EnrolmentGate {
  readonly book: Enrolment;
  readonly #key: AuthKey;
  readonly #ttlMs: number;
  readonly #logger: Logger;

  constructor(key: AuthKey, logger: Logger, options: EnrolmentLimits & { enrolledTokenTtlMs?: number } = {}) {
    const { enrolledTokenTtlMs, ...limits } = options;
    this.book = new Enrolment(limits);
    this.#key = key;
    this.#ttlMs = enrolledTokenTtlMs ?? DEFAULTS.enrolledTokenTtlMs;
    this.#logger = logger;
  }

  /** One attempt of an agent presenting an enrolment token (already verified, not revoked). */
  async check(
    hello: HelloBody,
    transport: Transport,
    claims: TokenClaims,
    now: number,
  ): Promise<GateVerdict> {
    const book = this.book;
    if (hello.role !== "agent") {
      return refuse(CloseCode.REJECTED, "an enrolment token opens agent sessions only", "role");
    }
    if (!globMatcher(claims.subject)(hello.name)) {
      return refuse(
        CloseCode.REJECTED,
        `this enrolment token is for agents named ${claims.subject}, not ${hello.name}`,
        "name",
      );
    }
    if (!sameLabels(hello.labels, claims.labels)) {
      return refuse(
        CloseCode.REJECTED,
        `agent ${hello.name} presents labels ${showLabels(hello.labels)}, but its token binds ${showLabels(claims.labels)}`,
        "labels",
      );
    }
    if (hello.enrolId === undefined) {
      return refuse(CloseCode.PROTOCOL_ERROR, "an enrolment HELLO must carry enrolId", "malformed");
    }
    // Never promise a token that cannot be issued: refused now, before anyone accepts it.
    const tooBig = this.#cannotIssue(hello.name, hello.labels, claims.methods);
    if (tooBig !== undefined) {
      return refuse(
        CloseCode.REJECTED,
        `enrolment of ${hello.name} refused: ${tooBig}`,
        "enrol_token_too_large",
        {
          failure: false,
        },
      );
    }
    const v = book.attempt(
      { name: hello.name, labels: hello.labels, version: hello.version, enrolId: hello.enrolId },
      { id: claims.id, methods: claims.methods },
      transport.remoteAddress,
      now,
    );
    const log = this.#logger;
    switch (v.state) {
      case "full":
        log.warn(
          { peer: hello.name, remote: transport.remoteAddress, why: v.message },
          "enrolment request refused",
        );
        return refuse(CloseCode.BUSY, v.message, "enrol_full", {
          retryAfterMs: DEFAULTS.maxRetryAfterMs,
          failure: false,
        });
      case "rejected":
        return refuse(
          CloseCode.REJECTED,
          `enrolment of ${hello.name} was rejected by ${v.by}${v.why === "" ? "" : `: ${v.why}`}`,
          "enrol_rejected",
          { failure: false },
        );
      case "pending": {
        const r = v.request;
        const rivals = v.rivals;
        if (v.isNew) {
          log[rivals.length > 0 ? "warn" : "info"](
            {
              peer: r.name,
              remote: r.address,
              fingerprint: r.fingerprint,
              rivals: rivals.map((o) => o.fingerprint),
            },
            rivals.length > 0
              ? "another agent asks to enrol under a name that is waiting: neither is admitted until an admin chooses by fingerprint"
              : "enrolment request waiting: muster agents accept NAME --fingerprint F",
          );
        }
        const conflict =
          rivals.length === 0
            ? ""
            : `; ${rivals.length === 1 ? "another agent asks" : `${rivals.length} other agents ask`} for this name (fingerprint ${rivals
                .map((o) => o.fingerprint)
                .join(", ")}): an admin must choose`;
        return refuse(
          CloseCode.PENDING,
          `waiting for an operator to accept ${hello.name} (fingerprint ${r.fingerprint})${conflict}: muster agents accept ${hello.name} --fingerprint ${r.fingerprint}`,
          "pending",
          { retryAfterMs: DEFAULTS.enrolmentRetryAfterMs, failure: false },
        );
      }
      case "accepted":
        return this.#issue(hello, v.request, v.by, v.methods);
    }
  }

  /** The token an enrolled agent is issued. */
  #issueOptions(name: string, labels: Record<string, string>, methods: string[] | undefined): IssueOptions {
    const issue: IssueOptions = {
      role: "agent",
      subject: name,
      labels,
      ttlMs: this.#ttlMs,
    };
    if (methods !== undefined) issue.methods = methods;
    return issue;
  }

  /** Why the token of an agent enrolled so could not be issued, or undefined. */
  #cannotIssue(
    name: string,
    labels: Record<string, string>,
    methods: string[] | undefined,
  ): string | undefined {
    try {
      checkIssue(this.#key, this.#issueOptions(name, labels, methods));
      return undefined;
    } catch (err) {
      return MusterError.from(err).rawMessage;
    }
  }

  /** An accepted agent's attempt: it is issued its token, or told clearly why it cannot be. */
  async #issue(
    hello: HelloBody,
    request: EnrolmentRequest,
    by: string,
    methods: string[] | undefined,
  ): Promise<GateVerdict> {
    const book = this.book;
    const log = this.#logger;
    if (!sameLabels(hello.labels, request.labels)) {
      return refuse(
        CloseCode.REJECTED,
        `agent ${hello.name} presents labels ${showLabels(hello.labels)}, but it was accepted with ${showLabels(request.labels)}`,
        "labels",
      );
    }
    const issue = this.#issueOptions(hello.name, request.labels, methods);
    let token: string;
    try {
      token = await issueToken(this.#key, issue);
    } catch (err) {
      const why = `its token could not be issued: ${MusterError.from(err).rawMessage}`;
      log.error(
        { peer: hello.name, by, fingerprint: request.fingerprint, why },
        "enrolment accepted, but failed",
      );
      book.failed(request, by, `it was accepted, but ${why}`, Date.now());
      return refuse(
        CloseCode.REJECTED,
        `enrolment of ${hello.name} was accepted by ${by}, but ${why}`,
        "enrol_failed",
        {
          failure: false,
        },
      );
    }
    book.collected(request);
    log.info({ peer: hello.name, by, fingerprint: request.fingerprint }, "agent enrolled: token issued");
    const identity: Identity = {
      role: "agent",
      subject: hello.name,
      via: "enrolment",
      expiresAt: Date.now() + (issue.ttlMs ?? 0),
    };
    if (methods !== undefined) identity.methods = methods;
    return { ok: true, identity, issued: token };
  }

  /** Accepts or rejects a waiting enrolment request (see AuthGate.decide). */
  decide(
    action: "accept" | "reject",
    name: string,
    by: string,
    now: number,
    fingerprint?: string,
  ): EnrolmentRequest {
    const book = this.book;
    const r = book.find(name, fingerprint);
    const log = this.#logger;
    if (action === "accept") {
      const tooBig = this.#cannotIssue(r.name, r.labels, book.methodsOf(r));
      if (tooBig !== undefined) {
        const why = `its token cannot be issued: ${tooBig}`;
        book.reject(r, by, now, why);
        log.warn(
          { peer: name, by, fingerprint: r.fingerprint, why },
          "enrolment cannot be accepted: rejected",
        );
        throw new MusterError(
          ErrorCode.INVALID_ARGUMENT,
          `cannot accept ${name}: ${why}; the agent is told so`,
        );
      }
      book.accept(r, by, now);
    } else book.reject(r, by, now);
    log.info(
      { peer: name, by, fingerprint: r.fingerprint, address: r.address },
      action === "accept" ? "enrolment accepted" : "enrolment rejected",
    );
    return r;
  }
}
