#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { VERSION } from "../internal/version.js";
import { registerAgent } from "./commands/agent.js";
import { registerBench } from "./commands/bench.js";
import { registerChaosProxy } from "./commands/chaos-proxy.js";
import { registerCompletion } from "./commands/completion.js";
import { registerNumbers, registerNumbersClient } from "./commands/numbers.js";
import { registerOperatorCommands } from "./commands/operator.js";
import { registerRun } from "./commands/run.js";
import { registerServer } from "./commands/server.js";
import { registerSignal } from "./commands/signal.js";
import { registerStatusCommands } from "./commands/status.js";
import { registerToken } from "./commands/token.js";
import { registerVersion } from "./commands/version.js";
import { describeDefaults, EXIT, handleClosedStdout } from "./common.js";
import { addHelpFooters } from "./help-footers.js";

handleClosedStdout();

const program = new Command("muster")
  .description("a control plane for fleets of agents")
  .version(VERSION, "-V, --version")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

registerServer(program);
registerAgent(program);
registerOperatorCommands(program);
registerRun(program);
registerBench(program);
registerChaosProxy(program);
registerNumbers(program);
registerNumbersClient(program);
registerSignal(program);
registerStatusCommands(program);
registerToken(program);
registerVersion(program);
registerCompletion(program);

describeDefaults(program);

program.addHelpText(
  "after",
  `
Examples:
  muster server
  muster agent --server ws://127.0.0.1:33075 --name web-1 --label role=web
  muster agents
  muster call web-1 sys.info
  muster call 'role=web' sys.ping --timeout 3s
  muster call all sys.info --json
  muster run setup.yaml read-only.yaml -p rows=10k --dsn "root@tcp(127.0.0.1:3306)/bench"
  muster bench --scenarios rtt,pipe --transports tcp
  muster stream web-1 tail '{"from":100}' --json
  muster chaos-proxy --target 127.0.0.1:33076 --latency 50ms --cut-every 10s --seed 42
  muster numbers --mode stateful --state-dir ./numbers-state
  muster numbers-client --mode stateful 100
  muster signal --type tcp --host 127.0.0.1:3001 QUIT`,
);

// Examples and environment variables at the end of every --help (after the commands' own texts).
addHelpFooters(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
  }
  process.stderr.write(`muster: ${(err as Error).message}\n`);
  process.exit(EXIT.FAILED);
}
