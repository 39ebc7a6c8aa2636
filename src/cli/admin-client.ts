import { DEFAULTS } from "../internal/defaults.js";
import { EXIT, fail } from "./common.js";

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

/** The admin API of one server, with the caller's token (if any). */
export class AdminClient {
  constructor(
    readonly base: string,
    readonly token: string | undefined,
  ) {}

  /** One request; exits 3 when the server cannot be reached or does not answer in time. */
  async request(method: string, path: string, body?: unknown): Promise<Reply> {
    const headers: Record<string, string> = { accept: "application/json, text/plain" };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      const res = await fetch(`${this.base}${path}`, init);
      return { status: res.status, text: await res.text() };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why =
        e.name === "TimeoutError"
          ? `no answer within ${REQUEST_TIMEOUT_MS / 1000}s`
          : (e.cause?.code ?? e.cause?.message ?? e.message);
      fail(`cannot reach the admin API at ${this.base}: ${why}`, EXIT.UNREACHABLE);
    }
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
