import type { Command } from "commander";
import { MusterError } from "../../errors/muster-error.js";
import { connectOperator, type MusterOperator } from "../../operator/create-operator.js";
import type { StreamOptions } from "../../rpc/stream.js";
import { parseTarget } from "../../rpc/target.js";
import { certificateHint } from "../admin-client.js";
import {
  DEFAULT_SERVER_URL,
  dialTlsFrom,
  EXIT,
  fail,
  loggerFrom,
  stdoutGone,
  withDialTls,
} from "../common.js";
import { type CredentialFlags, credentialFrom, withCredentialOptions } from "../credentials.js";
import { enrolmentsTable, outcomeLine, summaryLine } from "../format.js";
import { agentColumns, RUN_COLUMNS, SERVER_COLUMNS } from "../listings.js";
import {
  isData,
  type OutputFlags,
  outputFormat,
  printListing,
  renderData,
  withOutputOption,
} from "../output.js";
import { parseBytes, parseDuration, parseJsonArg, parseServerUrl } from "../parse.js";
import { watchAgents } from "../watch.js";

interface OperatorFlags extends CredentialFlags, OutputFlags {
  server: string;
  json: boolean;
  tlsCa?: string;
  tlsInsecure: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

async function connect(flags: OperatorFlags): Promise<MusterOperator> {
  const tls = dialTlsFrom(flags);
  const token = await credentialFrom(flags);
  try {
    return await connectOperator({
      server: flags.server,
      connectTimeoutMs: 5000,
      logger: loggerFrom({ logLevel: "warn", trace: false, logJson: false }, "muster"),
      ...(tls ? { tls } : {}),
      ...(token !== undefined ? { token } : {}),
    });
  } catch (err) {
    const e = err as MusterError;
    if (e.code === "UNAUTHENTICATED" || e.code === "PERMISSION_DENIED") {
      fail(`the server at ${flags.server} refused this operator: ${e.rawMessage}`, EXIT.FAILED);
    }
    const why = e.rawMessage ?? String(err);
    const hint = certificateHint(why);
    fail(`cannot reach the server at ${flags.server}: ${why}${hint ? `: ${hint}` : ""}`, EXIT.UNREACHABLE);
  }
}

function withServer(cmd: Command): Command {
  return withCredentialOptions(
    withDialTls(
      cmd
        .option(
          "--server <url>",
          "server URL: ws://, wss://, tcp:// or tls://host:port (host:port alone: ws://); or $MUSTER_SERVER",
          parseServerUrl,
          DEFAULT_SERVER_URL,
        )
        .option("--json", "machine-readable output: JSON", false),
    ),
  );
}

export function registerOperatorCommands(program: Command): void {
  withServer(
    withOutputOption(
      program
        .command("agents")
        .description(
          "list the agents the server knows (live, pending enrolment, then recently offline), or accept or reject an agent's enrolment request (admin role)",
        )
        .argument("[action]", "list (default), accept or reject")
        .argument("[name]", "with accept or reject: the agent")
        .option(
          "--fingerprint <hex>",
          "with accept or reject: the request's fingerprint (as listed, and in the agent's log); required when several agents ask for the name",
        )
        .option(
          "-w, --watch",
          "list, then print one line per change (join, state, new session, gone) until Ctrl-C",
          false,
        ),
    ),
  ).action(
    async (
      action: string | undefined,
      name: string | undefined,
      flags: OperatorFlags & { fingerprint?: string; watch: boolean },
    ) => {
      const verb = action ?? "list";
      const format = outputFormat(flags);
      if (verb !== "list" && verb !== "accept" && verb !== "reject")
        fail(`unknown action ${JSON.stringify(verb)}: give list, accept NAME or reject NAME`, EXIT.USAGE);
      if (verb === "list" && name !== undefined) fail("list takes no name", EXIT.USAGE);
      if (verb === "list" && flags.fingerprint !== undefined)
        fail("--fingerprint goes with accept or reject", EXIT.USAGE);
      if (verb !== "list" && flags.watch) fail("--watch goes with the list", EXIT.USAGE);
      if (verb !== "list" && name === undefined) fail(`${verb} needs the agent's name`, EXIT.USAGE);
      if (flags.fingerprint !== undefined && !/^[0-9a-f]{16}$/.test(flags.fingerprint))
        fail("--fingerprint: 16 hexadecimal digits, as muster agents lists them", EXIT.USAGE);
      const op = await connect(flags);
      try {
        if (verb === "list" && flags.watch) {
          process.exitCode = await watchAgents(op, await op.agents(), format);
        } else if (verb === "list") {
          const agents = await op.agents();
          printListing(format, { rows: agents, columns: agentColumns(agents), empty: "no agents" });
          if (!isData(format) && agents.some((a) => a.state === "pending")) {
            const requests = await op.enrolments();
            process.stdout.write(
              `\nenrolment requests (muster agents accept NAME --fingerprint F):\n${enrolmentsTable(requests)}\n`,
            );
          }
        } else {
          const r = await op.enrol(verb, name as string, flags.fingerprint);
          if (format === "json" || format === "yaml") process.stdout.write(renderData(format, r));
          else
            process.stdout.write(
              `${verb === "accept" ? "accepted" : "rejected"} ${r.name} (fingerprint ${r.fingerprint}, from ${r.address})${r.server !== undefined ? ` on server ${r.server}` : ""}\n`,
            );
        }
      } catch (err) {
        const e = MusterError.from(err);
        fail(e.message, e.code === "INVALID_ARGUMENT" ? EXIT.USAGE : EXIT.FAILED);
      } finally {
        await op.close();
      }
    },
  );

  withServer(
    withOutputOption(
      program
        .command("servers")
        .description(
          "list the servers of the cluster the server belongs to (or the server alone): state, agents, event-loop lag, version, last heartbeat, URLs",
        ),
    ),
  ).action(async (flags: OperatorFlags) => {
    const format = outputFormat(flags);
    const op = await connect(flags);
    try {
      const servers = await op.servers();
      printListing(format, { rows: servers, columns: SERVER_COLUMNS });
    } catch (err) {
      fail(MusterError.from(err).message, EXIT.FAILED);
    } finally {
      await op.close();
    }
  });

  withServer(
    withOutputOption(
      program
        .command("runs")
        .description(
          "list the coordinated runs on the server (under way, then the latest over): id, stage, state, instances, progress; or stop one",
        )
        .argument("[action]", "list (default) or stop")
        .argument("[id]", "with stop: the run"),
    ),
  ).action(async (action: string | undefined, id: string | undefined, flags: OperatorFlags) => {
    const verb = action ?? "list";
    const format = outputFormat(flags);
    if (verb !== "list" && verb !== "stop")
      fail(`unknown action ${JSON.stringify(verb)}: give list or stop ID`, EXIT.USAGE);
    if (verb === "stop" && id === undefined)
      fail("stop needs the run's id (as muster runs lists it)", EXIT.USAGE);
    if (verb === "list" && id !== undefined) fail("list takes no id", EXIT.USAGE);
    const op = await connect(flags);
    try {
      if (verb === "stop") {
        await op.stopRun(id!);
        process.stdout.write(`stopping run ${id}\n`);
        return;
      }
      const runs = await op.runs();
      printListing(format, { rows: runs, columns: RUN_COLUMNS, empty: "no runs on this server" });
    } catch (err) {
      const e = MusterError.from(err);
      fail(e.message, e.code === "NOT_FOUND" ? EXIT.USAGE : EXIT.FAILED);
    } finally {
      await op.close();
    }
  });

  withServer(
    program
      .command("call")
      .description(
        "call a method on agents and print one outcome per expected agent as it arrives; exit status 0 only when all are ok",
      )
      .argument(
        "<target>",
        "an agent name, names (a,b), a glob (web-*), a label selector (role=web,zone!=eu), or all",
      )
      .argument("<method>", "method name, e.g. sys.info")
      .argument("[json]", "the request, as JSON")
      .option("--timeout <duration>", "deadline of the call", parseDuration, 10_000),
  ).action(
    async (
      target: string,
      method: string,
      json: string | undefined,
      flags: OperatorFlags & { timeout: number },
    ) => {
      try {
        parseTarget(target);
      } catch (err) {
        fail((err as MusterError).rawMessage, EXIT.USAGE);
      }
      let args: unknown;
      try {
        args = parseJsonArg(json);
      } catch (err) {
        fail((err as Error).message, EXIT.USAGE);
      }
      const op = await connect(flags);
      const call = op.call(target, method, args, { timeoutMs: flags.timeout });
      const onSignal = (): void => call.cancel();
      process.once("SIGINT", onSignal);
      stdoutGone.addEventListener("abort", onSignal, { once: true });
      try {
        const expected = await call.expected;
        const width = Math.max(4, ...expected.map((n) => n.length));
        // Cut to one terminal line only where a person reads it; a pipe gets every byte.
        const clipAt = process.stdout.isTTY
          ? Math.max(60, (process.stdout.columns ?? 160) - width - 28)
          : undefined;
        let clipped = false;
        if (expected.length === 0 && !flags.json) process.stdout.write(`no agent matches ${target}\n`);
        for await (const o of call) {
          const line = flags.json ? JSON.stringify(o) : outcomeLine(o, width, clipAt);
          if (clipAt !== undefined && line.endsWith("…")) clipped = true;
          process.stdout.write(`${line}\n`);
        }
        if (clipped)
          process.stderr.write("(long results are cut on a terminal: --json, or a pipe, shows them whole)\n");
        const { summary } = await call.done;
        process.stdout.write(flags.json ? `${JSON.stringify({ summary })}\n` : `${summaryLine(summary)}\n`);
        process.exitCode = summary.ok === expected.length && expected.length > 0 ? EXIT.OK : EXIT.FAILED;
      } catch (err) {
        // Output closed by its reader: the call was cancelled on purpose; end quietly.
        if (stdoutGone.aborted) return;
        const e = MusterError.from(err);
        process.stderr.write(`muster: call failed: ${e.message}\n`);
        process.exitCode = e.code === "INVALID_ARGUMENT" ? EXIT.USAGE : EXIT.FAILED;
      } finally {
        stdoutGone.removeEventListener("abort", onSignal);
        process.off("SIGINT", onSignal);
        await op.close();
      }
    },
  );

  withServer(
    program
      .command("stream")
      .description(
        "open a stream on an agent (through the server) and print its items as they arrive; Ctrl-C cancels it on the agent",
      )
      .argument("<agent>", "the agent that serves the stream")
      .argument("<name>", "stream name")
      .argument("[json]", "the request, as JSON")
      .option(
        "--window <size>",
        "bytes of items held unread before the agent waits (the memory bound, end to end)",
        parseBytes,
        256 * 1024,
      )
      .option("--timeout <duration>", "deadline of the whole stream (default: none)", parseDuration),
  ).action(
    async (
      agent: string,
      name: string,
      json: string | undefined,
      flags: OperatorFlags & { window: number; timeout?: number },
    ) => {
      let args: unknown;
      try {
        args = parseJsonArg(json);
      } catch (err) {
        fail((err as Error).message, EXIT.USAGE);
      }
      if (flags.window < 1) fail("--window must be at least 1 byte", EXIT.USAGE);
      const op = await connect(flags);
      const options: StreamOptions = { windowBytes: flags.window };
      if (flags.timeout !== undefined) options.timeoutMs = flags.timeout;
      const stream = op.stream(agent, name, args, options);
      let interrupted = false;
      const onSignal = (): void => {
        interrupted = true;
        stream.cancel();
      };
      process.once("SIGINT", onSignal);
      const onClosed = (): void => stream.cancel();
      stdoutGone.addEventListener("abort", onClosed, { once: true });
      try {
        for await (const item of stream) {
          if (stdoutGone.aborted) break;
          const line = flags.json ? JSON.stringify(item ?? null) : formatItem(item);
          // A slow terminal or pipe slows the agent down instead of filling memory here.
          if (!process.stdout.write(`${line}\n`))
            await new Promise((r) => {
              process.stdout.once("drain", r);
              stdoutGone.addEventListener("abort", r, { once: true });
            });
        }
        if (stdoutGone.aborted) return;
        if (interrupted) {
          process.stderr.write(`muster: stream cancelled after ${stream.received} item(s)\n`);
          process.exitCode = EXIT.INTERRUPTED;
        } else if (flags.json) {
          const end = { items: stream.received, result: stream.result ?? null };
          process.stdout.write(`${JSON.stringify({ end })}\n`);
        }
      } catch (err) {
        if (stdoutGone.aborted) return;
        const e = MusterError.from(err);
        process.stderr.write(`muster: stream failed after ${stream.received} item(s): ${e.message}\n`);
        process.exitCode = e.code === "INVALID_ARGUMENT" ? EXIT.USAGE : EXIT.FAILED;
      } finally {
        stdoutGone.removeEventListener("abort", onClosed);
        process.off("SIGINT", onSignal);
        await op.close();
      }
    },
  );
}

/** One item as a line: strings as they are, bytes as hex, anything else as JSON. */
function formatItem(item: unknown): string {
  if (typeof item === "string") return item;
  if (item instanceof Uint8Array)
    return Buffer.from(item.buffer, item.byteOffset, item.length).toString("hex");
  return JSON.stringify(item ?? null);
}
