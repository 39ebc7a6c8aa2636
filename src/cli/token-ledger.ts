import { appendFileSync, closeSync, fstatSync, openSync, readSync } from "node:fs";
import { dirname, join } from "node:path";
import { checkTokenId, TOKEN_ROLES, type TokenClaims, type TokenRole } from "../auth/tokens.js";

/*
 * The issuance ledger: tokens are stateless, so `muster token create` appends what it signed
 * (never the token) to `issued.jsonl` beside the signing key, one JSON object a line, and
 * `muster token list` reads it back. The file is created with mode 0600 and only appended to.
 */

/** The ledger's file name, in the signing key's directory. */
export const LEDGER_NAME = "issued.jsonl";

/** Most bytes read from a ledger: a larger one is read from its end (its latest tokens). */
export const MAX_LEDGER_BYTES = 16 * 2 ** 20;

/** One token as the ledger records it: its claims, never the token itself. */
export interface Issued {
  id: string;
  role: TokenRole;
  subject: string;
  labels: Record<string, string>;
  methods?: string[];
  /** ISO 8601. */
  issuedAt: string;
  /** ISO 8601, or null for a token that never expires. */
  expiresAt: string | null;
  /** Fingerprint of the key that signed it. */
  key: string;
  /** Who ran `muster token create`: `user@host`. */
  by?: string;
}

/** The ledger beside a key file. */
export function ledgerPath(keyPath: string): string {
  return join(dirname(keyPath), LEDGER_NAME);
}

/** The ledger record of a token just signed with the key of fingerprint `key`. */
export function issuedRecord(claims: TokenClaims, key: string, by?: string): Issued {
  return {
    id: claims.id,
    role: claims.role,
    subject: claims.subject,
    labels: claims.labels,
    ...(claims.methods !== undefined ? { methods: claims.methods } : {}),
    issuedAt: new Date(claims.issuedAt).toISOString(),
    expiresAt: claims.expiresAt === undefined ? null : new Date(claims.expiresAt).toISOString(),
    key,
    ...(by !== undefined ? { by } : {}),
  };
}

/** Appends a record; the file is created with mode 0600. Throws what the file system throws. */
export function appendIssued(path: string, record: Issued): void {
  appendFileSync(path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

const isStringRecord = (v: unknown): v is Record<string, string> =>
  typeof v === "object" &&
  v !== null &&
  !Array.isArray(v) &&
  Object.values(v).every((x) => typeof x === "string");

const isTime = (v: unknown): v is string => typeof v === "string" && !Number.isNaN(Date.parse(v));

/** One line as a record, or undefined when it is not one. */
export function parseIssued(line: string): Issued | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const r = v as Record<string, unknown>;
  const ok =
    checkTokenId(r.id) === undefined &&
    (TOKEN_ROLES as readonly unknown[]).includes(r.role) &&
    typeof r.subject === "string" &&
    isStringRecord(r.labels) &&
    (r.methods === undefined ||
      (Array.isArray(r.methods) && r.methods.every((m) => typeof m === "string"))) &&
    isTime(r.issuedAt) &&
    (r.expiresAt === null || isTime(r.expiresAt)) &&
    typeof r.key === "string" &&
    (r.by === undefined || typeof r.by === "string");
  return ok ? (r as unknown as Issued) : undefined;
}

export interface LedgerRead {
  records: Issued[];
  /** Lines that are not records (a hand edit, a line cut by a full disk). */
  skipped: number;
  /** Bytes before the part read, when the file is over the bound. */
  truncatedBytes: number;
}

/**
 * Reads a ledger: its last `maxBytes` at most (a partial first line dropped), every line that
 * is a record. A missing file is an empty ledger; other errors are thrown.
 */
export function readLedger(path: string, maxBytes = MAX_LEDGER_BYTES): LedgerRead {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT")
      return { records: [], skipped: 0, truncatedBytes: 0 };
    throw err;
  }
  let text: string;
  let truncatedBytes = 0;
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, maxBytes);
    truncatedBytes = size - length;
    const buf = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const n = readSync(fd, buf, read, length - read, truncatedBytes + read);
      if (n === 0) break;
      read += n;
    }
    text = buf.subarray(0, read).toString("utf8");
  } finally {
    closeSync(fd);
  }
  // A read that starts mid-file starts mid-line.
  if (truncatedBytes > 0) text = text.slice(text.indexOf("\n") + 1);
  const records: Issued[] = [];
  let skipped = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const r = parseIssued(line);
    if (r === undefined) skipped++;
    else records.push(r);
  }
  return { records, skipped, truncatedBytes };
}
