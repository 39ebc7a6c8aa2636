import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import { createAgent } from "../../agent/create-agent.js";
import { DEFAULTS } from "../../internal/defaults.js";
import type { StreamHandler } from "../../rpc/stream.js";
import type { Handler } from "../../rpc/types.js";
import { checkName } from "../../wire/codec.js";
import {
  DEFAULT_SERVER_URL,
  dialTlsFrom,
  EXIT,
  fail,
  type LogFlags,
  loggerFrom,
  withDecodeLimits,
  withDialTls,
  withLogOptions,
} from "../common.js";
import { collectList, parseDuration, parseLabel } from "../parse.js";

interface AgentFlags extends LogFlags {
  server?: string[];
  name?: string;
  label: Record<string, string>;
  handlers?: string;
  tlsCa?: string;
  tlsInsecure: boolean;
  reconnectMax: number;
  heartbeat: number;
  maxFrame: number;
  maxJsonDepth: number;
}

/**
 * Loads methods and streams from an ES module: its default export (an object of functions) or
 * its named function exports. Async generator functions become streams, other functions methods.
 */
async function loadHandlers(
  file: string,
): Promise<{ methods: Map<string, Handler>; streams: Map<string, StreamHandler> }> {
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
  for (const [name, fn] of Object.entries(source)) {
    if (typeof fn !== "function") continue;
    if (Object.prototype.toString.call(fn) === "[object AsyncGeneratorFunction]")
      streams.set(name, fn as StreamHandler);
    else methods.set(name, fn as Handler);
  }
  if (methods.size + streams.size === 0) fail(`--handlers: ${file} exports no functions`, EXIT.USAGE);
  return { methods, streams };
}

export function registerAgent(program: Command): void {
  withDialTls(
    withLogOptions(
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
            "ES module whose exported functions become methods, and async generator functions streams",
          )
          .option(
            "--reconnect-max <duration>",
            "largest reconnect delay before jitter",
            parseDuration,
            DEFAULTS.reconnectMaxMs,
          )
          .option(
            "--heartbeat <duration>",
            "PING interval on an idle link (the server is suspect after 2.4×, dead after 6×, at least the defaults)",
            parseDuration,
            DEFAULTS.heartbeatIntervalMs,
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
    let agent: ReturnType<typeof createAgent>;
    try {
      agent = createAgent({
        name,
        labels: flags.label,
        servers: flags.server ?? [DEFAULT_SERVER_URL],
        logger,
        ...(tls ? { tls } : {}),
        reconnect: { maxMs: flags.reconnectMax },
        heartbeatIntervalMs: flags.heartbeat,
        suspectAfterMs: Math.max(DEFAULTS.suspectAfterMs, flags.heartbeat * 2.4),
        deadAfterMs: Math.max(DEFAULTS.deadAfterMs, flags.heartbeat * 6),
        maxFrameBytes: flags.maxFrame,
        maxJsonDepth: flags.maxJsonDepth,
      });
    } catch (err) {
      fail((err as Error).message, EXIT.USAGE);
    }
    if (flags.handlers) {
      const { methods, streams } = await loadHandlers(flags.handlers);
      for (const [m, h] of methods) agent.handle(m, h);
      for (const [s, h] of streams) agent.handleStream(s, h);
    }
    agent.onEvent((e) => {
      if (e.type === "retry") logger.info({ url: e.url, delayMs: e.delayMs, error: e.error }, "retrying");
      if (e.type === "replaced") process.exitCode = EXIT.FAILED;
      if (e.type === "closed") process.exit(process.exitCode ?? EXIT.OK);
    });
    agent.start();
    const stop = (signal: string): void => {
      logger.info({ signal }, "stopping");
      void agent.close();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}
