import { type Command, Option } from "commander";
import { formatDuration } from "../../chaos/units.js";
import { NUMBERS_DEFAULTS } from "../../numbers/defaults.js";
import { type NumbersServer, startNumbersServer } from "../../numbers/server.js";
import { EXIT, fail, type LogFlags, loggerFrom, withLogOptions } from "../common.js";
import { portFlag, positiveDuration, routeGrpcLogs } from "./numbers-client.js";

export { registerNumbersClient } from "./numbers-client.js";

interface NumbersFlags extends LogFlags {
  port: number;
  host: string;
  mode: "stateless" | "stateful";
  tick: number;
  stateDir?: string;
  expiry: number;
}

export function registerNumbers(program: Command): void {
  withLogOptions(
    program
      .command("numbers")
      .description(
        "serve numbers over gRPC (grpc.Comms/GetNumbers), compatible with the Modest-as/server-client seed's client",
      )
      .addOption(
        new Option(
          "--mode <mode>",
          "stateless: a ×3 stream until END; stateful: n numbers and a checksum, resumable",
        )
          .choices(["stateless", "stateful"])
          .default("stateless"),
      )
      .option("--port <port>", "where to listen; 0 picks a free port", portFlag(true), NUMBERS_DEFAULTS.port)
      .option(
        "--host <host>",
        "where to listen; localhost means 127.0.0.1 and ::1, 0.0.0.0 or :: every interface",
        NUMBERS_DEFAULTS.host,
      )
      .option(
        "--tick <duration>",
        "one message per tick",
        positiveDuration("--tick"),
        NUMBERS_DEFAULTS.tickMs,
      )
      .option(
        "--state-dir <dir>",
        "stateful: keep sessions in this directory, so they survive a restart or a crash",
      )
      .option(
        "--expiry <duration>",
        "stateful: forget a session this long after its last activity",
        positiveDuration("--expiry"),
        NUMBERS_DEFAULTS.expiryMs,
      ),
  )
    .addHelpText(
      "after",
      `
Commands a client sends (one per Request.message):
  stateless  START | CONTINUE <x> | END
  stateful   START "<uuid>" <n> | CONTINUE <uuid> <last> | CONTINUE <uuid> @<position>

Protocol errors come back in band (Reply.error), then the call ends with status OK.

Examples:
  muster numbers --mode stateless
  muster numbers --mode stateful --state-dir ./numbers-state --tick 200ms

Output: one "listening on" line per address, then the settings; logs on standard error. On
SIGINT or SIGTERM it stops (sessions in --state-dir stay) and exits 0. Exit status 2 for a
usage error, 1 when it cannot listen.`,
    )
    .action(async (flags: NumbersFlags, cmd: Command) => {
      if (flags.mode === "stateless") {
        if (flags.stateDir !== undefined)
          fail("--state-dir needs --mode stateful: stateless streams have no session to keep", EXIT.USAGE);
        if (cmd.getOptionValueSource("expiry") === "cli")
          fail("--expiry needs --mode stateful: stateless streams have no session to expire", EXIT.USAGE);
      }
      const log = loggerFrom(flags, "numbers");
      routeGrpcLogs(log);
      let server: NumbersServer;
      try {
        server = await startNumbersServer({
          mode: flags.mode,
          port: flags.port,
          host: flags.host,
          tickMs: flags.tick,
          expiryMs: flags.expiry,
          logger: log,
          ...(flags.stateDir !== undefined ? { stateDir: flags.stateDir } : {}),
        });
      } catch (err) {
        fail(`cannot listen on ${flags.host} port ${flags.port}: ${(err as Error).message}`);
      }
      const out = (line: string): void => {
        process.stdout.write(`${line}\n`);
      };
      for (const a of server.addresses) out(`listening on ${a}`);
      const settings = [`mode ${server.mode}`, `tick ${formatDuration(flags.tick)}`];
      if (server.mode === "stateful") {
        settings.push(`expiry ${formatDuration(flags.expiry)}`);
        settings.push(
          flags.stateDir !== undefined
            ? `sessions kept in ${flags.stateDir} (${server.sessions} restored)`
            : "sessions in memory only",
        );
      }
      out(settings.join(", "));
      let stopping = false;
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        void server.close().then(() => process.exit(EXIT.OK));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
