import { type Command, Option } from "commander";
import { DEFAULTS } from "../../internal/defaults.js";
import type { FlagInfo } from "../../server/flags.js";
import { formatDurationMs } from "../../server/flags.js";
import { EXIT, fail } from "../common.js";
import { type CredentialFlags, credentialFrom, withCredentialOptions } from "../credentials.js";
import { table } from "../format.js";

/** Where the admin commands look when --admin and $MUSTER_ADMIN are not given. */
const DEFAULT_ADMIN_URL = `http://127.0.0.1:${DEFAULTS.wsPort}`;
/** How long an admin request may take before the server counts as unreachable. */
const REQUEST_TIMEOUT_MS = 10_000;

interface AdminFlags extends CredentialFlags {
  admin: string;
  json: boolean;
}

interface Reply {
  status: number;
  text: string;
}

/** The admin API of one server, with the caller's token (if any). */
class AdminClient {
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

/** `--admin` as a base URL: http(s)://, or host:port, or the ws(s):// URL of a server. */
function adminBase(text: string): string {
  const t = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(t) ? t : `http://${t}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    fail(`--admin: "${text}" is not a URL, e.g. http://127.0.0.1:${DEFAULTS.wsPort}`, EXIT.USAGE);
  }
  if (u.protocol === "ws:" || u.protocol === "wss:") u.protocol = u.protocol === "ws:" ? "http:" : "https:";
  if (u.protocol !== "http:" && u.protocol !== "https:")
    fail(`--admin: "${text}" is not an http:// or https:// URL`, EXIT.USAGE);
  if (u.search !== "" || u.hash !== "") fail(`--admin: "${text}" has a query or fragment`, EXIT.USAGE);
  return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
}

async function client(flags: AdminFlags): Promise<AdminClient> {
  const base = adminBase(flags.admin);
  return new AdminClient(base, await credentialFrom(flags));
}

function withAdminOptions(cmd: Command, json = true): Command {
  cmd.addOption(
    new Option("--admin <url>", "the server's admin API: http(s)://host:port, or host:port")
      .env("MUSTER_ADMIN")
      .default(DEFAULT_ADMIN_URL),
  );
  if (json) cmd.option("--json", "machine-readable output: JSON", false);
  return withCredentialOptions(cmd);
}

/**
 * The options of a subcommand merged with its parent's: commander gives an option written
 * before the subcommand's name (or anywhere, when the parent knows it) to the parent.
 */
function mergedOptions<T>(cmd: Command): T {
  const parent = cmd.parent;
  const own = cmd.opts() as Record<string, unknown>;
  if (parent === null) return own as T;
  const out: Record<string, unknown> = { ...own };
  for (const [key, value] of Object.entries(parent.opts() as Record<string, unknown>)) {
    const mine = cmd.getOptionValueSource(key);
    if (mine === undefined || mine === "default") {
      const theirs = parent.getOptionValueSource(key);
      if (theirs !== undefined && theirs !== "default") out[key] = value;
    }
  }
  return out as T;
}

/** A flag's value for people: durations with their unit. */
function flagValue(f: FlagInfo): string {
  if (f.unit === "ms" && typeof f.value === "number") return formatDurationMs(f.value);
  if (typeof f.value === "string") return f.value;
  const v = JSON.stringify(f.value) ?? "undefined";
  return f.unit !== undefined ? `${v} ${f.unit}` : v;
}

function flagsTable(flags: FlagInfo[]): string {
  if (flags.length === 0) return "no runtime flags";
  return table(
    ["FLAG", "VALUE", "SOURCE", "DESCRIPTION"],
    flags.map((f) => [f.name, flagValue(f), f.source, f.description]),
  );
}

interface Version {
  version?: string;
  commit?: string;
  buildTime?: string;
  node?: string;
}

function versionLine(v: Version): string {
  const commit = v.commit !== undefined && v.commit !== "unknown" ? `commit ${v.commit.slice(0, 12)}` : "";
  const built = v.buildTime !== undefined && v.buildTime !== "unknown" ? `built ${v.buildTime}` : "";
  const build = [commit, built].filter((s) => s !== "").join(", ");
  return `${v.version ?? "?"}${build ? ` (${build})` : ""}, Node ${v.node ?? "?"}`;
}

function agentsLine(total: number, counts: Record<string, number>): string {
  const by = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`);
  return total === 0 ? "none" : `${total}: ${by.join(", ")}`;
}

async function status(flags: AdminFlags): Promise<void> {
  const admin = await client(flags);
  const health = await admin.request("GET", "/healthz");
  const ready = await admin.request("GET", "/readyz");
  const [readiness = "", ...rest] = ready.text.split("\n");
  const warning = rest.find((l) => l.startsWith("WARNING:"));
  const isReady = ready.status === 200 && readiness === "ready";
  const out: Record<string, unknown> = {
    admin: admin.base,
    health: health.status === 200 ? health.text.trim() : `${health.status} ${health.text.trim()}`,
    readiness: readiness || `${ready.status}`,
    standalone: warning !== undefined,
  };
  if (warning !== undefined) out.warning = warning;
  if (!flags.json) {
    const lines = [`admin      ${admin.base}`, `health     ${out.health}`, `readiness  ${out.readiness}`];
    if (warning !== undefined) lines.push(warning);
    process.stdout.write(`${lines.join("\n")}\n`);
  }
  const [version, agents, list] = await Promise.all([
    admin.json<Version>("GET", "/version"),
    admin.json<{ total: number; counts?: Record<string, number> }>("GET", "/api/agents?limit=1"),
    admin.json<{ flags: FlagInfo[] }>("GET", "/api/flags"),
  ]);
  const counts = agents.counts ?? {};
  if (flags.json) {
    Object.assign(out, { version, agents: { total: agents.total, counts }, flags: list.flags });
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else {
    process.stdout.write(
      `version    ${versionLine(version)}\nagents     ${agentsLine(agents.total, counts)}\n\n${flagsTable(list.flags)}\n`,
    );
  }
  process.exitCode = isReady ? EXIT.OK : EXIT.FAILED;
}

/** `NAME=VALUE` pairs, each checked (exits 2 for a malformed one or a name given twice). */
function assignments(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const i = arg.indexOf("=");
    const name = i < 0 ? "" : arg.slice(0, i).trim();
    if (!/^[a-z][a-z0-9-]*$/.test(name))
      fail(
        `"${arg}" is not NAME=VALUE with a kebab-case name, e.g. log-level=debug or heartbeat-interval=2s`,
        EXIT.USAGE,
      );
    if (name in out) fail(`flag ${name} is given twice`, EXIT.USAGE);
    out[name] = arg.slice(i + 1);
  }
  return out;
}

export function registerStatusCommands(program: Command): void {
  withAdminOptions(
    program
      .command("status")
      .description(
        "show a server's health, readiness, version, agents by state and runtime flags (its admin API); exit status 0 only when it is ready",
      ),
  ).action(status);

  const flagsCmd = withAdminOptions(
    program
      .command("flags")
      .description("list a server's runtime flags; `muster flags set NAME=VALUE…` changes them"),
  ).action(async (flags: AdminFlags) => {
    const list = await (await client(flags)).json<{ flags: FlagInfo[] }>("GET", "/api/flags");
    process.stdout.write(flags.json ? `${JSON.stringify(list.flags)}\n` : `${flagsTable(list.flags)}\n`);
  });
  withAdminOptions(
    flagsCmd
      .command("set")
      .description(
        "change runtime flags, all or none (admin role), e.g. log-level=debug heartbeat-interval=2s",
      )
      .argument("<assignments...>", "NAME=VALUE, one or more"),
  ).action(async (args: string[], _opts: unknown, cmd: Command) => {
    const flags = mergedOptions<AdminFlags>(cmd);
    const patch = assignments(args);
    const list = await (await client(flags)).json<{ flags: FlagInfo[] }>("PUT", "/api/flags", patch);
    process.stdout.write(flags.json ? `${JSON.stringify(list.flags)}\n` : `${flagsTable(list.flags)}\n`);
  });

  withAdminOptions(
    program
      .command("shutdown")
      .description(
        "ask a server for a graceful drain (admin role): it stops taking work, lets calls finish, then exits",
      ),
    false,
  ).action(async (flags: AdminFlags) => {
    const r = await (await client(flags)).json<{ status: string; drainTimeoutMs: number }>(
      "POST",
      "/api/shutdown",
      undefined,
      202,
    );
    process.stdout.write(
      `${r.status}: calls in flight have up to ${formatDurationMs(r.drainTimeoutMs)} to finish, then the server stops\n`,
    );
  });
}
