// Many agents in one process, for end-to-end tests of fleets too large for one CLI process per
// agent. Each agent is made with the library exactly as `muster agent` makes one (builtins,
// default reconnect backoff), dials the given servers, and answers a few test methods.
//
//   node agent-swarm.js --prefix c- --count 100 [--first 0] --server ws://… [--server …]
//                       [--label k=v]… [--server-order shuffle|ordered] [--key FILE]
//
// With --key, each agent presents a token of its own, issued with that signing key.
//
// Agents are named <prefix><index, three digits>. Standard output, one line each:
//   ready N                       every agent has connected once
//   connected NAME URL            a later new session (after `ready`), and where
//   expired NAME                  a session could not be resumed: the agent started a new one
//   replaced NAME                 another session took the name: this agent stopped
//   slow NAME                     test.slow started on NAME
//   retry NAME URL DELAY_MS ERROR  an attempt is due at URL after DELAY_MS (after `ready`)
// SIGTERM closes every agent, then the process exits 0.
//
// Methods: test.echo (returns {from, req}), test.slow ({ms}: resolves after ms, or when
// cancelled), test.rotations (how many LOG_ROTATE text messages reached the agent).
import { parseArgs } from "node:util";
import { createAgent, type MusterAgent } from "../../src/agent/create-agent.js";
import type { ServerOrder } from "../../src/agent/server-list.js";
import { loadKeyFile } from "../../src/auth/keys.js";
import { issueToken } from "../../src/auth/tokens.js";

const { values } = parseArgs({
  options: {
    prefix: { type: "string", default: "agent-" },
    count: { type: "string", default: "1" },
    first: { type: "string", default: "0" },
    server: { type: "string", multiple: true, default: [] },
    label: { type: "string", multiple: true, default: [] },
    "server-order": { type: "string", default: "shuffle" },
    key: { type: "string" },
  },
});
const count = Number(values.count);
const first = Number(values.first);
const servers = values.server ?? [];
if (!(count > 0) || servers.length === 0) {
  process.stderr.write("agent-swarm: give --count N and at least one --server URL\n");
  process.exit(2);
}
const labels = Object.fromEntries((values.label ?? []).map((l) => l.split("=", 2) as [string, string]));

const signing = values.key === undefined ? undefined : loadKeyFile(values.key);

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
let ready = false;
const agents: MusterAgent[] = [];
for (let i = first; i < first + count; i++) {
  const name = `${values.prefix}${String(i).padStart(3, "0")}`;
  let rotations = 0;
  const agent = createAgent({
    name,
    labels,
    ...(signing !== undefined
      ? { token: await issueToken(signing, { role: "agent", subject: name, labels }) }
      : {}),
    servers,
    serverOrder: values["server-order"] as ServerOrder,
    textHooks: {
      logRotate: () => {
        rotations++;
      },
    },
  });
  agent.handle("test.echo", (req: unknown) => ({ from: name, req }));
  agent.handle("test.rotations", () => rotations);
  agent.handle("test.slow", async (req: { ms: number }, ctx) => {
    say(`slow ${name}`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, req.ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });
    return "done";
  });
  agent.onEvent((e) => {
    if (e.type === "connected" && ready) say(`connected ${name} ${e.url}`);
    else if (e.type === "expired") say(`expired ${name}`);
    else if (e.type === "replaced") say(`replaced ${name}`);
    else if (e.type === "retry" && ready) say(`retry ${name} ${e.url} ${e.delayMs} ${e.error}`);
  });
  agents.push(agent);
  agent.start();
}

await Promise.all(agents.map((a) => a.connected()));
ready = true;
say(`ready ${agents.length}`);

process.on("SIGTERM", () => {
  void Promise.all(agents.map((a) => a.close())).then(() => process.exit(0));
});
