import { readFileSync } from "node:fs";
import { type Command, Option } from "commander";
import { type AuthKey, defaultKeyPath, loadKeyFile } from "../../auth/keys.js";
import { defaultRevocationsPath, parseRevocationLines } from "../../auth/revocations.js";
import type { TokenClaims } from "../../auth/tokens.js";
import type { MusterError } from "../../errors/muster-error.js";
import { EXIT, fail, formatBytes } from "../common.js";
import { DEFAULT_KEY_HELP, localSubject } from "../credentials.js";
import { labelsText } from "../listings.js";
import { type Column, type OutputFlags, outputFormat, printListing, withOutputOption } from "../output.js";
import {
  appendIssued,
  type Issued,
  issuedRecord,
  type LedgerRead,
  ledgerPath,
  MAX_LEDGER_BYTES,
  readLedger,
} from "../token-ledger.js";

/*
 * `muster token list`: the tokens `muster token create` signed with a key, from the ledger
 * beside it, with whether each is revoked in the local revocations file. Never a token.
 */

/**
 * Records a token just signed with the key at `keyPath` in the ledger beside it. A ledger that
 * cannot be written is said on standard error; the token is issued all the same.
 */
export function noteIssued(keyPath: string, key: AuthKey, claims: TokenClaims): void {
  const path = ledgerPath(keyPath);
  try {
    appendIssued(path, issuedRecord(claims, key.fingerprint, localSubject()));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    process.stderr.write(
      `muster: warning: token ${claims.id} is not recorded in ${path} (${why}): muster token list will not show it\n`,
    );
  }
}

/** A token as listed: its record, and whether it is expired or revoked. */
export interface ListedToken extends Issued {
  expired: boolean;
  revoked: boolean;
  /** When it was revoked, as the revocations file says (ISO 8601). */
  revokedAt?: string;
  /** Why, as the revocations file says. */
  reason?: string;
}

const seconds = (iso: string): string => iso.replace(/\.\d+Z$/, "Z");

const TOKEN_COLUMNS: readonly Column<ListedToken>[] = [
  { header: "ID", cell: (t) => t.id },
  { header: "ROLE", cell: (t) => t.role },
  { header: "SUBJECT", cell: (t) => t.subject },
  { header: "LABELS", cell: (t) => labelsText(t.labels) },
  {
    header: "EXPIRES",
    cell: (t) => (t.expiresAt === null ? "never" : `${seconds(t.expiresAt)}${t.expired ? " (expired)" : ""}`),
  },
  { header: "REVOKED", cell: (t) => (t.revoked ? "yes" : "no") },
  { header: "ISSUED", only: "wide", cell: (t) => seconds(t.issuedAt) },
  { header: "METHODS", only: "wide", cell: (t) => t.methods?.join(",") ?? "-" },
  { header: "BY", only: "wide", cell: (t) => t.by ?? "-" },
  { header: "KEY", only: "wide", cell: (t) => t.key },
  {
    header: "REVOKED AT",
    only: "wide",
    cell: (t) => (t.revokedAt === undefined ? "-" : seconds(t.revokedAt)),
  },
  { header: "REASON", only: "wide", cell: (t) => t.reason ?? "-" },
];

interface ListFlags extends OutputFlags {
  key?: string;
  all: boolean;
  revocations?: string;
}

function keyOrFail(path: string): AuthKey {
  try {
    return loadKeyFile(path);
  } catch (err) {
    const e = err as MusterError;
    if ((e.details as { errno?: string } | undefined)?.errno === "ENOENT")
      fail(`--key: no key file at ${path}: make one with muster token keygen, or give --key`, EXIT.USAGE);
    fail(`--key: ${e.rawMessage ?? String(err)}`, EXIT.USAGE);
  }
}

/** The revoked ids of the revocations file, each with its time and reason (none when absent). */
function revocationsOrFail(path: string): Map<string, { at?: string; reason?: string }> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return new Map();
    fail(`--revocations: cannot read ${path}: ${code ?? (err as Error).message}`);
  }
  try {
    return parseRevocationLines(text, path);
  } catch (err) {
    fail((err as MusterError).rawMessage ?? String(err));
  }
}

function runList(flags: ListFlags): void {
  const format = outputFormat(flags);
  const keyPath = flags.key ?? defaultKeyPath();
  const key = keyOrFail(keyPath);
  const path = ledgerPath(keyPath);
  let read: LedgerRead;
  try {
    read = readLedger(path);
  } catch (err) {
    fail(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const revoked = revocationsOrFail(flags.revocations ?? defaultRevocationsPath());
  const now = Date.now();
  const tokens: ListedToken[] = read.records
    .filter((r) => r.key === key.fingerprint)
    .map((r) => {
      const rev = revoked.get(r.id);
      return {
        ...r,
        expired: r.expiresAt !== null && Date.parse(r.expiresAt) <= now,
        revoked: rev !== undefined,
        ...(rev?.at !== undefined ? { revokedAt: new Date(rev.at).toISOString() } : {}),
        ...(rev?.reason !== undefined ? { reason: rev.reason } : {}),
      };
    });
  const shown = flags.all ? tokens : tokens.filter((t) => !t.expired);
  printListing(format, {
    rows: shown,
    columns: TOKEN_COLUMNS,
    empty: `no tokens signed with ${keyPath} (fingerprint ${key.fingerprint}) are recorded in ${path}`,
  });
  const hidden = tokens.length - shown.length;
  if (hidden > 0 && (format === "text" || format === "wide"))
    process.stderr.write(`(${hidden} expired token${hidden === 1 ? "" : "s"} not shown: --all lists them)\n`);
  if (read.skipped > 0)
    process.stderr.write(
      `muster: warning: ${path}: ${read.skipped} line(s) that are not token records skipped\n`,
    );
  if (read.truncatedBytes > 0)
    process.stderr.write(
      `muster: warning: ${path} is over ${formatBytes(MAX_LEDGER_BYTES)}: only its last ${formatBytes(MAX_LEDGER_BYTES)} (the latest tokens) read\n`,
    );
}

/** Adds `muster token list` to the `muster token` command. */
export function registerTokenList(token: Command): void {
  withOutputOption(
    token
      .command("list")
      .description(
        "list the tokens muster token create signed with the key: id, role, subject, labels, expiry, revoked; never the token",
      ),
    true,
  )
    .addOption(
      new Option(
        "--key <file>",
        `the signing key whose tokens to list, from the issued.jsonl beside it (default: ${DEFAULT_KEY_HELP})`,
      ),
    )
    .option("--all", "also list the tokens that have expired", false)
    .option(
      "--revocations <file>",
      "the revocations file that says which are revoked (default: $MUSTER_HOME/revoked.txt, else ~/.muster/revoked.txt)",
    )
    .addHelpText(
      "after",
      `
Every token muster token create signs is recorded (its claims, never the token) in
issued.jsonl in the signing key's directory (mode 0600). Tokens issued otherwise (by a
server to an agent it enrolled, or by a program) are not there. REVOKED says whether the
revocations file lists the token's id; one revoked through a server (--server) is known to the
servers only.

Examples:
  muster token list
  muster token list --all -o wide
  muster token list --key /etc/muster/auth.key -o json`,
    )
    .action((flags: ListFlags) => runList(flags));
}
