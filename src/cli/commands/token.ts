import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  type AuthKey,
  defaultKeyPath,
  generateKeyFile,
  type KeyAlgorithm,
  loadKeyFile,
} from "../../auth/keys.js";
import { appendRevocation, defaultRevocationsPath } from "../../auth/revocations.js";
import {
  checkTokenId,
  decodeTokenUnverified,
  issueToken,
  TOKEN_ROLES,
  type TokenClaims,
  type TokenRole,
  verifyToken,
} from "../../auth/tokens.js";
import type { MusterError } from "../../errors/muster-error.js";
import { DEFAULTS } from "../../internal/defaults.js";
import { AdminClient, type AdminTlsFlags, adminBase, adminTlsFrom, withAdminTls } from "../admin-client.js";
import { EXIT, fail } from "../common.js";
import {
  type CredentialFlags,
  credentialFrom,
  DEFAULT_KEY_HELP,
  withCredentialOptions,
} from "../credentials.js";
import { collectList, parseLabel } from "../parse.js";
import { noteIssued, registerTokenList } from "./token-list.js";

/*
 * `muster token`: signing keys (keygen), tokens (create), and what a token says (inspect), and
 * revocation (revoke); the tokens issued (list, in token-list.ts). No secret is ever printed,
 * except the token `create` makes.
 */

const ALGORITHMS: Record<string, KeyAlgorithm> = { ed25519: "EdDSA", hmac: "HS256" };

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MAX_TTL_DAYS = 3650;

/** `--ttl`: `never` (no expiry) or a duration with a unit, above 0 and at most 3650 days. */
export function parseTtl(text: string): number | "never" {
  const t = text.trim();
  if (t === "never") return "never";
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(t);
  if (!m)
    throw new InvalidArgumentError(`"${text}" is not a lifetime: use never or a duration, e.g. 12h, 30d`);
  const ms = Math.round(Number(m[1]) * UNITS[m[2]!]!);
  if (ms <= 0) throw new InvalidArgumentError("--ttl must be above 0 (or never)");
  if (ms > MAX_TTL_DAYS * UNITS.d!)
    throw new InvalidArgumentError(
      `--ttl ${text} is over ${MAX_TTL_DAYS} days: use --ttl never for no expiry`,
    );
  return ms;
}

const message = (err: unknown): string => (err as MusterError).rawMessage ?? String(err);
const errnoOf = (err: unknown): string | undefined =>
  ((err as MusterError).details as { errno?: string } | undefined)?.errno;

const describeKey = (key: AuthKey): string =>
  `${key.source} (${key.algorithm === "EdDSA" ? "ed25519" : "hmac"}, fingerprint ${key.fingerprint})`;

/** Claims as the CLI prints them: no expiry is `null` rather than a missing key. */
function printable(claims: TokenClaims): Record<string, unknown> {
  return { ...claims, expiresAt: claims.expiresAt ?? null };
}

const when = (ms: number | undefined): string =>
  ms === undefined ? "never expires" : `expires ${new Date(ms).toISOString()}`;

/** A token or id argument; `-` reads it from standard input. */
function argument(text: string): string {
  if (text !== "-") return text.trim();
  try {
    return readFileSync(0, "utf8").trim();
  } catch (err) {
    fail(`cannot read standard input: ${(err as NodeJS.ErrnoException).code ?? message(err)}`, EXIT.USAGE);
  }
}

function claimsOrFail(token: string): TokenClaims {
  try {
    return decodeTokenUnverified(token);
  } catch (err) {
    fail(message(err), EXIT.USAGE);
  }
}

function keyOrFail(path: string): AuthKey {
  try {
    return loadKeyFile(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT")
      fail(`--key: no key file at ${path}: make one with muster token keygen, or give --key`, EXIT.USAGE);
    fail(`--key: ${message(err)}`, EXIT.USAGE);
  }
}

const keyOption = (what: string): Option =>
  new Option("--key <file>", `${what} (default: ${DEFAULT_KEY_HELP})`);

interface KeygenFlags {
  key?: string;
  alg: string;
  force: boolean;
}

function runKeygen(flags: KeygenFlags): void {
  const path = flags.key ?? defaultKeyPath();
  let key: AuthKey;
  try {
    key = generateKeyFile(path, ALGORITHMS[flags.alg], { force: flags.force });
  } catch (err) {
    if (errnoOf(err) === "EEXIST")
      fail(
        `${path} already exists: not overwritten. --force replaces it, and every token signed with the old key stops verifying`,
      );
    fail(message(err));
  }
  process.stdout.write(`wrote ${flags.alg} key ${path}\nfingerprint ${key.fingerprint}\n`);
  if (key.algorithm === "EdDSA")
    process.stdout.write(`public key ${path}.pub (for servers that only verify tokens)\n`);
}

interface CreateFlags {
  name: string;
  role: TokenRole;
  label?: Record<string, string>;
  methods?: string[];
  ttl?: number | "never";
  key?: string;
  json: boolean;
  out?: string;
  force: boolean;
}

/**
 * Writes a token to `file`, readable by its owner only (0600), never replacing a file unless
 * `force`: the file is created for the token, not found and reused.
 */
function writeTokenFile(file: string, text: string, force: boolean): void {
  try {
    if (force) rmSync(file, { force: true });
    writeFileSync(file, text, { mode: 0o600, flag: "wx" });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(
      code === "EEXIST"
        ? `--out: ${file} exists: give another file, or --force to replace it`
        : `--out: cannot write ${file}: ${(err as Error).message}`,
      code === "EEXIST" ? EXIT.USAGE : EXIT.FAILED,
    );
  }
}

async function runCreate(flags: CreateFlags): Promise<void> {
  const keyPath = flags.key ?? defaultKeyPath();
  const key = keyOrFail(keyPath);
  if (!key.canSign)
    fail(
      `--key: ${key.source} is a public key: it verifies tokens but cannot sign one; give the private key`,
      EXIT.USAGE,
    );
  const ttl =
    flags.ttl ??
    (flags.role === "agent" || flags.role === "enrol"
      ? DEFAULTS.agentTokenTtlMs
      : DEFAULTS.operatorTokenTtlMs);
  let token: string;
  try {
    token = await issueToken(key, {
      role: flags.role,
      subject: flags.name,
      labels: flags.label ?? {},
      ...(flags.methods !== undefined ? { methods: flags.methods } : {}),
      ...(ttl !== "never" ? { ttlMs: ttl } : {}),
    });
  } catch (err) {
    fail(message(err), EXIT.USAGE);
  }
  const claims = decodeTokenUnverified(token);
  const text = flags.json ? `${JSON.stringify({ token, claims: printable(claims) })}\n` : `${token}\n`;
  if (flags.out === undefined) process.stdout.write(text);
  else {
    writeTokenFile(flags.out, text, flags.force);
    process.stderr.write(`token written to ${flags.out} (mode 0600), id ${claims.id}\n`);
  }
  // What was issued, for muster token list: once it is delivered.
  noteIssued(keyPath, key, claims);
}

async function runInspect(text: string, flags: { key?: string }): Promise<void> {
  const token = argument(text);
  const claims = claimsOrFail(token);
  process.stdout.write(`${JSON.stringify(printable(claims), null, 2)}\n`);
  let key: AuthKey | undefined;
  if (flags.key !== undefined) key = keyOrFail(flags.key);
  else {
    try {
      key = loadKeyFile(defaultKeyPath());
    } catch (err) {
      if (errnoOf(err) !== "ENOENT") fail(`default key: ${message(err)}`, EXIT.USAGE);
    }
  }
  if (key === undefined) {
    process.stderr.write(
      `not verified: no key (give --key, or make the default key with muster token keygen); ${when(claims.expiresAt)}\n`,
    );
    return;
  }
  try {
    await verifyToken(key, token);
  } catch (err) {
    fail(`does not verify with ${describeKey(key)}: ${message(err)}`);
  }
  process.stderr.write(`verified with ${describeKey(key)}; ${when(claims.expiresAt)}\n`);
}

interface RevokeFlags extends CredentialFlags, AdminTlsFlags {
  revocations?: string;
  reason?: string;
  server?: string;
}

async function runRevoke(text: string, flags: RevokeFlags): Promise<void> {
  if (flags.server !== undefined && flags.revocations !== undefined)
    fail("--revocations is the file mode, --server the server's: give one", EXIT.USAGE);
  // $MUSTER_TOKEN alone is not a mistake: it is there for every command.
  if (flags.server === undefined && (flags.tokenFile !== undefined || flags.key !== undefined))
    fail("--token-file and --key go with --server (the revocations file needs no credential)", EXIT.USAGE);
  if (flags.server === undefined && (flags.tlsCa !== undefined || flags.tlsInsecure === true))
    fail("--tls-ca and --tls-insecure go with --server", EXIT.USAGE);
  const arg = argument(text);
  let id: string;
  let what: string;
  if (arg.includes(".")) {
    const claims = claimsOrFail(arg);
    id = claims.id;
    what = `token ${id} (${claims.role} ${claims.subject}, ${when(claims.expiresAt)})`;
  } else {
    const bad = checkTokenId(arg);
    if (bad !== undefined) fail(`not a token or a token id: ${bad}`, EXIT.USAGE);
    id = arg;
    what = `token ${id}`;
  }
  if (flags.server !== undefined) return revokeThrough(flags.server, id, what, flags);
  const path = flags.revocations ?? defaultRevocationsPath();
  let added: boolean;
  try {
    added = appendRevocation(path, id, flags.reason);
  } catch (err) {
    fail(message(err));
  }
  process.stdout.write(added ? `revoked ${what} in ${path}\n` : `${what} was already revoked in ${path}\n`);
}

/** What `POST /api/revocations` answers. */
interface Revoked {
  id: string;
  fresh: boolean;
  reach: "server" | "cluster" | "queued";
  warning?: string;
}

/**
 * Revokes through a server's admin API: in force there at once and, in a cluster, on every
 * server. Only the id is sent, never the token.
 */
async function revokeThrough(server: string, id: string, what: string, flags: RevokeFlags): Promise<void> {
  const base = adminBase(server, "--server");
  const admin = new AdminClient(base, await credentialFrom(flags), adminTlsFrom(flags, base, "--server"));
  const r = await admin.json<Revoked>("POST", "/api/revocations", {
    id,
    ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
  });
  const where =
    r.reach === "cluster"
      ? "every server of its cluster"
      : r.reach === "queued"
        ? "that server; its cluster backplane is unreachable: the other servers apply it when it is back"
        : "that server";
  process.stdout.write(
    r.fresh
      ? `revoked ${what} through ${admin.base}: in force on ${where}\n`
      : `${what} was already revoked on ${admin.base}; in force on ${where}\n`,
  );
  if (r.warning !== undefined) process.stderr.write(`muster: warning: ${r.warning}\n`);
}

export function registerToken(program: Command): void {
  const token = program
    .command("token")
    .description("make signing keys and tokens; list, inspect and revoke tokens")
    .addHelpText(
      "after",
      `
Tokens are JWTs signed with the server's key (Ed25519, or an HMAC secret). They say who
connects (--role agent, operator, admin, or enrol for agents that ask to join) and, for
agents, the exact name and labels they must present.

Examples:
  muster token keygen
  muster token create --name web-1 --role agent --label role=web
  muster token create --name ops@example --role operator --methods 'sys.*' --ttl 8h
  muster token list
  muster token inspect "$MUSTER_TOKEN"
  muster token revoke "$OLD_TOKEN" --reason "laptop lost"`,
    );

  token
    .command("keygen")
    .description("write a new signing key (and its public half for ed25519)")
    .addOption(keyOption("where to write the key"))
    .addOption(
      new Option(
        "--alg <alg>",
        "ed25519 (servers may verify with the public key alone) or hmac (a shared secret)",
      )
        .choices(Object.keys(ALGORITHMS))
        .default("ed25519"),
    )
    .option("--force", "replace an existing key: every token signed with it stops verifying", false)
    .addHelpText(
      "after",
      `
The key file is written with mode 0600 (its directory, when made, 0700); for ed25519 the
public key goes to FILE.pub (mode 0644). It prints the path and the key's fingerprint, never
the key. An existing key is not replaced without --force (exit status 1).

Examples:
  muster token keygen
  muster token keygen --key /etc/muster/auth.key --alg hmac`,
    )
    .action((flags: KeygenFlags) => runKeygen(flags));

  token
    .command("create")
    .description("sign a token and print it on standard output")
    .requiredOption(
      "--name <name>",
      "the subject: an agent's exact name (agent), who it is for (operator, admin), or a glob of agent names with * and ? (enrol)",
    )
    .addOption(
      new Option("--role <role>", "agent, operator, admin, or enrol (an agent asking to join)")
        .choices([...TOKEN_ROLES])
        .makeOptionMandatory(),
    )
    .option(
      "--label <key=value>",
      "agent and enrol: a label the agent must present, repeatable (exactly these)",
      parseLabel,
    )
    .option(
      "--methods <globs>",
      "grants, comma-separated or repeated globs: the server methods an agent may call, or the agent methods an operator may call (default: the role's own)",
      collectList,
    )
    .addOption(
      new Option(
        "--ttl <duration>",
        "lifetime, e.g. 12h or 30d, or never (default: 30d for agent and enrol, 12h for operator and admin)",
      ).argParser(parseTtl),
    )
    .addOption(keyOption("the signing key"))
    .option("--json", 'print {"token":…,"claims":…} instead of the token alone', false)
    .option(
      "--out <file>",
      "write the token to this file, created with mode 0600, instead of standard output",
    )
    .option("--force", "with --out: replace the file if it exists", false)
    .addHelpText(
      "after",
      `
The token is printed alone on standard output, or written to --out FILE (mode 0600, never
replacing a file without --force): keep it where only its user can read it (or $MUSTER_TOKEN). Anyone holding it is who it names until it expires or is
revoked.
What was issued (the claims, never the token) is added to issued.jsonl beside the key, which
muster token list reads.

Examples:
  muster token create --name web-1 --role agent --label role=web --label zone=eu --out web-1.token
  muster token create --name 'edge-*' --role enrol --ttl 7d
  muster token create --name alice --role operator --methods 'sys.*,deploy.*' --ttl 8h
  muster token create --name ci --role admin --ttl never --json`,
    )
    .action((flags: CreateFlags) => runCreate(flags));

  token
    .command("inspect")
    .description("print a token's claims as JSON, and whether it verifies with the key")
    .argument("<token>", "the token, or - to read it from standard input")
    .addOption(keyOption("verify with this key"))
    .addHelpText(
      "after",
      `
The claims go to standard output. With a key (--key, or the default key when it exists) it
says on standard error whether the token verifies and, if not, why (exit status 1); without
one it says "not verified".

Examples:
  muster token inspect - < web-1.token
  muster token inspect "$MUSTER_TOKEN" --key /etc/muster/auth.key.pub`,
    )
    .action((text: string, flags: { key?: string }) => runInspect(text, flags));

  registerTokenList(token);

  const revoke = withCredentialOptions(
    token
      .command("revoke")
      .description(
        "revoke a token: through a server's admin API (--server; every server of its cluster), or in the revocations file",
      )
      .argument(
        "<token-or-id>",
        "a whole token (its id is read from it) or a token id; - reads standard input",
      )
      .option(
        "--server <url>",
        "revoke through this server's admin API (admin role): http(s)://host:port, host:port, or its ws:// URL; in a cluster, every server applies it",
      )
      .option(
        "--revocations <file>",
        "without --server: the revocations file servers watch (default: $MUSTER_HOME/revoked.txt, else ~/.muster/revoked.txt)",
      )
      .option("--reason <text>", "why, written with the id"),
  )
    .addHelpText(
      "after",
      `
With --server the id (never the token) is sent to that server's admin API, with the
credential of --token, $MUSTER_TOKEN, --token-file or --key: the sessions using the token end
at once, and in a cluster every server refuses it from then on, those started later too.

Without --server it appends one line per id to the revocations file: ID ISO-TIME REASON.
Servers that watch the same file end the sessions using a revoked token within about a
second, and refuse it from then on. Revoking an id already revoked changes nothing (exit
status 0).

Examples:
  muster token revoke "$OLD_TOKEN" --server http://10.0.0.5:9090 --reason "laptop lost"
  muster token revoke "$OLD_TOKEN" --reason "laptop lost"
  muster token revoke Qm9vYmFyYmF6cXV4MTIz --revocations /etc/muster/revoked.txt`,
    )
    .action((text: string, flags: RevokeFlags) => runRevoke(text, flags));
  withAdminTls(revoke);
}
