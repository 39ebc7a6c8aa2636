// `node dist/bench/micro-main.js [--quick]`: runs the micro-benchmarks of bench/micro.ts and
// prints their markdown table to stdout. Progress goes to stderr, so stdout is the table alone.
// `--quick` is a smoke run (~50 ms per benchmark): it proves every benchmark runs and verifies;
// its numbers are rough. Exit code 1 on any error: a bad option, a failed check, a throw.

import { parseArgs } from "node:util";
import { renderMicro, runMicro } from "./micro.js";

const USAGE = "usage: node dist/bench/micro-main.js [--quick]";

let quick = false;
try {
  const { values } = parseArgs({
    options: { quick: { type: "boolean", default: false }, help: { type: "boolean", default: false } },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  quick = values.quick === true;
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(1);
}

try {
  console.error(`micro-benchmarks, node ${process.version}, ${quick ? "quick" : "full"} mode`);
  const rows = await runMicro({ quick, log: (line) => console.error(line) });
  console.log(renderMicro(rows));
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
}
