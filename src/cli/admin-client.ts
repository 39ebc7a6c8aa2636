import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Command } from "commander";
import { DEFAULTS } from "../internal/defaults.js";
import { EXIT, fail, readFileOrFail } from "./common.js";

/*
 * A client of a server's admin HTTP API, for the commands that use it (`muster status`,
 * `muster flags`, `muster shutdown`, `muster token revoke --server`).
 */

/** Where the admin commands look when --admin and $MUSTER_ADMIN are not given. */
export const DEFAULT_ADMIN_URL = `http://127.0.0.1:${DEFAULTS.wsPort}`;
/** How long an admin request may take before the server counts as unreachable. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface Reply {
  status: number;
  text: string;
}

/** How an https:// admin URL's certificate is checked: the system's CAs unless told otherwise. */
export interface AdminTls {
  /** PEM of the CA (or CAs) to trust instead of the system's. */
  ca?: string;
  /** Do not verify the certificate at all (testing only). */
  insecure?: boolean;
}

/** Node's codes for a certificate that does not verify against the CAs trusted. */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
]);

/** Why a request failed, and for a certificate that does not verify, what to do about it. */
function reason(err: NodeJS.ErrnoException): string {
  const code = err.code ?? "";
  if (UNTRUSTED.has(code))
    return `its certificate does not verify (${code}: ${err.message}): give the CA that signed it with --tls-ca FILE, or --tls-insecure to skip the check (testing only)`;
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID")
    return `its certificate is not valid now (${code}: ${err.message}); --tls-insecure skips the check (testing only)`;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID")
    return `its certificate is not for this host (${err.message}): use a host name the certificate names, or --tls-insecure to skip the check (testing only)`;
  return code || err.message;
}

/**
 * What to do about a connection that failed on the server's certificate (the dialer's error
 * carries Node's message, not its code); undefined for any other failure.
 */
export function certificateHint(message: string): string | undefined {
  if (
    /unable to verify|self[- ]signed|unable to get (local )?issuer|certificate signature failure/i.test(
      message,
    )
  )
    return "give the CA that signed its certificate with --tls-ca FILE, or --tls-insecure to skip the check (testing only)";
  if (/certificate has expired|certificate is not yet valid/i.test(message))
    return "its certificate is not valid now; --tls-insecure skips the check (testing only)";
  if (/does not match certificate's altnames/i.test(message))
    return "use a host name its certificate names, or --tls-insecure to skip the check (testing only)";
  return undefined;
}

/** The admin API of one server, with the caller's token (if any). */
export class AdminClient {
  constructor(
    readonly base: string,
    readonly token: string | undefined,
    readonly tls: AdminTls = {},
  ) {}

  /** One request; exits 3 when the server cannot be reached or does not answer in time. */
  request(method: string, path: string, body?: unknown): Promise<Reply> {
    const url = new URL(`${this.base}${path}`);
    const headers: Record<string, string> = { accept: "application/json, text/plain" };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload !== undefined) headers["content-type"] = "application/json";
    const https = url.protocol === "https:";
    const options = {
      method,
      headers,
      // One connection per request: nothing is left open to hold the process.
      agent: false as const,
      ...(https ? { rejectUnauthorized: this.tls.insecure !== true } : {}),
      ...(https && this.tls.ca !== undefined ? { ca: this.tls.ca } : {}),
    };
    return new Promise((resolve) => {
      const unreachable = (why: string): never =>
        fail(`cannot reach the admin API at ${this.base}: ${why}`, EXIT.UNREACHABLE);
      const onReply = (res: IncomingMessage): void => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", (err) => unreachable(reason(err)));
      };
      const req = https ? httpsRequest(url, options, onReply) : httpRequest(url, options, onReply);
      const timer = setTimeout(() => {
        req.destroy();
        unreachable(`no answer within ${REQUEST_TIMEOUT_MS / 1000}s`);
      }, REQUEST_TIMEOUT_MS);
      req.on("error", (err) => unreachable(reason(err)));
      req.end(payload);
    });
  }

  /** A JSON answer with status `ok`, or exits 1 saying what the server refused and why. */
  async json<T>(method: string, path: string, body?: unknown, ok = 200): Promise<T> {
    const r = await this.request(method, path, body);
    if (r.status !== ok) fail(refusal(method, path, r, this.token !== undefined));
    try {
      return JSON.parse(r.text) as T;
    } catch {
      fail(`${method} ${path}: the answer is not JSON: ${r.text.slice(0, 200)}`);
    }
  }
}

/** `GET /version: 401 unauthenticated: the token has expired`, with a hint for 401 and 403. */
function refusal(method: string, path: string, r: Reply, hadToken: boolean): string {
  let error = "";
  let message = r.text.trim().slice(0, 500);
  try {
    const body = JSON.parse(r.text) as { error?: unknown; message?: unknown };
    if (typeof body.error === "string") error = ` ${body.error}`;
    if (typeof body.message === "string") message = body.message;
  } catch {
    // not JSON: shown as it is
  }
  let hint = "";
  if (r.status === 401)
    hint = hadToken
      ? " (the token was refused: give another with --token, $MUSTER_TOKEN, --token-file or --key)"
      : " (no token given: use --token, $MUSTER_TOKEN, --token-file or --key)";
  else if (r.status === 403) hint = " (the token's role is not enough for this)";
  return `${method} ${path}: ${r.status}${error}: ${message}${hint}`;
}

/** `--admin` (or `flag`) as a base URL: http(s)://, or host:port, or the ws(s):// URL of a server. */
export function adminBase(text: string, flag = "--admin"): string {
  const t = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(t) ? t : `http://${t}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    fail(`${flag}: "${text}" is not a URL, e.g. http://127.0.0.1:${DEFAULTS.wsPort}`, EXIT.USAGE);
  }
  if (u.protocol === "ws:" || u.protocol === "wss:") u.protocol = u.protocol === "ws:" ? "http:" : "https:";
  if (u.protocol !== "http:" && u.protocol !== "https:")
    fail(`${flag}: "${text}" is not an http:// or https:// URL`, EXIT.USAGE);
  if (u.search !== "" || u.hash !== "") fail(`${flag}: "${text}" has a query or fragment`, EXIT.USAGE);
  return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
}

/** Adds --tls-ca and --tls-insecure: how the certificate of an https:// admin URL is checked. */
export function withAdminTls(cmd: Command): Command {
  return cmd
    .option(
      "--tls-ca <file>",
      "PEM file of a CA to trust for an https:// admin URL (instead of the system's CAs)",
    )
    .option("--tls-insecure", "do not verify the certificate of an https:// admin URL (testing only)", false);
}

export interface AdminTlsFlags {
  tlsCa?: string;
  tlsInsecure?: boolean;
}

/**
 * The TLS settings of `--tls-ca` and `--tls-insecure` for the admin API at `base` (exits 2 when
 * they are given for a plain-HTTP URL, or the CA file cannot be read).
 */
export function adminTlsFrom(flags: AdminTlsFlags, base: string, flag = "--admin"): AdminTls {
  const given = flags.tlsCa !== undefined || flags.tlsInsecure === true;
  if (!given) return {};
  if (!base.startsWith("https:"))
    fail(
      `--tls-ca and --tls-insecure are for an https:// admin URL; ${flag} is ${base} (plain HTTP)`,
      EXIT.USAGE,
    );
  return {
    ...(flags.tlsCa !== undefined ? { ca: readFileOrFail(flags.tlsCa, "--tls-ca") } : {}),
    ...(flags.tlsInsecure === true ? { insecure: true } : {}),
  };
}
