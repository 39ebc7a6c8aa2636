import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type Command, Option } from "commander";
import { createAgent } from "../../agent/create-agent.js";
import { decodeTokenUnverified } from "../../auth/tokens.js";
import type { MusterError } from "../../errors/muster-error.js";
import { DEFAULTS } from "../../internal/defaults.js";
import type { StreamHandler } from "../../rpc/stream.js";
import type { Handler } from "../../rpc/types.js";
import type { Handler as TextHandler } from "../../text/dispatcher.js";
import { listenTextAll, type TextListener } from "../../text/endpoint.js";
import { localOnlyGuard } from "../../text/guard.js";
import { checkMessageName } from "../../text/message.js";
import type { TextContext } from "../../text/service.js";
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
import { collectList, parseDuration, parseLabel } from "../parse.js";

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
  maxFrame: number;
  maxJsonDepth: number;
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
  withDialTls(
    withLogOptions(
      withTextOptions(
        withDecodeLimits(
          program
            .command("agent")
            .description("run an agent: dial the server, stay connected for ever, answer its calls")
            .option(
              "--server <url>",
              `server URL, repeatable or comma-separated; tried in turn (default ${DEFAULT_SERVER_URL})`,
              collectList,
            )
            .option("--name <name>", "unique agent name (default: host name)")
            .option("--label <key=value>", "a label, repeatable", parseLabel, {})
            .option(
              "--handlers <file>",
              "ES module whose exported functions become methods, async generator functions streams, and an exported `text` object's functions text commands",
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
              "read the token from this file before every attempt; a token issued at enrolment is written back to it",
            ),
        ),
      ),
    ),
  ).action(async (flags: AgentFlags) => {
    const { hostname } = await import("node:os");
    const name = flags.name ?? hostname();
    const bad = checkName(name);
    if (bad) fail(`--name: ${bad}`, EXIT.USAGE);
    const logger = loggerFrom(flags, "muster-agent");
    const tls = dialTlsFrom(flags);
    if (flags.token !== undefined && flags.tokenFile !== undefined)
      fail("--token (or $MUSTER_TOKEN) and --token-file both give a token: give one", EXIT.USAGE);
    const readToken = (): string | undefined => {
      if (flags.tokenFile === undefined) return flags.token?.trim() || undefined;
      try {
        return readFileSync(flags.tokenFile, "utf8").trim() || undefined;
      } catch (err) {
        logger.error(
          { file: flags.tokenFile, err: (err as NodeJS.ErrnoException).code },
          "cannot read --token-file",
        );
        return undefined;
      }
    };
    const first = readToken();
    if (flags.tokenFile !== undefined && first === undefined)
      fail(`--token-file: ${flags.tokenFile} cannot be read or is empty`, EXIT.USAGE);
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
    let agent: ReturnType<typeof createAgent>;
    try {
      agent = createAgent({
        name,
        labels,
        servers: flags.server ?? [DEFAULT_SERVER_URL],
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
      });
    } catch (err) {
      fail((err as Error).message, EXIT.USAGE);
    }
    if (flags.handlers) {
      const { methods, streams, text } = await loadHandlers(flags.handlers);
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
    agent.onEvent((e) => {
      if (e.type === "retry") logger.info({ url: e.url, delayMs: e.delayMs, error: e.error }, "retrying");
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
}
