import { format } from "node:util";
import { setLogger } from "@grpc/grpc-js";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { Logger } from "../../internal/logger.js";
import { type NumbersClientMode, runNumbersClient } from "../../numbers/client.js";
import { parseUuid } from "../../numbers/commands.js";
import { NUMBERS_DEFAULTS, TEST_SESSION } from "../../numbers/defaults.js";
import { MAX_N } from "../../numbers/sequence.js";
import { EXIT, fail, type LogFlags, loggerFrom, withLogOptions } from "../common.js";
import { parseCount, parseDuration } from "../parse.js";

/** A port flag; 0 (any free port) only where listening. */
export function portFlag(allowZero: boolean) {
  return (text: string): number => {
    const p = parseCount(text);
    if (p > 65535 || (p === 0 && !allowZero))
      throw new InvalidArgumentError(`port ${text} is out of range: ${allowZero ? 0 : 1} to 65535`);
    return p;
  };
}

/**
 * grpc-js writes its own errors to the console; a command's logger takes them instead, so
 * that standard error keeps one format and what matters is reported once, by muster.
 */
export function routeGrpcLogs(log: Logger): void {
  const to = (...args: unknown[]): void => log.debug({ grpc: format(...args) }, "grpc-js");
  setLogger({ error: to, info: to, debug: to });
}

/** A duration flag that must be above 0. */
export function positiveDuration(what: string) {
  return (text: string): number => {
    if (text.trim().startsWith("-")) throw new InvalidArgumentError(`${what} cannot be negative`);
    const ms = parseDuration(text);
    if (ms === 0) throw new InvalidArgumentError(`${what} must be above 0`);
    return ms;
  };
}

interface ClientFlags extends LogFlags {
  port: number;
  host: string;
  mode: NumbersClientMode;
  uuid?: string;
  giveUp: number;
  resumeBy: "value" | "position";
}

/** A whole number from `min` to `max`, or a usage error naming the argument. */
function wholeNumber(text: string, what: string, min: number, max: number): number {
  const t = text.trim();
  if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max)
    fail(`${what} must be a whole number from ${min} to ${max}, got "${text}"`, EXIT.USAGE);
  return Number(t);
}

export function registerNumbersClient(program: Command): void {
  withLogOptions(
    program
      .command("numbers-client")
      .description("receive numbers from a numbers service, resuming after drops and restarts")
      .argument(
        "[arg]",
        "stateless: N, how many values; stateful: n (default random 1..4095); stateful-test-reconnect: LAST",
      )
      .addOption(
        new Option("--mode <mode>", "what to ask for")
          .choices(["stateless", "stateful", "stateful-test", "stateful-test-reconnect"])
          .default("stateless"),
      )
      .option("--port <port>", "the service's port", portFlag(false), NUMBERS_DEFAULTS.port)
      .option("--host <host>", "the service's host", NUMBERS_DEFAULTS.host)
      .option("--uuid <uuid>", "stateful, stateful-test-reconnect: the session id (default: a random one)")
      .option(
        "--give-up <duration>",
        "give up when nothing arrived for this long",
        positiveDuration("--give-up"),
        NUMBERS_DEFAULTS.giveUpMs,
      )
      .addOption(
        new Option(
          "--resume-by <how>",
          "stateful: CONTINUE with the last value (the seed's form) or with the count (@position)",
        )
          .choices(["value", "position"])
          .default("value"),
      ),
  )
    .addHelpText(
      "after",
      `
Modes (those of the seed's client):
  stateless N                   START, check each value is 3 × the previous, END after N values
  stateful [n]                  START "<uuid>" <n>; n numbers then their checksum, checked here
  stateful-test                 the same with uuid ${TEST_SESSION.uuid} and n = ${TEST_SESSION.n}
  stateful-test-reconnect LAST  CONTINUE that session from the value LAST

After a drop it reconnects (delays from 500ms doubling to 8s, with jitter, reset by every
message) and resumes: stateless with CONTINUE <last value>, stateful with CONTINUE <uuid> <last>
and the count and checksum the server answers.

Exit status: 0 when the checksum (stateful) or every value (stateless) checks out; 1 on a bad
checksum, an error from the server or an early end; 2 for a usage error; 3 after giving up.

Examples:
  muster numbers-client --mode stateless 10
  muster numbers-client --mode stateful 100 --port 1337 --give-up 2m
  muster numbers-client --mode stateful-test-reconnect 1065590150`,
    )
    .action(async (arg: string | undefined, flags: ClientFlags) => {
      const mode = flags.mode;
      let n: number | undefined;
      let last: number | undefined;
      if (mode === "stateless") {
        if (arg === undefined)
          fail(`stateless mode needs N, how many values to receive: 1 to ${MAX_N}`, EXIT.USAGE);
        n = wholeNumber(arg, "N", 1, MAX_N);
      } else if (mode === "stateful") {
        if (arg !== undefined) n = wholeNumber(arg, "n", 1, MAX_N);
      } else if (mode === "stateful-test") {
        if (arg !== undefined)
          fail(`stateful-test takes no argument: it always asks for n = ${TEST_SESSION.n}`, EXIT.USAGE);
      } else {
        if (arg === undefined)
          fail("stateful-test-reconnect needs LAST, the last value received: 0 to 4294967295", EXIT.USAGE);
        last = wholeNumber(arg, "LAST", 0, 0xffff_ffff);
      }
      if (flags.uuid !== undefined) {
        if (mode === "stateless" || mode === "stateful-test")
          fail(`--uuid is for --mode stateful or stateful-test-reconnect, not ${mode}`, EXIT.USAGE);
        if (parseUuid(flags.uuid) === undefined)
          fail(`--uuid "${flags.uuid}" is not a uuid such as ${TEST_SESSION.uuid}`, EXIT.USAGE);
      }
      if (mode === "stateless" && flags.resumeBy === "position")
        fail(
          "--resume-by position is for the stateful modes: a stateless stream resumes from a value",
          EXIT.USAGE,
        );

      const logger = loggerFrom(flags, "numbers-client");
      routeGrpcLogs(logger);
      const result = await runNumbersClient({
        mode,
        port: flags.port,
        host: flags.host,
        giveUpMs: flags.giveUp,
        resumeBy: flags.resumeBy,
        logger,
        onLine: (line) => process.stdout.write(`${line}\n`),
        ...(n !== undefined ? { n } : {}),
        ...(last !== undefined ? { last } : {}),
        ...(flags.uuid !== undefined ? { uuid: flags.uuid } : {}),
      });
      if (result.ok) process.exit(EXIT.OK);
      fail(result.reason ?? "failed", result.failure === "gave-up" ? EXIT.UNREACHABLE : EXIT.FAILED);
    });
}
