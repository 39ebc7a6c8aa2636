import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";

/*
 * Signing keys. A key file holds one of three things, as text:
 *   - an Ed25519 private key, PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`): signs and verifies;
 *   - an Ed25519 public key, PEM SPKI (`-----BEGIN PUBLIC KEY-----`): verifies only;
 *   - an HMAC secret, one line `muster-hmac-v1:<base64url of at least 32 bytes>`: signs and verifies.
 * The key material stays inside this module (a WeakMap from the AuthKey); an AuthKey itself
 * carries nothing secret and can be logged.
 */

export type KeyAlgorithm = "EdDSA" | "HS256";

export interface AuthKey {
  readonly algorithm: KeyAlgorithm;
  /** True when this key can sign (an Ed25519 private key or an HMAC secret); an Ed25519 public key only verifies. */
  readonly canSign: boolean;
  /** First 16 hex digits of the SHA-256 of the public key (Ed25519 SPKI DER) or of the HMAC secret's SHA-256 — safe to log. */
  readonly fingerprint: string;
  /** Where it came from, for messages (a path, or "inline"). */
  readonly source: string;
}

/** The prefix of an HMAC secret line. */
export const HMAC_PREFIX = "muster-hmac-v1:";
/** Fewest bytes an HMAC secret may have (HS256 wants at least the hash size). */
export const HMAC_MIN_BYTES = 32;

/** What jose signs and verifies with. @internal */
export interface KeyMaterial {
  readonly signWith: KeyObject | Uint8Array | undefined;
  readonly verifyWith: KeyObject | Uint8Array;
}

const material = new WeakMap<AuthKey, KeyMaterial>();

/** The key material behind an AuthKey made by this module. @internal */
export function keyMaterial(key: AuthKey): KeyMaterial {
  const m = material.get(key);
  if (m === undefined)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `key ${key.source} was not made by parseKey, loadKeyFile or generateKeyFile`,
    );
  return m;
}

function makeKey(algorithm: KeyAlgorithm, fingerprint: string, source: string, m: KeyMaterial): AuthKey {
  const key: AuthKey = Object.freeze({ algorithm, canSign: m.signWith !== undefined, fingerprint, source });
  material.set(key, m);
  return key;
}

const sha256 = (data: Uint8Array): Buffer => createHash("sha256").update(data).digest();

function edFingerprint(publicKey: KeyObject): string {
  return sha256(publicKey.export({ type: "spki", format: "der" }))
    .toString("hex")
    .slice(0, 16);
}

const invalid = (message: string): MusterError => new MusterError(ErrorCode.INVALID_ARGUMENT, message);

/** $MUSTER_HOME, else ~/.muster */
export function musterHome(): string {
  const home = process.env.MUSTER_HOME;
  return home !== undefined && home !== "" ? home : join(homedir(), ".muster");
}

/** $MUSTER_AUTH_KEY, else $MUSTER_HOME/auth.key, else ~/.muster/auth.key */
export function defaultKeyPath(): string {
  const path = process.env.MUSTER_AUTH_KEY;
  return path !== undefined && path !== "" ? path : join(musterHome(), "auth.key");
}

const PEM_LABEL = /-----BEGIN ([A-Z0-9 ]+)-----/;

/**
 * Parses key text: a PEM PKCS8 Ed25519 private key, a PEM SPKI Ed25519 public key, or an HMAC
 * secret line `muster-hmac-v1:<base64url of ≥ 32 bytes>`. Anything else: INVALID_ARGUMENT saying
 * which form was expected; the message never repeats any of the text.
 */
export function parseKey(text: string, source: string): AuthKey {
  const t = text.trim();
  const where = `key ${source}`;
  const forms = `an Ed25519 PEM key ("-----BEGIN PRIVATE KEY-----" or "-----BEGIN PUBLIC KEY-----") or a line ${HMAC_PREFIX}<base64url secret>`;
  if (t === "") throw invalid(`${where} is empty: expected ${forms}`);
  if (t.startsWith(HMAC_PREFIX)) return parseHmac(t.slice(HMAC_PREFIX.length), where, source);
  const label = PEM_LABEL.exec(t)?.[1];
  if (label === undefined) throw invalid(`${where} is neither PEM nor an HMAC secret: expected ${forms}`);
  if (label === "PRIVATE KEY") {
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: t, format: "pem" });
    } catch {
      throw invalid(`${where}: the PEM private key cannot be read (damaged or not PKCS#8)`);
    }
    if (privateKey.asymmetricKeyType !== "ed25519")
      throw invalid(`${where} is a ${privateKey.asymmetricKeyType} private key: muster keys are Ed25519`);
    const publicKey = createPublicKey(privateKey);
    return makeKey("EdDSA", edFingerprint(publicKey), source, {
      signWith: privateKey,
      verifyWith: publicKey,
    });
  }
  if (label === "PUBLIC KEY") {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: t, format: "pem" });
    } catch {
      throw invalid(`${where}: the PEM public key cannot be read (damaged or not SPKI)`);
    }
    if (publicKey.asymmetricKeyType !== "ed25519")
      throw invalid(`${where} is a ${publicKey.asymmetricKeyType} public key: muster keys are Ed25519`);
    return makeKey("EdDSA", edFingerprint(publicKey), source, { signWith: undefined, verifyWith: publicKey });
  }
  if (label === "ENCRYPTED PRIVATE KEY")
    throw invalid(`${where} is an encrypted private key: muster reads unencrypted PKCS#8 keys only`);
  throw invalid(`${where} is a PEM "${label}": expected ${forms}`);
}

function parseHmac(encoded: string, where: string, source: string): AuthKey {
  if (!/^[A-Za-z0-9_-]+$/.test(encoded))
    throw invalid(`${where}: the HMAC secret after "${HMAC_PREFIX}" must be base64url on one line`);
  const secret = new Uint8Array(Buffer.from(encoded, "base64url"));
  if (secret.length < HMAC_MIN_BYTES)
    throw invalid(
      `${where}: the HMAC secret has ${secret.length} bytes, fewer than ${HMAC_MIN_BYTES}: make a new one with muster token keygen --alg hmac`,
    );
  const fingerprint = sha256(sha256(secret)).toString("hex").slice(0, 16);
  return makeKey("HS256", fingerprint, source, { signWith: secret, verifyWith: secret });
}

function readKeyText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    throw unreadable(path, code ?? (err as Error).message);
  }
}

/** `details.errno` carries the errno code (ENOENT for a missing file). */
const unreadable = (path: string, errno: string): MusterError =>
  new MusterError(ErrorCode.INVALID_ARGUMENT, `cannot read key file ${path}: ${errno}`, {
    details: { path, errno },
  });

/**
 * Reads and parses a key file; a missing or unreadable file is INVALID_ARGUMENT naming the path
 * and errno code (also in `details`: `{ path, errno }`).
 */
export function loadKeyFile(path: string): AuthKey {
  const text = readKeyText(path);
  if (text === undefined) throw unreadable(path, "ENOENT");
  return parseKey(text, path);
}

/**
 * Writes `text` at `path` with `mode`, through a temporary file in the same directory, so that
 * no reader ever sees half a key and the mode is right even when an old file's was not. Without
 * `replace` the temporary file is hard-linked to `path`, which fails with EEXIST when it exists.
 */
function writeFileAtomic(path: string, text: string, mode: number, replace: boolean): void {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const fd = openSync(tmp, "wx", mode);
  try {
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    if (replace) renameSync(tmp, path);
    else linkSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Creates a new key file with mode 0600 (missing directories made with 0700), refusing to
 * overwrite an existing one unless `force`. For EdDSA it also writes `<path>.pub`, the SPKI
 * public key (mode 0644), for servers that only verify. Returns the key.
 */
export function generateKeyFile(
  path: string,
  algorithm: KeyAlgorithm = "EdDSA",
  options: { force?: boolean } = {},
): AuthKey {
  const force = options.force === true;
  const { text, publicPem } = newKeyText(algorithm);
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileAtomic(path, text, 0o600, force);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST")
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `key file ${path} already exists: not overwritten (force replaces it)`,
        { details: { path, errno: code } },
      );
    throw invalid(`cannot write key file ${path}: ${code ?? (err as Error).message}`);
  }
  if (publicPem !== undefined) {
    try {
      // The public half always follows the private one, so an old .pub is replaced.
      writeFileAtomic(`${path}.pub`, publicPem, 0o644, true);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw invalid(`cannot write public key file ${path}.pub: ${code ?? (err as Error).message}`);
    }
  }
  return parseKey(text, path);
}

/** The text of a new key (and, for EdDSA, of its public half). */
function newKeyText(algorithm: KeyAlgorithm): { text: string; publicPem?: string } {
  if (algorithm === "EdDSA") {
    const pair = generateKeyPairSync("ed25519");
    return {
      text: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      publicPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    };
  }
  if (algorithm === "HS256")
    return { text: `${HMAC_PREFIX}${randomBytes(HMAC_MIN_BYTES).toString("base64url")}\n` };
  throw invalid(`key algorithm ${JSON.stringify(algorithm)} is unknown: use EdDSA or HS256`);
}

/**
 * A new signing key held in memory only (tests, embedded servers whose tokens live as long as
 * the process). Servers meant to outlive a restart want `generateKeyFile`.
 */
export function generateKey(algorithm: KeyAlgorithm = "EdDSA"): AuthKey {
  return parseKey(newKeyText(algorithm).text, "in memory");
}

/** Loads the key at `path`, creating it (EdDSA) if it does not exist; returns { key, created }. */
export function loadOrCreateKeyFile(path: string): { key: AuthKey; created: boolean } {
  const text = readKeyText(path);
  if (text !== undefined) return { key: parseKey(text, path), created: false };
  try {
    return { key: generateKeyFile(path, "EdDSA"), created: true };
  } catch (err) {
    // Another process created it between the read and the write: use theirs.
    const again = readKeyText(path);
    if (again !== undefined) return { key: parseKey(again, path), created: false };
    throw err;
  }
}
