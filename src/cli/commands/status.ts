import { type Command, Option } from "commander";
import type { FlagInfo } from "../../server/flags.js";
import { formatDurationMs } from "../../server/flags.js";
import {
  AdminClient,
  type AdminTlsFlags,
  adminBase,
  adminTlsFrom,
  DEFAULT_ADMIN_URL,
  withAdminTls,
} from "../admin-client.js";
import { EXIT, fail } from "../common.js";
import { type CredentialFlags, credentialFrom, withCredentialOptions } from "../credentials.js";
import {
  type Column,
  type OutputFlags,
  outputFormat,
  printListing,
  renderTable,
  withOutputOption,
} from "../output.js";

interface AdminFlags extends CredentialFlags, AdminTlsFlags {
  admin: string;
  json: boolean;
}

async function client(flags: AdminFlags): Promise<AdminClient> {
  const base = adminBase(flags.admin);
  const tls = adminTlsFrom(flags, base);
  return new AdminClient(base, await credentialFrom(flags), tls);
}

function withAdminOptions(cmd: Command, json = true): Command {
  cmd.addOption(
    new Option("--admin <url>", "the server's admin API: http(s)://host:port, or host:port")
      .env("MUSTER_ADMIN")
      .default(DEFAULT_ADMIN_URL),
  );
  if (json) cmd.option("--json", "machine-readable output: JSON", false);
  return withCredentialOptions(withAdminTls(cmd));
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

/** Where a flag's value came from, with who set it and, for the cluster's, on which server. */
function flagSource(f: FlagInfo): string {
  return `${f.source}${f.by !== undefined ? ` by ${f.by}` : ""}${f.server !== undefined ? ` on ${f.server}` : ""}`;
}

const FLAG_COLUMNS: Column<FlagInfo>[] = [
  { header: "FLAG", cell: (f) => f.name },
  { header: "VALUE", cell: flagValue },
  // A server older than scopes lists none: its flags are its own.
  { header: "SCOPE", cell: (f) => f.scope ?? "server" },
  { header: "SOURCE", cell: flagSource },
  { header: "DESCRIPTION", cell: (f) => f.description },
];

function flagsTable(flags: FlagInfo[]): string {
  if (flags.length === 0) return "no runtime flags";
  return renderTable(flags, FLAG_COLUMNS, "text").text;
}

/** `muster flags` and `muster flags set`: the list as -o (or --json) asks. */
function printFlags(flags: AdminFlags & OutputFlags, list: FlagInfo[]): void {
  printListing(outputFormat(flags), { rows: list, columns: FLAG_COLUMNS, empty: "no runtime flags" });
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
    withOutputOption(
      program
        .command("flags")
        .description("list a server's runtime flags; `muster flags set NAME=VALUE…` changes them"),
    ),
  ).action(async (flags: AdminFlags & OutputFlags) => {
    outputFormat(flags);
    const list = await (await client(flags)).json<{ flags: FlagInfo[] }>("GET", "/api/flags");
    printFlags(flags, list.flags);
  });
  withAdminOptions(
    withOutputOption(flagsCmd.command("set"))
      .description(
        "change runtime flags, all or none (admin role), e.g. log-level=debug heartbeat-interval=2s",
      )
      .argument("<assignments...>", "NAME=VALUE, one or more"),
  ).action(async (args: string[], _opts: unknown, cmd: Command) => {
    const flags = mergedOptions<AdminFlags & OutputFlags>(cmd);
    const patch = assignments(args);
    outputFormat(flags);
    const list = await (await client(flags)).json<{ flags: FlagInfo[] }>("PUT", "/api/flags", patch);
    printFlags(flags, list.flags);
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
