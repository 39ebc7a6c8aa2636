import { randomBytes } from "node:crypto";
import {
  compactVerify,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from "jose";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { checkLabels, checkName } from "../wire/codec.js";
import { type AuthKey, keyMaterial } from "./keys.js";

/*
 * Tokens are JWTs (compact JWS) signed with the server's key: EdDSA (Ed25519) or HS256.
 * Claims: iss "muster", sub, jti, iat, exp (when the token expires), and muster's own `role`,
 * `labels` (left out when empty) and `methods` (when given). Verification accepts the key's own
 * algorithm only, so neither "none" nor the other algorithm (alg confusion) ever passes.
 */

export type TokenRole = "agent" | "operator" | "admin" | "enrol";

export const TOKEN_ROLES: readonly TokenRole[] = ["agent", "operator", "admin", "enrol"];

export interface TokenClaims {
  /** Token id (JWT jti, random 128-bit base64url): what revocation names. */
  id: string;
  role: TokenRole;
  /** JWT sub. agent: the agent's exact name; operator/admin: who (free text shown in logs); enrol: a glob (`*` and `?`) the enrolling agent's name must match. */
  subject: string;
  /** agent and enrol: the labels the agent must present, exactly ({} when absent). */
  labels: Record<string, string>;
  /** Optional grants, as globs (`*`, `?`): for agent tokens the server methods the agent may call; for operator tokens the agent methods it may call through the server. Absent: the role's default. */
  methods?: string[];
  /** ms since epoch (the JWT's iat, whole seconds). */
  issuedAt: number;
  /** ms since epoch (the JWT's exp); undefined = no expiry. */
  expiresAt: number | undefined;
}

export interface IssueOptions {
  role: TokenRole;
  subject: string;
  labels?: Record<string, string>;
  methods?: string[];
  /** Lifetime; undefined = no expiry. */
  ttlMs?: number;
  /** The token id; default: 128 random bits, base64url. */
  id?: string;
  /** ms since epoch; default Date.now(). */
  now?: number;
}

/** Why a token was refused: `details.reason` of every UNAUTHENTICATED error of verifyToken. */
export type TokenFailureReason = "malformed" | "bad_signature" | "expired" | "not_yet_valid" | "claims";

/** Longest token accepted, in characters. */
export const MAX_TOKEN_CHARS = 4096;
/** The JWT iss of every muster token. */
export const TOKEN_ISSUER = "muster";
/**
 * 128 random bits, base64url, never starting with `-` or `_`: an id is typed on command lines
 * (`muster token revoke ID`), where a leading `-` reads as an option.
 */
function newTokenId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}

/** Token ids: base64url, 1 to 128 characters. */
export const TOKEN_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/** Longest subject of an operator or admin token. */
export const MAX_SUBJECT_CHARS = 256;
export const MAX_METHODS = 64;
export const MAX_METHOD_CHARS = 255;

/** Enrolment subjects: agent-name characters plus the glob characters `*` and `?`. */
const ENROL_GLOB = /^[A-Za-z0-9._:@*?-]{1,128}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Three base64url parts; the signature may be empty (an unsigned token, refused by name). */
const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const utf8 = new TextDecoder("utf-8", { fatal: true });

const q = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 42 ? `${s.slice(0, 40)}…"` : s;
};

/** Checks a token id; returns what is wrong or undefined. */
export function checkTokenId(id: unknown): string | undefined {
  if (typeof id === "string" && TOKEN_ID_PATTERN.test(id)) return undefined;
  return "a token id is 1–128 base64url characters (letters, digits, - and _)";
}

/** Checks a subject for a role; returns what is wrong or undefined. */
function checkSubject(role: TokenRole, subject: unknown): string | undefined {
  if (typeof subject !== "string" || subject.length === 0 || subject.length > MAX_SUBJECT_CHARS)
    return `subject must be 1–${MAX_SUBJECT_CHARS} characters`;
  if (role === "agent") return checkName(subject);
  if (role === "enrol" && !ENROL_GLOB.test(subject))
    return `enrolment subject ${q(subject)} is invalid: a glob of 1–128 letters, digits, . _ - : @ and the wildcards * and ?`;
  if (CONTROL.test(subject)) return "subject must not contain control characters";
  return undefined;
}

function checkMethods(methods: unknown): string | undefined {
  if (!Array.isArray(methods) || methods.length === 0 || methods.length > MAX_METHODS)
    return `methods must be a list of 1–${MAX_METHODS} globs`;
  for (const [i, m] of methods.entries()) {
    if (typeof m !== "string" || m.length === 0 || m.length > MAX_METHOD_CHARS || CONTROL.test(m))
      return `method ${i + 1} must be 1–${MAX_METHOD_CHARS} characters, no control characters`;
  }
  return undefined;
}

const invalid = (message: string): MusterError => new MusterError(ErrorCode.INVALID_ARGUMENT, message);

type JWTHeader = JWTHeaderParameters & { alg: AuthKey["algorithm"]; typ: "JWT" };

/** Characters of the base64url (unpadded) encoding of `bytes` bytes. */
const base64urlChars = (bytes: number): number => Math.ceil((bytes * 4) / 3);

/** Characters of a signature in base64url, by algorithm (Ed25519: 64 bytes; HMAC-SHA-256: 32). */
const SIGNATURE_CHARS: Record<AuthKey["algorithm"], number> = { EdDSA: 86, HS256: 43 };

/** The header and payload a token would carry; every option is checked (INVALID_ARGUMENT). */
function tokenParts(key: AuthKey, options: IssueOptions): { header: JWTHeader; payload: JWTPayload } {
  const { role, subject } = options;
  if (!TOKEN_ROLES.includes(role))
    throw invalid(`role ${q(role)} is unknown: use one of ${TOKEN_ROLES.join(", ")}`);
  const badSubject = checkSubject(role, subject);
  if (badSubject !== undefined) throw invalid(`token subject: ${badSubject}`);
  const labels = options.labels ?? {};
  const badLabels = checkLabels(labels);
  if (badLabels !== undefined) throw invalid(`token labels: ${badLabels}`);
  const hasLabels = Object.keys(labels).length > 0;
  if (hasLabels && role !== "agent" && role !== "enrol")
    throw invalid(`labels are for agent and enrol tokens, not ${role} tokens`);
  if (options.methods !== undefined) {
    const badMethods = checkMethods(options.methods);
    if (badMethods !== undefined) throw invalid(`token ${badMethods}`);
  }
  const { ttlMs } = options;
  if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs > 0))
    throw invalid(`token ttlMs must be a number of milliseconds above 0, not ${q(ttlMs)}`);
  const id = options.id ?? newTokenId();
  if (checkTokenId(id) !== undefined) throw invalid(`token id: ${checkTokenId(id)}`);
  const now = options.now ?? Date.now();
  const payload: JWTPayload = { iss: TOKEN_ISSUER, sub: subject, jti: id, iat: Math.floor(now / 1000), role };
  // Rounded up, so that a token never expires before now + ttlMs.
  if (ttlMs !== undefined) payload.exp = Math.ceil((now + ttlMs) / 1000);
  if (hasLabels) payload.labels = { ...labels };
  if (options.methods !== undefined) payload.methods = [...options.methods];
  return { header: { alg: key.algorithm, typ: "JWT" }, payload };
}

/** The exact length of a compact JWS with this header and payload, signed with `key`. */
function compactLength(key: AuthKey, header: JWTHeader, payload: JWTPayload): number {
  const json = (v: unknown): number => Buffer.byteLength(JSON.stringify(v), "utf8");
  return (
    base64urlChars(json(header)) + 1 + base64urlChars(json(payload)) + 1 + SIGNATURE_CHARS[key.algorithm]
  );
}

function tooLong(length: number): MusterError {
  return invalid(
    `the token would be ${length} characters, more than ${MAX_TOKEN_CHARS}: give fewer or shorter labels or methods`,
  );
}

/**
 * How many characters `issueToken(key, options)` would return, without signing (no key material
 * is used): every option is checked as issueToken checks it, and a token over
 * MAX_TOKEN_CHARS is refused with the same INVALID_ARGUMENT. A server checks with it before it
 * promises a token it could not issue (enrolment).
 */
export function checkIssue(key: AuthKey, options: IssueOptions): number {
  const { header, payload } = tokenParts(key, options);
  const length = compactLength(key, header, payload);
  if (length > MAX_TOKEN_CHARS) throw tooLong(length);
  return length;
}

/** Signs a token; every option is checked first (INVALID_ARGUMENT naming what is wrong). */
export async function issueToken(key: AuthKey, options: IssueOptions): Promise<string> {
  const m = keyMaterial(key);
  if (m.signWith === undefined)
    throw invalid(`key ${key.source} is an Ed25519 public key: it verifies tokens but cannot sign them`);
  const { header, payload } = tokenParts(key, options);
  // Refused before any signature is computed.
  const length = compactLength(key, header, payload);
  if (length > MAX_TOKEN_CHARS) throw tooLong(length);
  const token = await new SignJWT(payload).setProtectedHeader(header).sign(m.signWith);
  if (token.length > MAX_TOKEN_CHARS) throw tooLong(token.length);
  return token;
}

/** Claims and the JWT nbf, or what is wrong with them. */
type Parsed = { claims: TokenClaims; notBefore: number | undefined } | { problem: string };

const seconds = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);

function parseClaims(p: Record<string, unknown>): Parsed {
  if (p.iss !== TOKEN_ISSUER)
    return {
      problem: p.iss === undefined ? "token has no issuer (iss)" : `token issuer ${q(p.iss)} is not "muster"`,
    };
  if (checkTokenId(p.jti) !== undefined)
    return { problem: `token id (jti) is invalid: ${checkTokenId(p.jti)}` };
  const role = p.role;
  if (role === undefined) return { problem: "token has no role" };
  if (!TOKEN_ROLES.includes(role as TokenRole)) return { problem: `token role ${q(role)} is unknown` };
  const badSubject = checkSubject(role as TokenRole, p.sub);
  if (badSubject !== undefined) return { problem: `token subject (sub): ${badSubject}` };
  const labels = p.labels ?? {};
  const badLabels = checkLabels(labels);
  if (badLabels !== undefined) return { problem: `token labels: ${badLabels}` };
  if (p.methods !== undefined) {
    const badMethods = checkMethods(p.methods);
    if (badMethods !== undefined) return { problem: `token ${badMethods}` };
  }
  if (!seconds(p.iat)) return { problem: "token has no issue time (iat) in seconds" };
  if (p.exp !== undefined && !seconds(p.exp))
    return { problem: "token expiry (exp) is not a time in seconds" };
  if (p.nbf !== undefined && !seconds(p.nbf)) return { problem: "token nbf is not a time in seconds" };
  const claims: TokenClaims = {
    id: p.jti as string,
    role: role as TokenRole,
    subject: p.sub as string,
    labels: { ...(labels as Record<string, string>) },
    issuedAt: Math.round((p.iat as number) * 1000),
    expiresAt: p.exp === undefined ? undefined : Math.round((p.exp as number) * 1000),
  };
  if (p.methods !== undefined) claims.methods = [...(p.methods as string[])];
  return { claims, notBefore: p.nbf === undefined ? undefined : Math.round((p.nbf as number) * 1000) };
}

function refuse(reason: TokenFailureReason, message: string): MusterError {
  return new MusterError(ErrorCode.UNAUTHENTICATED, message, { details: { reason } });
}

/**
 * The time checks of verifyToken, for a cache that re-checks a remembered token: expired when
 * `now` is `tokenClockToleranceMs` or more past exp, not yet valid when nbf is more than that
 * ahead. Returns the error to throw, or undefined. @internal
 */
export function checkTokenTimes(
  expiresAt: number | undefined,
  notBefore: number | undefined,
  now: number,
): MusterError | undefined {
  const tolerance = DEFAULTS.tokenClockToleranceMs;
  if (expiresAt !== undefined && expiresAt <= now - tolerance)
    return refuse("expired", `token expired at ${new Date(expiresAt).toISOString()}`);
  if (notBefore !== undefined && notBefore > now + tolerance)
    return refuse("not_yet_valid", `token not valid before ${new Date(notBefore).toISOString()}`);
  return undefined;
}

/**
 * Verifies a token: its signature (with the key's own algorithm only), then its claims and
 * times (30 s of clock difference tolerated). Throws UNAUTHENTICATED with `details.reason`
 * (a TokenFailureReason) and a message that never contains the token.
 */
export async function verifyToken(
  key: AuthKey,
  token: string,
  now: number = Date.now(),
): Promise<TokenClaims> {
  const m = keyMaterial(key);
  if (typeof token !== "string" || token.length === 0) throw refuse("malformed", "token is empty");
  if (token.length > MAX_TOKEN_CHARS)
    throw refuse("malformed", `token is longer than ${MAX_TOKEN_CHARS} characters`);
  if (!JWS_SHAPE.test(token))
    throw refuse("malformed", "token is malformed: not three base64url parts separated by dots");
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw refuse("malformed", "token is malformed: its header is not base64url JSON");
  }
  if (typeof alg !== "string") throw refuse("malformed", "token is malformed: its header has no alg");
  if (alg.toLowerCase() === "none")
    throw refuse(
      "bad_signature",
      `token is not signed (alg "none"): this server accepts ${key.algorithm} only`,
    );
  if (alg !== key.algorithm)
    throw refuse(
      "bad_signature",
      `token is signed with ${q(alg)}, but this server's key is ${key.algorithm}`,
    );
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(token, m.verifyWith, { algorithms: [key.algorithm] }));
  } catch (err) {
    if (err instanceof errors.JWSSignatureVerificationFailed)
      throw refuse("bad_signature", "token signature does not match this server's key");
    throw refuse("malformed", `token is malformed: ${(err as Error).message}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(utf8.decode(payload));
  } catch {
    body = undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw refuse("malformed", "token is malformed: its payload is not a JSON object");
  const parsed = parseClaims(body as Record<string, unknown>);
  if ("problem" in parsed) throw refuse("claims", parsed.problem);
  const late = checkTokenTimes(parsed.claims.expiresAt, parsed.notBefore, now);
  if (late !== undefined) throw late;
  return parsed.claims;
}

/**
 * Reads the claims WITHOUT verifying the signature or the times (for display, and for taking an
 * agent's labels from its token). The same shape checks as verifyToken; INVALID_ARGUMENT when
 * it is not a muster token.
 */
export function decodeTokenUnverified(token: string): TokenClaims {
  if (typeof token !== "string" || token.trim() === "") throw invalid("not a muster token: it is empty");
  if (token.length > MAX_TOKEN_CHARS)
    throw invalid(`not a muster token: it is longer than ${MAX_TOKEN_CHARS} characters`);
  if (!JWS_SHAPE.test(token))
    throw invalid("not a muster token: not three base64url parts separated by dots");
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    throw invalid("not a muster token: its payload is not base64url JSON");
  }
  const parsed = parseClaims(payload);
  if ("problem" in parsed) throw invalid(`not a muster token: ${parsed.problem}`);
  return parsed.claims;
}
