import type { Command } from "commander";
import { DEFAULTS } from "../../internal/defaults.js";
import { createServer } from "../../server/create-server.js";
import { EXIT, fail, type LogFlags, loggerFrom, readFileOrFail, withLogOptions } from "../common.js";
import { collectList, parseDuration } from "../parse.js";

interface ServerFlags extends LogFlags {
  listen?: string[];
  name?: string;
  tlsCert?: string;
  tlsKey?: string;
  resumeWindow: number;
  heartbeat: number;
  callTimeout: number;
  allowRemoteOperators: boolean;
}

export function registerServer(program: Command): void {
  withLogOptions(
    program
      .command("server")
      .description(
        `run a server: agents dial it, operators call through it (default: ws://0.0.0.0:${DEFAULTS.wsPort} and tcp://0.0.0.0:${DEFAULTS.tcpPort})`,
      )
      .option(
        "--listen <url>",
        "where to listen, repeatable: ws://host:port, wss://…, tcp://host:port, tls://…",
        collectList,
      )
      .option("--name <name>", "server name shown to peers (default: host name)")
      .option("--tls-cert <file>", "PEM certificate: listen on wss:// and tls:// by default")
      .option("--tls-key <file>", "PEM private key for --tls-cert")
      .option(
        "--resume-window <duration>",
        "how long a dropped session can be resumed",
        parseDuration,
        DEFAULTS.resumeWindowMs,
      )
      .option(
        "--heartbeat <duration>",
        "PING interval on idle links",
        parseDuration,
        DEFAULTS.heartbeatIntervalMs,
      )
      .option("--call-timeout <duration>", "default deadline of calls", parseDuration, DEFAULTS.callTimeoutMs)
      .option(
        "--allow-remote-operators",
        "accept operator connections from non-loopback addresses (no authentication yet: anyone reaching the port can call every agent)",
        false,
      ),
  ).action(async (flags: ServerFlags) => {
    const logger = loggerFrom(flags, "muster-server");
    if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey))
      fail("--tls-cert and --tls-key go together", EXIT.USAGE);
    const tls =
      flags.tlsCert && flags.tlsKey
        ? {
            cert: readFileOrFail(flags.tlsCert, "--tls-cert"),
            key: readFileOrFail(flags.tlsKey, "--tls-key"),
          }
        : undefined;
    const server = createServer({
      ...(flags.listen ? { listen: flags.listen } : {}),
      ...(flags.name ? { name: flags.name } : {}),
      ...(tls ? { tls } : {}),
      logger,
      resumeWindowMs: flags.resumeWindow,
      heartbeatIntervalMs: flags.heartbeat,
      suspectAfterMs: Math.max(DEFAULTS.suspectAfterMs, flags.heartbeat * 2.4),
      deadAfterMs: Math.max(DEFAULTS.deadAfterMs, flags.heartbeat * 6),
      callTimeoutMs: flags.callTimeout,
      allowRemoteOperators: flags.allowRemoteOperators,
    });
    try {
      await server.start();
    } catch (err) {
      fail(`cannot start the server: ${(err as Error).message}`);
    }
    for (const l of server.listeners) process.stdout.write(`listening on ${l.url}\n`);
    const stop = (signal: string): void => {
      logger.info({ signal }, "stopping");
      void server.close().then(() => process.exit(EXIT.OK));
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}
