import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type Command, InvalidArgumentError, Option } from "commander";
import { createAgent } from "../../agent/create-agent.js";
import { DEFAULT_SERVER_ORDER, type ServerOrder } from "../../agent/server-list.js";
import { decodeTokenUnverified } from "../../auth/tokens.js";
import type { MusterError } from "../../errors/muster-error.js";
import { DEFAULTS } from "../../internal/defaults.js";
import type { Logger } from "../../internal/logger.js";
import type { StreamHandler } from "../../rpc/stream.js";
import type { Handler } from "../../rpc/types.js";
import type { StageKind } from "../../run/agent-runs.js";
import type { RunHandler } from "../../run/generic/handler-stage.js";
import type { Handler as TextHandler } from "../../text/dispatcher.js";
import { listenTextAll, type TextListener } from "../../text/endpoint.js";
import { localOnlyGuard } from "../../text/guard.js";
import { checkMessageName } from "../../text/message.js";
import type { TextContext } from "../../text/service.js";
import { parseTextAddress } from "../../text/url.js";
import { checkName } from "../../wire/codec.js";
import {
  cliTextHooks,
  DEFAULT_SERVER_URL,
  dialTlsFrom,
  EXIT,
  fail,
  type LogFlags,
  loggerFrom,
  type TextFlags,
  textUrlsFrom,
  withDecodeLimits,
  withDialTls,
  withLogOptions,
  withTextOptions,
} from "../common.js";
import { configChecked, withConfigFile } from "../config-file.js";
import { collectList, parseDuration, parseLabel, parseServerUrl } from "../parse.js";

interface AgentFlags extends LogFlags, TextFlags {
  server?: string[];
  name?: string;
  label: Record<string, string>;
  handlers?: string;
  tlsCa?: string;
  tlsInsecure: boolean;
  reconnectMax: number;
  heartbeat?: number;
  token?: string;
  tokenFile?: string;
  enrolTokenFile?: string;
  maxFrame: number;
  maxJsonDepth: number;
  serverOrder: ServerOrder;
  runs: StageKind[];
  config?: string;
  checkConfig: boolean;
}

/** `--runs`: the kinds of stage this agent runs for `muster run --server`, or none. */
function parseRunKinds(text: string): StageKind[] {
  const kinds = text
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  if (kinds.length === 1 && kinds[0] === "none") return [];
  for (const k of kinds)
    if (k !== "sql" && k !== "exec" && k !== "handler")
      throw new InvalidArgumentError(
        `"${k}" is not a kind of stage: give sql, exec and handler, comma-separated, or none`,
      );
  return kinds as StageKind[];
}

/**
 * Loads methods and streams from an ES module: its default export (an object of functions) or
 * its named function exports. Async generator functions become streams, other functions methods.
 * An export named `text`, an object of functions keyed by COMMAND, handles text messages.
 */
async function loadHandlers(file: string): Promise<{
  methods: Map<string, Handler>;
  streams: Map<string, StreamHandler>;
  text: Map<string, TextHandler<TextContext>>;
}> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  } catch (err) {
    fail(`--handlers: cannot load ${file}: ${(err as Error).message}`, EXIT.USAGE);
  }
  const source =
    typeof mod.default === "object" && mod.default !== null ? (mod.default as Record<string, unknown>) : mod;
  const methods = new Map<string, Handler>();
  const streams = new Map<string, StreamHandler>();
  const text = new Map<string, TextHandler<TextContext>>();
  if (typeof source.text === "object" && source.text !== null) {
    for (const [command, fn] of Object.entries(source.text as Record<string, unknown>)) {
      const why = checkMessageName("command", command);
      if (why !== undefined) fail(`--handlers: ${file}: text.${command}: ${why}`, EXIT.USAGE);
      if (typeof fn !== "function")
        fail(`--handlers: ${file}: text.${command} is not a function`, EXIT.USAGE);
      text.set(command, fn as TextHandler<TextContext>);
    }
  }
  for (const [name, fn] of Object.entries(source)) {
    if (typeof fn !== "function") continue;
    if (Object.prototype.toString.call(fn) === "[object AsyncGeneratorFunction]")
      streams.set(name, fn as StreamHandler);
    else methods.set(name, fn as Handler);
  }
  if (methods.size + streams.size + text.size === 0)
    fail(`--handlers: ${file} exports no functions`, EXIT.USAGE);
  return { methods, streams, text };
}

export function registerAgent(program: Command): void {
  const command = withDialTls(
    withLogOptions(
      withTextOptions(
        withDecodeLimits(
          program
            .command("agent")
            .description("run an agent: dial the server, stay connected for ever, answer its calls")
            .option(
              "--server <url>",
              `server URL, repeatable or comma-separated; tried as --server-order says (default ${DEFAULT_SERVER_URL})`,
              collectList,
            )
            .addOption(
              new Option(
                "--server-order <order>",
                "shuffle: start at a random --server and try them in a random order, so that agents spread over the servers; ordered: the first --server first, then in turn",
              )
                .choices(["shuffle", "ordered"])
                .default(DEFAULT_SERVER_ORDER),
            )
            .option("--name <name>", "unique agent name (default: host name)")
            .option("--label <key=value>", "a label, repeatable", parseLabel, {})
            .option(
              "--handlers <file>",
              "ES module whose exported functions become methods, async generator functions streams, and an exported `text` object's functions text commands",
            )
            .option(
              "--runs <kinds>",
              "the stages of coordinated runs (muster run --server) this agent takes part in: sql, exec, handler (comma-separated), or none; exec runs any command the run sends",
              parseRunKinds,
              ["sql", "handler"],
            )
            .option(
              "--reconnect-max <duration>",
              "largest reconnect delay before jitter",
              parseDuration,
              DEFAULTS.reconnectMaxMs,
            )
            .option(
              "--heartbeat <duration>",
              "PING interval on an idle link (the server is suspect after 2.4×, dead after 6×, at least the defaults); default: the server's",
              parseDuration,
            )
            .addOption(
              new Option(
                "--token <token>",
                "credential: an agent token (muster token create --role agent --name NAME), or an enrol token for a server with --approve",
              ).env("MUSTER_TOKEN"),
            )
            .option(
              "--token-file <file>",
              "read the agent's token from this file before every attempt; a token issued at enrolment is written to it (mode 0600)",
            )
            .option(
              "--enrol-token-file <file>",
              "an enrol token (shared by the agents that may join), read only: presented until the server issues this agent a token of its own, which goes to --token-file",
            ),
        ),
      ),
    ),
  ).action(async (flags: AgentFlags) => {
    const { hostname } = await import("node:os");
    const name = flags.name ?? hostname();
    const bad = checkName(name);
    if (bad) fail(`--name: ${bad}`, EXIT.USAGE);
    const check = flags.checkConfig;
    // A check writes nothing: not even the log file.
    const logger = loggerFrom(check ? { ...flags, logFile: undefined } : flags, "muster-agent");
    const tls = dialTlsFrom(flags);
    if (flags.token !== undefined && flags.tokenFile !== undefined)
      fail("--token (or $MUSTER_TOKEN) and --token-file both give a token: give one", EXIT.USAGE);
    if (flags.enrolTokenFile !== undefined && flags.tokenFile === undefined)
      fail("--enrol-token-file needs --token-file: where the token issued at enrolment is kept", EXIT.USAGE);
    const readFile = (file: string, flag: string, quiet: boolean): string | undefined => {
      try {
        return readFileSync(file, "utf8").trim() || undefined;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (!quiet) logger.error({ file, err: code }, `cannot read ${flag}`);
        return undefined;
      }
    };
    // The agent's own token once it has one; until then (first enrolment) the shared enrol
    // token, which is never written to.
    const readToken = (): string | undefined => {
      if (flags.tokenFile === undefined) return flags.token?.trim() || undefined;
      const own = readFile(flags.tokenFile, "--token-file", flags.enrolTokenFile !== undefined);
      if (own !== undefined || flags.enrolTokenFile === undefined) return own;
      return readFile(flags.enrolTokenFile, "--enrol-token-file", false);
    };
    const first = readToken();
    if (flags.tokenFile !== undefined && first === undefined)
      fail(
        flags.enrolTokenFile === undefined
          ? `--token-file: ${flags.tokenFile} cannot be read or is empty`
          : `neither --token-file ${flags.tokenFile} nor --enrol-token-file ${flags.enrolTokenFile} holds a token`,
        EXIT.USAGE,
      );
    // Without --label, an agent presents the labels its token binds.
    let labels = flags.label;
    if (Object.keys(labels).length === 0 && first !== undefined) {
      try {
        labels = decodeTokenUnverified(first).labels;
      } catch (err) {
        fail(
          `the token is not a muster token: ${(err as MusterError).rawMessage ?? (err as Error).message}`,
          EXIT.USAGE,
        );
      }
    }
    const textUrls = textUrlsFrom(flags);
    if (textUrls.some((u) => u.startsWith("tls:")))
      fail("--text tls://… is for servers; use tcp:// or unix: on an agent", EXIT.USAGE);
    let textListeners: TextListener[] = [];
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ reason: why }, "stopping");
      void Promise.all(textListeners.map((l) => l.close())).then(() => agent.close());
    };
    let servers: string[] = [];
    try {
      servers = (flags.server ?? [DEFAULT_SERVER_URL]).map(parseServerUrl);
    } catch (err) {
      fail(`--server: ${(err as Error).message}`, EXIT.USAGE);
    }
    const loaded = flags.handlers ? await loadHandlers(flags.handlers) : undefined;
    let agent: ReturnType<typeof createAgent>;
    try {
      agent = createAgent({
        name,
        labels,
        servers,
        serverOrder: flags.serverOrder,
        logger,
        ...(tls ? { tls } : {}),
        ...(first !== undefined ? { token: flags.tokenFile !== undefined ? readToken : first } : {}),
        reconnect: { maxMs: flags.reconnectMax },
        ...(flags.heartbeat !== undefined
          ? {
              heartbeatIntervalMs: flags.heartbeat,
              suspectAfterMs: Math.max(DEFAULTS.suspectAfterMs, flags.heartbeat * 2.4),
              deadAfterMs: Math.max(DEFAULTS.deadAfterMs, flags.heartbeat * 6),
            }
          : {}),
        maxFrameBytes: flags.maxFrame,
        maxJsonDepth: flags.maxJsonDepth,
        textHooks: cliTextHooks(flags, stop),
        ...(flags.runs.length > 0 && {
          runs: {
            kinds: flags.runs,
            // The module's methods are what handler stages call.
            handlers: Object.fromEntries(loaded?.methods ?? []) as unknown as Record<string, RunHandler>,
          },
        }),
      });
    } catch (err) {
      fail((err as Error).message, EXIT.USAGE);
    }
    if (check) configChecked(flags.config);
    if (loaded !== undefined) {
      const { methods, streams, text } = loaded;
      for (const [m, h] of methods) agent.handle(m, h);
      for (const [s, h] of streams) agent.handleStream(s, h);
      for (const [c, h] of text) agent.text.on(c, h);
    }
    try {
      // An agent holds no key to check credentials with: its own endpoints take messages from
      // this machine (or UDP with the secret) only; the fleet's way in is the server.
      agent.text.setGuard(localOnlyGuard());
      textListeners = await listenTextAll(textUrls, {
        service: agent.text,
        logger,
        idleTimeoutMs: flags.textIdleTimeout,
        ...(flags.textSecret !== undefined ? { secretCode: flags.textSecret } : {}),
      });
    } catch (err) {
      fail(`cannot start the text endpoints: ${(err as MusterError).rawMessage ?? (err as Error).message}`);
    }
    for (const l of textListeners) process.stdout.write(`text on ${l.url}\n`);
    const retries = retryLog(logger);
    agent.onEvent((e) => {
      if (e.type === "retry") retries.note(e.url, e.delayMs, e.error);
      if (e.type === "replaced") process.exitCode = EXIT.FAILED;
      if (e.type === "pending") process.stdout.write(`pending: ${e.message}\n`);
      if (e.type === "credential") {
        if (flags.tokenFile === undefined) {
          logger.warn("enrolled, but without --token-file the issued token is kept in memory only");
        } else {
          // Atomically, and readable by this user only: it is a credential.
          const tmp = `${flags.tokenFile}.${process.pid}.tmp`;
          writeFileSync(tmp, `${e.token}\n`, { mode: 0o600 });
          renameSync(tmp, flags.tokenFile);
          logger.info({ file: flags.tokenFile }, "enrolled: token saved");
        }
        process.stdout.write("enrolled\n");
      }
      if (e.type === "closed") process.exit(process.exitCode ?? EXIT.OK);
    });
    agent.start();
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  withConfigFile(command, { server: parseServerUrl, text: parseTextAddress });
}

/** Identical failures in a row are logged once, then every 10th or once a minute, with a count. */
const REPEAT_EVERY = 10;
const REPEAT_MS = 60_000;

/**
 * The agent's retry log: one line per attempt while the failure changes; the same failure
 * again is summarised (`repeated: N`) instead of filling the log while a server is away.
 */
function retryLog(logger: Logger): { note(url: string, delayMs: number, error: string): void } {
  let last = "";
  let repeated = 0;
  let loggedAt = 0;
  return {
    note(url, delayMs, error) {
      const now = Date.now();
      if (error === last) {
        repeated++;
        if (repeated % REPEAT_EVERY !== 0 && now - loggedAt < REPEAT_MS) return;
        logger.info({ url, delayMs, error, repeated }, "retrying: the same failure again");
      } else {
        last = error;
        repeated = 0;
        logger.info({ url, delayMs, error }, "retrying");
      }
      loggedAt = now;
    },
  };
}
