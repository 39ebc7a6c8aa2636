import { readFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { type Command, Option } from "commander";
import { type AuthKey, defaultKeyPath, loadKeyFile } from "../auth/keys.js";
import { issueToken } from "../auth/tokens.js";
import type { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { EXIT, fail } from "./common.js";

/** Where --key looks when it is not given, for help texts. */
export const DEFAULT_KEY_HELP = "$MUSTER_AUTH_KEY, else $MUSTER_HOME/auth.key, else ~/.muster/auth.key";

/**
 * Adds --token <token> (also $MUSTER_TOKEN), --token-file <file> and --key <file> (a signing key
 * from which a short-lived admin token is minted locally; default defaultKeyPath()).
 */
export function withCredentialOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        "--token <token>",
        "the token to present to the server (prefer $MUSTER_TOKEN or --token-file)",
      ).env("MUSTER_TOKEN"),
    )
    .option("--token-file <file>", "read the token to present from this file")
    .option(
      "--key <file>",
      `without a token: sign a ${DEFAULTS.localAdminTokenTtlMs / 60_000}-minute admin token with this key (default: ${DEFAULT_KEY_HELP}, when readable)`,
    );
}

export interface CredentialFlags {
  token?: string;
  tokenFile?: string;
  key?: string;
}

/** `<user>@<host>`: the subject of a locally minted admin token, and who issued a token. */
export function localSubject(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? process.env.USERNAME ?? "unknown";
  }
  return `${user}@${hostname()}`.slice(0, 256);
}

/** The signing key at --key (a usage error when unusable) or the default path (undefined when absent or verify-only). */
function signingKey(explicit: string | undefined): AuthKey | undefined {
  const path = explicit ?? defaultKeyPath();
  let key: AuthKey;
  try {
    key = loadKeyFile(path);
  } catch (err) {
    const e = err as MusterError;
    if (explicit === undefined && (e.details as { errno?: string } | undefined)?.errno === "ENOENT")
      return undefined;
    fail(`--key: ${e.rawMessage ?? String(err)}`, EXIT.USAGE);
  }
  if (key.canSign) return key;
  if (explicit === undefined) return undefined;
  fail(
    `--key: ${path} is a public key: it verifies tokens but cannot sign one; give the private key`,
    EXIT.USAGE,
  );
}

/**
 * The token to present: --token/$MUSTER_TOKEN, else the trimmed contents of --token-file, else,
 * when a signing key is readable at --key or the default path, a fresh admin token minted
 * locally (subject `<user>@<host>`, 10 minutes), else undefined. --token with --token-file, an
 * empty token, and an unreadable --token-file or explicit --key are usage errors (exit 2).
 */
export async function credentialFrom(flags: CredentialFlags): Promise<string | undefined> {
  if (flags.token !== undefined && flags.tokenFile !== undefined)
    fail("--token (or $MUSTER_TOKEN) and --token-file both give a token: give one", EXIT.USAGE);
  if (flags.token !== undefined) {
    const token = flags.token.trim();
    if (token === "") fail("--token (or $MUSTER_TOKEN) is empty", EXIT.USAGE);
    return token;
  }
  if (flags.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.tokenFile, "utf8");
    } catch (err) {
      fail(
        `--token-file: cannot read ${flags.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        EXIT.USAGE,
      );
    }
    const token = text.trim();
    if (token === "") fail(`--token-file: ${flags.tokenFile} is empty`, EXIT.USAGE);
    return token;
  }
  const key = signingKey(flags.key);
  if (key === undefined) return undefined;
  try {
    return await issueToken(key, {
      role: "admin",
      subject: localSubject(),
      ttlMs: DEFAULTS.localAdminTokenTtlMs,
    });
  } catch (err) {
    fail(`--key: cannot sign an admin token with ${key.source}: ${(err as MusterError).rawMessage ?? err}`);
  }
}
