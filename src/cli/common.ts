import { readFileSync } from "node:fs";
import { type Command, Option } from "commander";
import type { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import type { Logger } from "../internal/logger.js";
import { formatDurationMs } from "../server/flags.js";
import type { TextHooks } from "../text/service.js";
import { parseTextAddress } from "../text/url.js";
import type { TlsClientOptions } from "../transport/types.js";
import { createCliLogger, type LogOptions, reopenLogFiles } from "./logger.js";
import { collectList, parseBytes, parseCount, parseDuration, parseLogLevel } from "./parse.js";

/** Default server for operator commands: $MUSTER_SERVER or the local WebSocket port. */
export const DEFAULT_SERVER_URL = process.env.MUSTER_SERVER ?? "ws://127.0.0.1:33075";

/**
 * Aborted when standard output's reader goes away (`muster call … | head -1`): commands that
 * stream output cancel what they have in flight, and the CLI ends quietly, as `cat` does.
 */
const stdoutClosed = new AbortController();
export const stdoutGone: AbortSignal = stdoutClosed.signal;

/** Installs the EPIPE handling of standard output (once, at start). */
export function handleClosedStdout(): void {
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    if (stdoutClosed.signal.aborted) return;
    stdoutClosed.abort();
    // Whatever a command still does after cancelling (closing its session) gets a moment.
    setTimeout(() => process.exit(EXIT.OK), 1000).unref();
  });
}

/** `1048576` → `1MiB`, `131072` → `128KiB`: the largest unit that shows `bytes` exactly. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ["GiB", 2 ** 30],
    ["MiB", 2 ** 20],
    ["KiB", 2 ** 10],
  ] as const)
    if (bytes !== 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  return `${bytes}`;
}

/**
 * Shows every numeric default of a duration or size option in the unit the option takes
 * (`5s`, `1MiB`), in this command and all its subcommands: `--help` shows what can be typed.
 */
export function describeDefaults(cmd: Command): void {
  for (const o of cmd.options) {
    if (typeof o.defaultValue !== "number" || o.defaultValueDescription !== undefined) continue;
    // Known by the value they take: every duration flag says <duration>, every size <size>.
    if (o.flags.includes("<duration>"))
      o.defaultValueDescription = o.defaultValue === 0 ? "0" : formatDurationMs(o.defaultValue);
    else if (o.flags.includes("<size>")) o.defaultValueDescription = formatBytes(o.defaultValue);
  }
  for (const sub of cmd.commands) describeDefaults(sub);
}

/** Exit statuses of the CLI. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3, INTERRUPTED: 130 } as const;

/** Adds --log-level, --trace and --log-json to a command. */
export function withLogOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--log-level <level>", "trace, debug, info, warn, error or silent")
        .default("info")
        .argParser(parseLogLevel),
    )
    .option("--trace", "log every frame in both directions (implies --log-level trace)", false)
    .option("--log-json", "JSON log lines even on a terminal", false)
    .option(
      "--log-file <path>",
      "write JSON log lines to this file instead of standard error; SIGHUP reopens it (after logrotate renamed it)",
    );
}

/** Adds --max-frame and --max-json-depth (servers and agents). */
export function withDecodeLimits(cmd: Command): Command {
  return cmd
    .option(
      "--max-frame <size>",
      "largest frame accepted, refused from its header (close code frame_too_large)",
      parseBytes,
      DEFAULTS.maxFrameBytes,
    )
    .option(
      "--max-json-depth <n>",
      "deepest nesting of arrays and objects accepted in JSON bodies and payloads",
      parseCount,
      DEFAULTS.maxJsonDepth,
    );
}

/** Adds --text, --text-secret and --text-idle-timeout (servers and agents). */
export function withTextOptions(cmd: Command): Command {
  return cmd
    .option(
      "--text <url>",
      "take one-line text messages here, repeatable: tcp://host:port, tls://host:port, udp://host:port, unix:/path",
      collectList,
    )
    .addOption(
      new Option(
        "--text-secret <code>",
        "UDP text messages must carry secret_code=<code> (others are dropped and logged)",
      ).env("MUSTER_TEXT_SECRET"),
    )
    .option(
      "--text-idle-timeout <duration>",
      "close a text connection idle this long, unless one of its lines is being handled (0: never)",
      parseDuration,
      DEFAULTS.textIdleTimeoutMs,
    );
}

export interface TextFlags {
  text?: string[];
  textSecret?: string;
  textIdleTimeout: number;
}

/** The --text URLs, each checked (exits 2 naming a bad one). */
export function textUrlsFrom(flags: TextFlags): string[] {
  const urls = flags.text ?? [];
  for (const url of urls) {
    try {
      parseTextAddress(url);
    } catch (err) {
      fail(`--text: ${(err as MusterError).rawMessage}`, EXIT.USAGE);
    }
  }
  if (flags.textSecret === "") fail("--text-secret cannot be empty", EXIT.USAGE);
  return urls;
}

/**
 * What the built-in text commands do in a CLI process: STOP and QUITTING stop it as SIGTERM
 * would, LOG_ROTATE reopens the --log-file.
 */
export function cliTextHooks(flags: LogFlags, stop: (why: string) => void): TextHooks {
  const hooks: TextHooks = { stop: (quitting) => stop(quitting ? "QUITTING" : "STOP") };
  if (flags.logFile !== undefined) hooks.logRotate = () => void reopenLogFiles();
  return hooks;
}

export interface LogFlags {
  logLevel: string;
  trace: boolean;
  logJson: boolean;
  logFile?: string;
}

export function loggerFrom(flags: LogFlags, name: string): Logger {
  const o: LogOptions = { level: flags.logLevel, trace: flags.trace, json: flags.logJson };
  if (flags.logFile !== undefined) o.file = flags.logFile;
  try {
    return createCliLogger(o, name);
  } catch (err) {
    fail(`--log-file: cannot open ${flags.logFile}: ${(err as Error).message}`, EXIT.USAGE);
  }
}

/** Adds TLS options for dialing (agents, operator commands). */
export function withDialTls(cmd: Command): Command {
  return cmd
    .option("--tls-ca <file>", "PEM file of a CA to trust for wss://, tls://, grpcs:// and https:// servers")
    .option("--tls-insecure", "do not verify the server's certificate (testing only)", false)
    .option(
      "--tls-cert <file>",
      "PEM client certificate for wss://, tls://, grpcs:// and https:// (mutual TLS: its CN and OU are the identity, instead of a token)",
    )
    .option("--tls-key <file>", "PEM private key of --tls-cert");
}

export function dialTlsFrom(flags: {
  tlsCa?: string;
  tlsInsecure?: boolean;
  tlsCert?: string;
  tlsKey?: string;
}): TlsClientOptions | undefined {
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey))
    fail("--tls-cert and --tls-key go together", EXIT.USAGE);
  if (!flags.tlsCa && !flags.tlsInsecure && !flags.tlsCert) return undefined;
  const o: TlsClientOptions = { insecure: flags.tlsInsecure === true };
  if (flags.tlsCa) o.ca = readFileOrFail(flags.tlsCa, "--tls-ca");
  if (flags.tlsCert && flags.tlsKey) {
    o.cert = readFileOrFail(flags.tlsCert, "--tls-cert");
    o.key = readFileOrFail(flags.tlsKey, "--tls-key");
  }
  return o;
}

/** Reads a file for an option, or exits with a clear message. */
export function readFileOrFail(path: string, option: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    fail(
      `${option}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      EXIT.USAGE,
    );
  }
}

/** Prints `muster: message` to standard error and exits. */
export function fail(message: string, code: number = EXIT.FAILED): never {
  process.stderr.write(`muster: ${message}\n`);
  process.exit(code);
}
