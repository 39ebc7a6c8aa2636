// `npm run soak [-- options]`: see USAGE. Exit status 0 when every check passed, 1 when one
// failed (the seed to replay it is printed), 2 on a usage error.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { findNatsServer } from "../../test/support/nats-server.js";
import { randomSeed } from "../chaos/prng.js";
import { parseDurationText } from "../chaos/units.js";
import { runClusterSoak } from "./cluster-run.js";
import {
  formatReport,
  runSoak,
  SOAK_DEFAULTS,
  SOAK_TRANSPORTS,
  type SoakOptions,
  type SoakTransport,
} from "./run.js";

const USAGE = `usage: npm run soak -- [--duration 60s] [--agents 500] [--processes 4] [--seed N]
                       [--servers 1] [--cut-every 2s] [--reset-every 3s] [--blackhole-every 5s]
                       [--blackhole-for 4s] [--transport tcp|ws|grpc|http] [--json FILE]

A server, agent processes holding --agents agents between them, calls both ways, fan-outs and
streams, through a proxy injecting random faults (seeded) for --duration. Then the faults stop,
every call settles, and the run checks: each call settled once with the right result, every
message received once and in order, no session expired, server memory bounded, and reports
the server's event-loop lag. --transport is what the agents' links run over (the proxy cuts
the TCP connection under any of them).

--servers N (3 or more) runs a cluster over a nats-server it starts (nats-server must be
installed), each server behind its own proxy: the first fans out to the whole cluster; a third
of the way through, the second is killed (SIGKILL) and started again; two thirds of the way,
the third drains, handing its sessions over, and is started again. Then only the agents of the
killed server may lose their sessions and calls; nothing may be settled twice or taken twice.`;

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

let values: ReturnType<typeof parse>["values"];
function parse() {
  return parseArgs({
    options: {
      duration: { type: "string" },
      agents: { type: "string" },
      processes: { type: "string" },
      seed: { type: "string" },
      servers: { type: "string" },
      "cut-every": { type: "string" },
      "reset-every": { type: "string" },
      "blackhole-every": { type: "string" },
      "blackhole-for": { type: "string" },
      transport: { type: "string" },
      json: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
}
try {
  ({ values } = parse());
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const duration = (
  flag: string,
  text: string | undefined,
  fallback: number | undefined,
): number | undefined => {
  if (text === undefined) return fallback;
  try {
    return parseDurationText(text);
  } catch (err) {
    return fail(`--${flag}: ${(err as Error).message}`);
  }
};
const count = (flag: string, text: string | undefined, fallback: number, min: number): number => {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) fail(`--${flag} must be an integer ≥ ${min}, got "${text}"`);
  return n;
};

const d = SOAK_DEFAULTS;
const seed = values.seed === undefined ? randomSeed() : count("seed", values.seed, 0, 0);
if (seed > 0xffff_ffff) fail(`--seed must be at most 4294967295, got ${seed}`);
const agents = count("agents", values.agents, d.agents, 1);
const processes = Math.min(agents, count("processes", values.processes, d.processes, 1));
const servers = count("servers", values.servers, 1, 1);
if (servers === 2)
  fail("--servers: a cluster soak needs 3 servers or more (one fans out, one is killed, one drained)");
if (servers > 1 && findNatsServer() === undefined)
  fail("--servers: nats-server is not installed (Debian package nats-server): it carries the cluster");
const transport = (values.transport ?? "tcp") as SoakTransport;
if (!SOAK_TRANSPORTS.includes(transport))
  fail(`--transport must be one of ${SOAK_TRANSPORTS.join(", ")}, got "${values.transport}"`);
if (servers > 1 && transport !== "tcp") fail("--transport: a cluster soak runs over tcp only");
const run = servers > 1 ? (o: SoakOptions) => runClusterSoak({ ...o, servers }) : runSoak;
const report = await run({
  ...d,
  transport,
  durationMs: duration("duration", values.duration, d.durationMs)!,
  agents,
  processes,
  seed,
  faults: {
    cutEveryMs: duration("cut-every", values["cut-every"], d.faults.cutEveryMs),
    resetEveryMs: duration("reset-every", values["reset-every"], d.faults.resetEveryMs),
    blackholeEveryMs: duration("blackhole-every", values["blackhole-every"], d.faults.blackholeEveryMs),
    blackholeForMs: duration("blackhole-for", values["blackhole-for"], d.faults.blackholeForMs),
  },
  log: (line) => process.stdout.write(`${line}\n`),
});
for (const line of formatReport(report)) process.stdout.write(`${line}\n`);
if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
process.exit(report.ok ? 0 : 1);
