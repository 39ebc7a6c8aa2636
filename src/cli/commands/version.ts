import { arch, platform } from "node:os";
import { type Command, Option } from "commander";
import { getBuildInfo } from "../../internal/version.js";
import { PROTOCOL_VERSION } from "../../wire/frame.js";
import { AdminClient, type AdminTlsFlags, adminBase, adminTlsFrom, withAdminTls } from "../admin-client.js";
import { type CredentialFlags, credentialFrom, withCredentialOptions } from "../credentials.js";
import { type OutputFlags, outputFormat, renderData, withOutputOption } from "../output.js";

/*
 * `muster version`: this CLI's version, build, protocol and Node.js; with --admin, the
 * server's too (its admin API's /version, operator role).
 */

/** A build, as `/version` of the admin API answers and as this CLI knows its own. */
interface Build {
  version?: string;
  commit?: string;
  buildTime?: string;
  node?: string;
}

/** This CLI: its build, the protocol version of its frames, its Node.js and platform. */
export interface ClientVersion extends Required<Build> {
  protocol: number;
  platform: string;
}

export function clientVersion(): ClientVersion {
  return { ...getBuildInfo(), protocol: PROTOCOL_VERSION, platform: `${platform()}/${arch()}` };
}

const known = (s: string | undefined): s is string => s !== undefined && s !== "unknown";

/** `0.1.0 (commit e5c6da63e5cd, built 2026-11-21T17:40:02Z)`. */
function buildLine(b: Build): string {
  const parts = [
    ...(known(b.commit)
      ? [`commit ${b.commit.slice(0, 12)}${b.commit.endsWith("-dirty") ? "-dirty" : ""}`]
      : []),
    ...(known(b.buildTime) ? [`built ${b.buildTime}`] : []),
  ];
  return `${b.version ?? "?"}${parts.length > 0 ? ` (${parts.join(", ")})` : ""}`;
}

interface VersionFlags extends OutputFlags, CredentialFlags, AdminTlsFlags {
  admin?: string;
}

/** The server's `/version`, with the URL asked. */
async function serverVersion(flags: VersionFlags, url: string): Promise<Build & { admin: string }> {
  const base = adminBase(url);
  const admin = new AdminClient(base, await credentialFrom(flags), adminTlsFrom(flags, base));
  return { admin: admin.base, ...(await admin.json<Build>("GET", "/version")) };
}

async function runVersion(flags: VersionFlags): Promise<void> {
  const format = outputFormat(flags);
  const client = clientVersion();
  if (format === "json" || format === "yaml") {
    const server = flags.admin === undefined ? undefined : await serverVersion(flags, flags.admin);
    process.stdout.write(renderData(format, { ...client, ...(server !== undefined ? { server } : {}) }));
    return;
  }
  // This CLI's own lines first: they hold whether or not the server answers.
  process.stdout.write(
    `muster    ${buildLine(client)}\nprotocol  ${client.protocol}\nnode      ${client.node} (${client.platform})\n`,
  );
  if (flags.admin === undefined) return;
  const server = await serverVersion(flags, flags.admin);
  process.stdout.write(`server    ${buildLine(server)}, Node ${server.node ?? "?"} at ${server.admin}\n`);
}

export function registerVersion(program: Command): void {
  const cmd = withOutputOption(
    program
      .command("version")
      .description(
        "print the version of this CLI (its build, protocol and Node.js) and, with --admin, of a server",
      ),
    true,
  ).addOption(
    new Option(
      "--admin <url>",
      "also ask this server's admin API for its version (operator role): http(s)://host:port, host:port, or its ws:// URL",
    ),
  );
  withCredentialOptions(withAdminTls(cmd))
    .addHelpText(
      "after",
      `
Without --admin nothing is sent anywhere. -o wide is the same as the default.

Examples:
  muster version
  muster version -o json
  muster version --admin http://127.0.0.1:33075`,
    )
    .action(runVersion);
}
