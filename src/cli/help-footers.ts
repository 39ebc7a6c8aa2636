import type { Command } from "commander";

/**
 * The environment variables the CLI reads. A command's `--help` lists those it reads: the ones
 * its options take (`(env: …)`) or name in their descriptions (`$MUSTER_HOME`).
 */
export const ENVIRONMENT: Readonly<Record<string, string>> = {
  MUSTER_SERVER: "server URL of the operator commands and of agents (as --server)",
  MUSTER_ADMIN: "admin API URL of status, flags and shutdown (as --admin)",
  MUSTER_TOKEN: "the token to present (as --token; prefer it to --token on a shared machine)",
  MUSTER_HOME:
    "directory of the signing key, the revocations file and the issued-token ledger (default ~/.muster)",
  MUSTER_AUTH_KEY: "the signing key file (default $MUSTER_HOME/auth.key)",
  MUSTER_CONFIG: "a YAML config file of server or agent flags (as --config)",
  MUSTER_TEXT_SECRET: "the secret_code UDP text messages must carry (as --text-secret)",
  FINCH_DSN: "MySQL DSN of muster run (as --dsn, Finch's variable)",
  FINCH_DB: "default database of muster run (as -D, Finch's variable)",
};

/**
 * Examples shown by each command's `--help`, by command path (`token create`). Every flag an
 * example uses is an option of its command (test/cli-help.test.ts checks it).
 */
export const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  server: [
    "muster server                                             # ws://0.0.0.0:33075 and tcp://0.0.0.0:33076, tokens on",
    "muster server --standalone --listen ws://127.0.0.1:33075  # loopback only, no tokens: for trying things",
    "muster server --admin 127.0.0.1:9090                      # the dashboard: http://127.0.0.1:9090/ui/ (and :33075/ui/)",
    "muster server --admin 127.0.0.1:9090 --text tcp://127.0.0.1:3001",
    "muster server --name s1 --cluster nats://127.0.0.1:4222   # one of several servers sharing a fleet",
    "muster server --approve                                   # agents with an enrolment token wait to be accepted",
    "muster server --config /etc/muster/muster.yaml --check-config   # check a config file, then start without the flag",
  ],
  agent: [
    "muster agent --server ws://127.0.0.1:33075 --name web-1 --token-file web-1.token",
    "muster agent --name web-1 --token-file web-1.token --handlers ./methods.js --label zone=eu",
    "muster agent --name edge-1 --enrol-token-file enrol.token --token-file edge-1.token",
    "muster agent --name bench-1 --token-file bench-1.token --runs sql,exec",
    "muster agent --config /etc/muster/agent.yaml --name web-1 --token-file /var/lib/muster/web-1.token",
  ],
  agents: [
    "muster agents",
    "muster agents -o wide",
    "muster agents --watch                              # then one line per change, until Ctrl-C",
    "muster agents --json | jq -r '.[] | select(.state == \"suspect\") | .name'",
    "muster agents accept edge-1 --fingerprint 3f9a0c41d2b7e856",
    "muster agents reject edge-2",
  ],
  servers: ["muster servers", "muster servers --server ws://10.0.0.2:33075 -o yaml"],
  runs: ["muster runs", "muster runs -o wide", "muster runs stop r-3f9a0c41"],
  call: [
    "muster call web-1 sys.info",
    "muster call 'role=web' sys.ping --timeout 3s",
    "muster call 'web-*' deploy '{\"version\":\"1.2.3\"}' --json",
    "muster call all sys.info --server ws://10.0.0.1:33075 --token-file ops.token",
  ],
  stream: [
    "muster stream web-1 tail '{\"from\":100}' --json",
    "muster stream web-1 tail --json | head -3        # a closed pipe cancels the stream on the agent",
  ],
  run: [
    'muster run setup.yaml read-only.yaml -p rows=10k --dsn "root@tcp(127.0.0.1:3306)/bench"',
    "muster run --server ws://127.0.0.1:33075 --select role=bench --instances 4 read-only.yaml",
    "muster run stage.yaml --report stdout --report csv=stats.csv",
  ],
  bench: ["muster bench --quick", "muster bench --scenarios rtt,pipe --transports tcp --sizes 64"],
  status: ["muster status", "muster status --admin https://10.0.0.5:9090 --tls-ca ca.pem --json"],
  flags: ["muster flags", "muster flags --admin http://127.0.0.1:9090 -o json"],
  "flags set": [
    "muster flags set log-level=debug",
    "muster flags set heartbeat-interval=2s resume-window=2m --admin http://127.0.0.1:9090",
  ],
  shutdown: ["muster shutdown", "muster shutdown --admin http://127.0.0.1:9090"],
};

/** The variables `cmd` reads, by its options. */
function variablesOf(cmd: Command): string[] {
  const found = new Set<string>();
  for (const o of cmd.options) {
    const env = (o as { envVar?: string }).envVar;
    if (env !== undefined) found.add(env);
    for (const m of o.description.matchAll(/\$([A-Z][A-Z0-9_]+)/g)) found.add(m[1]!);
  }
  return Object.keys(ENVIRONMENT).filter((v) => found.has(v));
}

function pathOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * Appends `Examples:` (from EXAMPLES) and `Environment:` (the variables the command reads) to
 * the help of `cmd` and every subcommand; the program itself lists every variable.
 */
export function addHelpFooters(cmd: Command): void {
  const isProgram = cmd.parent === null;
  const examples = EXAMPLES[pathOf(cmd)];
  const vars = isProgram ? Object.keys(ENVIRONMENT) : variablesOf(cmd);
  let text = "";
  if (examples !== undefined) text += `\nExamples:\n${examples.map((e) => `  ${e}`).join("\n")}\n`;
  if (vars.length > 0) {
    const width = Math.max(...vars.map((v) => v.length));
    text += `\nEnvironment:\n${vars.map((v) => `  ${v.padEnd(width)}  ${ENVIRONMENT[v]}`).join("\n")}\n`;
  }
  if (text !== "") cmd.addHelpText("after", text.trimEnd());
  for (const sub of cmd.commands) addHelpFooters(sub);
}
