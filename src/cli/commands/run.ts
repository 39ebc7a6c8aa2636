import { type Command, InvalidArgumentError, Option } from "commander";
import { MusterError } from "../../errors/muster-error.js";
import { RUN_DEFAULTS, type RunOutcome } from "../../run/coordinator.js";
import { loadStages } from "../../run/engine/index.js";
import type { LoadedStage, StageOverrides } from "../../run/engine/types.js";
import type { RunEvent } from "../../run/events.js";
import { runLocally } from "../../run/local-run.js";
import { certificateHint } from "../admin-client.js";
import { dialTlsFrom, EXIT, fail, loggerFrom, withDialTls } from "../common.js";
import { runOnServer } from "../run-remote.js";

interface DialTlsFlags {
  tlsCa?: string;
  tlsInsecure?: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

import { type CredentialFlags, credentialFrom, withCredentialOptions } from "../credentials.js";
import { parseCount, parseDuration, parseServerUrl } from "../parse.js";
import { parseReports, RunView } from "../run-view.js";

export interface RunFlags {
  server?: string;
  select: string;
  instances?: number;
  disableLocal: boolean;
  param: Record<string, string>;
  dsn?: string;
  database?: string;
  report: string[];
  bootTimeout: number;
  onLoss: "abort" | "continue";
  json: boolean;
}

function parseParam(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = text.indexOf("=");
  if (i <= 0) throw new InvalidArgumentError(`"${text}" is not a param: use key=value, e.g. rows=10k`);
  return { ...previous, [text.slice(0, i).trim()]: text.slice(i + 1) };
}

function parseOnLoss(text: string): "abort" | "continue" {
  if (text !== "abort" && text !== "continue") throw new InvalidArgumentError("give abort or continue");
  return text;
}

function collect(text: string, previous: string[] = []): string[] {
  return [...previous, text];
}

export function registerRun(program: Command): void {
  withCredentialOptions(
    withDialTls(
      program
        .command("run")
        .description(
          "run benchmark stages (Finch's stage and trx files, or exec/handler stages) here, or on a server's fleet with --server: boot every instance, start them together, merge their statistics live",
        )
        .argument("<stages...>", "stage files, run in order (a directory's _all.yaml applies to its stages)")
        .option(
          "--server <url>",
          "coordinate on this server's fleet: ws://, wss://, tcp:// or tls://host:port (without it, everything runs here)",
          parseServerUrl,
        )
        .option(
          "--select <target>",
          "the agents that may take part: a label selector, a glob, names, or all",
          "all",
        )
        .option(
          "--instances <n>",
          "overrides compute.instances of every stage (this one counts unless --disable-local)",
          parseCount,
        )
        .option("--disable-local", "this process only coordinates: every instance is an agent", false)
        .option("-p, --param <key=value>", "overrides a param of the stages (repeatable)", parseParam, {})
        .addOption(
          new Option("--dsn <dsn>", "MySQL DSN, Go form user:pass@tcp(host:port)/db").env("FINCH_DSN"),
        )
        .addOption(new Option("-D, --database <db>", "default database").env("FINCH_DB"))
        .option(
          "--report <spec>",
          "stdout, csv=FILE or json=FILE (repeatable): replaces the stages' stats.report",
          collect,
          [],
        )
        .option(
          "--boot-timeout <duration>",
          "time for a stage's instances to boot (failed ones replaced)",
          parseDuration,
          RUN_DEFAULTS.bootTimeoutMs,
        )
        .option(
          "--on-loss <action>",
          "when an instance is lost mid-run: abort the stage, or continue without it",
          parseOnLoss,
          RUN_DEFAULTS.onLoss,
        )
        .option("--json", "every event of the run as a JSON line on stdout", false),
    ),
  ).action(async (paths: string[], flags: RunFlags & CredentialFlags & DialTlsFlags) => {
    const overrides: StageOverrides = {
      params: flags.param,
      ...(flags.dsn !== undefined && { dsn: flags.dsn }),
      ...(flags.database !== undefined && { database: flags.database }),
      ...(flags.instances !== undefined && { instances: flags.instances }),
    };
    let reports: ReturnType<typeof parseReports> | undefined;
    try {
      if (flags.report.length > 0) reports = parseReports(flags.report);
    } catch (err) {
      fail((err as Error).message, EXIT.USAGE);
    }
    let stages: LoadedStage[];
    try {
      stages = await loadStages(paths, overrides);
    } catch (err) {
      fail((err as Error).message, EXIT.USAGE);
    }
    if (flags.disableLocal) for (const s of stages) s.disableLocal = true;
    const view = new RunView(
      { out: process.stdout, err: process.stderr, tty: process.stderr.isTTY === true },
      stages.map((s) => ({
        name: s.name,
        report: reports ?? s.stats.report,
        statsDisabled: s.stats.disable,
        ...(s.runtimeMs !== undefined && { runtimeMs: s.runtimeMs }),
      })),
      flags.json,
    );
    const taken = view.existingFiles();
    if (taken.length > 0)
      fail(`report files exist (reports are never overwritten): ${taken.join(", ")}`, EXIT.USAGE);
    // Events are shown in order, each after the one before it is written.
    let shown = Promise.resolve();
    const emit = (e: RunEvent): void => {
      shown = shown.then(() => view.event(e));
    };
    const stop = new AbortController();
    let interrupts = 0;
    const onSignal = (): void => {
      interrupts++;
      if (interrupts > 1) process.exit(EXIT.INTERRUPTED);
      process.stderr.write("\nstopping every instance (Ctrl-C again to quit at once)\n");
      stop.abort(new MusterError("CANCELLED", "interrupted (Ctrl-C)"));
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    let outcome: RunOutcome;
    try {
      outcome =
        flags.server !== undefined
          ? await remote(flags.server, stages, flags, emit, stop.signal)
          : await runLocally({
              stages,
              emit,
              signal: stop.signal,
              bootTimeoutMs: flags.bootTimeout,
              onLoss: flags.onLoss,
            });
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    await shown;
    await view.close();
    if (!outcome.ok && !flags.json)
      process.stderr.write(`muster: run failed: ${outcome.error?.message ?? "unknown"}\n`);
    process.exitCode = outcome.ok ? EXIT.OK : stop.signal.aborted ? EXIT.INTERRUPTED : EXIT.FAILED;
  });
}

/** `muster run --server`: the credential and TLS from the flags, a server unreachable → exit 3. */
async function remote(
  server: string,
  stages: LoadedStage[],
  flags: RunFlags & CredentialFlags & DialTlsFlags,
  emit: (e: RunEvent) => void,
  signal: AbortSignal,
): Promise<RunOutcome> {
  const tls = dialTlsFrom(flags);
  const token = await credentialFrom(flags);
  try {
    return await runOnServer({
      server,
      stages,
      select: flags.select,
      bootTimeoutMs: flags.bootTimeout,
      onLoss: flags.onLoss,
      ...(token !== undefined && { token }),
      ...(tls !== undefined && { tls }),
      logger: loggerFrom({ logLevel: "warn", trace: false, logJson: false }, "muster"),
      emit,
      signal,
    });
  } catch (err) {
    const e = MusterError.from(err);
    if (e.code === "UNAUTHENTICATED" || e.code === "PERMISSION_DENIED")
      fail(`the server at ${server} refused this operator: ${e.rawMessage}`, EXIT.FAILED);
    const hint = certificateHint(e.rawMessage);
    fail(`cannot reach the server at ${server}: ${e.rawMessage}${hint ? `: ${hint}` : ""}`, EXIT.UNREACHABLE);
  }
}
