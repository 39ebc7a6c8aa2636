// `npm run bench [-- options]`: muster and its peers, in one run, on the same machine, with the
// same payloads; writes bench/RESULTS.md. `--quick` runs tiny counts (a smoke check that every
// scenario completes and every reply verifies); it writes no file unless `--out` is given.

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { runCallScenarios } from "../src/bench/call-scenarios.js";
import { runFanout1k, runFleetScenarios } from "../src/bench/fanout-scenarios.js";
import { checkTargets, renderResults } from "../src/bench/report.js";
import {
  type ResultRow,
  SCENARIOS,
  type ScenarioName,
  SIZES,
  type SystemRef,
} from "../src/bench/scenarios.js";
import { runStorm } from "../src/bench/storm.js";
import { renderCluster, runClusterBench } from "./cluster.js";
import { renderMicro, runMicro } from "./micro.js";
import { renderRuns, runRunsBench } from "./runs.js";

const here = (path: string): string => new URL(path, import.meta.url).href;
const SYSTEMS: SystemRef[] = [
  { name: "muster/tcp", module: here("../src/bench/muster-system.js") },
  { name: "muster/ws", module: here("../src/bench/muster-system.js") },
  { name: "muster/grpc", module: here("../src/bench/muster-system.js") },
  { name: "muster/http", module: here("../src/bench/muster-system.js") },
  { name: "raw-tcp", module: here("./systems/raw-tcp.js") },
  { name: "raw-ws", module: here("./systems/raw-ws.js") },
  { name: "socket.io", module: here("./systems/socketio.js") },
  { name: "grpc", module: here("./systems/grpc.js") },
];

const ALL_SCENARIOS = [...SCENARIOS, "micro", "cluster", "runs"] as const;
const USAGE = `usage: npm run bench -- [--quick] [--scenarios ${ALL_SCENARIOS.join(",")}]
                        [--systems ${SYSTEMS.map((s) => s.name).join(",")}]
                        [--sizes 64,4096] [--out FILE] [--json FILE]
                        [--fanout-100k-agents N]   (fewer agents in fanout-100k, for a lower ulimit -n)`;

function list<T extends string>(value: string | undefined, all: readonly T[], what: string): T[] {
  if (value === undefined) return [...all];
  const items = value.split(",").map((s) => s.trim());
  for (const item of items) {
    if (!all.includes(item as T)) {
      console.error(`unknown ${what} "${item}"; expected one of: ${all.join(", ")}\n${USAGE}`);
      process.exit(2);
    }
  }
  return items as T[];
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      scenarios: { type: "string" },
      systems: { type: "string" },
      sizes: { type: "string" },
      out: { type: "string" },
      json: { type: "string" },
      "fanout-100k-agents": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
}
try {
  args = parse();
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (args.values.help) {
  console.log(USAGE);
  process.exit(0);
}
const quick = args.values.quick!;
const wanted = list(args.values.scenarios, ALL_SCENARIOS, "scenario");
const scenarios = wanted.filter((s): s is ScenarioName => s !== "micro" && s !== "cluster" && s !== "runs");
const systemNames = list(
  args.values.systems,
  SYSTEMS.map((s) => s.name),
  "system",
);
const sizes = list(args.values.sizes, SIZES.map(String), "size").map(Number);
const out = args.values.out ?? (quick ? undefined : "bench/RESULTS.md");

const bigRaw = args.values["fanout-100k-agents"];
const bigFanoutAgents = bigRaw === undefined ? undefined : Number(bigRaw);
if (bigFanoutAgents !== undefined && !(Number.isInteger(bigFanoutAgents) && bigFanoutAgents >= 1)) {
  console.error(`--fanout-100k-agents must be a positive integer, got "${bigRaw}"\n${USAGE}`);
  process.exit(2);
}
const options = {
  quick,
  scenarios,
  sizes,
  host: "127.0.0.1",
  log: (l: string) => console.log(l),
  ...(bigFanoutAgents !== undefined && { bigFanoutAgents }),
};
const rows: ResultRow[] = [];
const started = Date.now();
const chosen = SYSTEMS.filter((s) => systemNames.includes(s.name));
console.log(`calls and streams: ${chosen.map((s) => s.name).join(", ")}, interleaved`);
rows.push(...(await runCallScenarios(chosen, options)));
if (scenarios.includes("fanout-1k")) console.log("fanout-1k, interleaved");
rows.push(...(await runFanout1k(chosen, options)));
rows.push(...(await runFleetScenarios(chosen, options)));
if (scenarios.includes("storm")) {
  for (const scheme of ["tcp", "ws"] as const) {
    if (!systemNames.includes(`muster/${scheme}`)) continue;
    console.log(`muster/${scheme} storm`);
    rows.push(...(await runStorm(scheme, options)));
    if (scheme === "tcp") {
      console.log("muster/tcp storm, with authentication (a signed token on every attempt)");
      rows.push(...(await runStorm(scheme, { ...options, stormAuth: true })));
    }
  }
}

let micro = "";
if (wanted.includes("micro")) {
  console.log("micro-benchmarks: codec and replay buffer");
  micro = renderMicro(await runMicro({ quick, log: (l) => console.log(`  ${l}`) }));
}

let cluster = "";
if (wanted.includes("cluster")) {
  const r = await runClusterBench({ quick, log: (l) => console.log(l) });
  if (r !== undefined) {
    cluster = renderCluster(r);
    console.log(
      `cluster: fan-out to ${r.agents} agents, median ${r.oneServer.p50.toFixed(1)} ms on one server, ${r.threeServers.p50.toFixed(1)} ms over three servers; ${r.natsMessagesPerFanOut.toFixed(1)} NATS messages per fan-out; a call to an agent on another server adds ${Math.round(r.remoteCall.p50 - r.localCall.p50)} µs`,
    );
  }
}

let runs = "";
if (wanted.includes("runs")) {
  console.log("runs: the coordinator's merge and an instance's stats recording");
  runs = renderRuns(await runRunsBench({ quick, log: (l) => console.log(`  ${l}`) }));
}

const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
const markdown =
  renderResults(rows, command, new Date()) +
  (micro ? `\n## Micro-benchmarks (codec, replay buffer; one process)\n\n${micro}\n` : "") +
  (cluster ? `\n## Cluster: three servers sharing one fleet over NATS\n\n${cluster}\n` : "") +
  (runs ? `\n## Coordinated runs: merging and recording statistics\n\n${runs}\n` : "");
if (out) writeFileSync(out, `${markdown}\n`);
if (args.values.json) writeFileSync(args.values.json, `${JSON.stringify(rows, null, 2)}\n`);
console.log("");
for (const t of checkTargets(rows)) {
  if (t.met !== undefined)
    console.log(`${t.met ? "met    " : "MISSED "} ${t.scenario}: ${t.target} (${t.measured})`);
}
const failed = rows.filter((r) => r.error);
console.log(
  `\n${rows.length} results in ${((Date.now() - started) / 1000).toFixed(0)} s${out ? `, written to ${out}` : ""}; ` +
    `${failed.length} failed`,
);
process.exit(failed.length > 0 ? 1 : 0);
