import { type Command, InvalidArgumentError } from "commander";
import { runCallScenarios } from "../../bench/call-scenarios.js";
import { runFanout1k, runFleetScenarios } from "../../bench/fanout-scenarios.js";
import { renderTables } from "../../bench/report.js";
import type { ResultRow, ScenarioName, SystemRef } from "../../bench/scenarios.js";
import { runStorm } from "../../bench/storm.js";
import { EXIT } from "../common.js";

/** The scenarios `muster bench` runs (muster only; the side-by-side run is `npm run bench`). */
const CLI_SCENARIOS = [
  "rtt",
  "pipe",
  "stream",
  "fanout-1k",
  "fanout-10k",
  "fanout-100k",
  "idle-mem",
  "storm",
] as const;
const DEFAULT_SCENARIOS = ["rtt", "pipe", "stream", "fanout-1k"];

function listOf<T extends string>(all: readonly T[], what: string) {
  return (value: string): T[] => {
    const items = value.split(",").map((s) => s.trim());
    for (const item of items) {
      if (!all.includes(item as T))
        throw new InvalidArgumentError(`unknown ${what} "${item}"; expected one of: ${all.join(", ")}`);
    }
    return items as T[];
  };
}

function sizesOf(value: string): number[] {
  return value.split(",").map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1 || n > 512 * 1024)
      throw new InvalidArgumentError(`payload size must be an integer from 1 to 524288 bytes, got "${s}"`);
    return n;
  });
}

interface BenchFlags {
  scenarios: ScenarioName[];
  transports: ("tcp" | "ws")[];
  sizes: number[];
  quick: boolean;
  json: boolean;
}

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description(
      "measure muster on this machine: servers and clients in separate processes on loopback, every reply verified",
    )
    .option(
      "--scenarios <list>",
      `comma-separated: ${CLI_SCENARIOS.join(", ")}`,
      listOf(CLI_SCENARIOS, "scenario"),
      DEFAULT_SCENARIOS,
    )
    .option("--transports <list>", "comma-separated: tcp, ws", listOf(["tcp", "ws"] as const, "transport"), [
      "tcp",
      "ws",
    ])
    .option("--sizes <bytes>", "payload sizes, comma-separated", sizesOf, [64, 4096])
    .option("--quick", "tiny counts and short windows: checks that everything runs and verifies", false)
    .option("--json", "print the results as JSON instead of tables", false)
    .addHelpText(
      "after",
      `
Scenarios: rtt (one call in flight), pipe (64 in flight), stream (server → agent items),
fanout-1k / fanout-10k / fanout-100k (the server calls every agent of 1,000 / 10,000 / 100,000,
the agents in several processes; fanout-100k needs a descriptor limit above 100,000 and is not
run by --quick), idle-mem (server memory per idle agent, 10,000 agents), storm (5,000 agents cut
at once, then a server restart).

To compare muster with raw TCP, raw ws, Socket.IO and gRPC in one run, use \`npm run bench\` in a
checkout of the repository (the peers are development dependencies).

Exit status: 0 when every scenario ran and every reply verified, 1 otherwise.`,
    )
    .action(async (flags: BenchFlags) => {
      const module = new URL("../../bench/muster-system.js", import.meta.url).href;
      const refs: SystemRef[] = flags.transports.map((t) => ({ name: `muster/${t}`, module }));
      const log = flags.json ? () => {} : (line: string) => process.stderr.write(`${line}\n`);
      const options = {
        quick: flags.quick,
        scenarios: flags.scenarios,
        sizes: flags.sizes,
        host: "127.0.0.1",
        log,
      };
      const rows: ResultRow[] = [];
      rows.push(...(await runCallScenarios(refs, options)));
      rows.push(...(await runFanout1k(refs, options)));
      rows.push(...(await runFleetScenarios(refs, options)));
      if (flags.scenarios.includes("storm"))
        for (const t of flags.transports) rows.push(...(await runStorm(t, options)));
      if (flags.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
      else process.stdout.write(`${renderTables(rows)}\n`);
      process.exit(rows.some((r) => r.error) ? EXIT.FAILED : EXIT.OK);
    });
}
