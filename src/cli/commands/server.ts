import type { Command } from "commander";
import { DEFAULTS } from "../../internal/defaults.js";
import { formatHostPort } from "../../internal/host-port.js";
import { createServer } from "../../server/create-server.js";
import {
  cliTextHooks,
  EXIT,
  fail,
  type LogFlags,
  loggerFrom,
  readFileOrFail,
  type TextFlags,
  textUrlsFrom,
  withDecodeLimits,
  withLogOptions,
  withTextOptions,
} from "../common.js";
import { collectList, parseBytes, parseCount, parseDuration, parseHostPort } from "../parse.js";

interface ServerFlags extends LogFlags, TextFlags {
  admin?: string;
  metricsPublic: boolean;
  listen?: string[];
  name?: string;
  tlsCert?: string;
  tlsKey?: string;
  resumeWindow: number;
  heartbeat: number;
  callTimeout: number;
  allowRemoteOperators: boolean;
  maxConnections: number;
  maxConnectionsPerIp: number;
  handshakeRate: number;
  handshakeBurst: number;
  slowConsumerBytes: number;
  slowConsumerAfter: number;
  maxFrame: number;
  maxJsonDepth: number;
  maxHello: number;
}

export function registerServer(program: Command): void {
  withLogOptions(
    withTextOptions(
      withDecodeLimits(
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
          .option(
            "--call-timeout <duration>",
            "default deadline of calls",
            parseDuration,
            DEFAULTS.callTimeoutMs,
          )
          .option(
            "--max-connections <n>",
            "connections held at once; more get CLOSE busy with a retry hint (0: no limit)",
            parseCount,
            DEFAULTS.maxConnections,
          )
          .option(
            "--max-connections-per-ip <n>",
            "connections held at once from one IP address (0: no limit)",
            parseCount,
            DEFAULTS.maxConnectionsPerIp,
          )
          .option(
            "--handshake-rate <n>",
            "new connections admitted per second on average; the excess is told when to retry (0: no limit)",
            parseCount,
            DEFAULTS.handshakesPerSecond,
          )
          .option(
            "--handshake-burst <n>",
            "new connections admitted at once above the average rate",
            parseCount,
            DEFAULTS.handshakeBurst,
          )
          .option(
            "--slow-consumer-bytes <size>",
            "unsent bytes a link may hold for --slow-consumer-after before it is dropped with slow_consumer (0: never)",
            parseBytes,
            DEFAULTS.slowConsumerBytes,
          )
          .option(
            "--slow-consumer-after <duration>",
            "how long a link may stay over --slow-consumer-bytes",
            parseDuration,
            DEFAULTS.slowConsumerMs,
          )
          .option(
            "--max-hello <size>",
            "largest handshake (HELLO) accepted; over TCP a larger first frame is refused from its header",
            parseBytes,
            DEFAULTS.maxHelloBytes,
          )
          .option(
            "--admin <host:port>",
            "also serve the admin API (/healthz, /readyz, /version, /metrics, /help) on this plain-HTTP address; it is always on the ws:// listeners",
            (text: string) => {
              const { host, port } = parseHostPort(text, true);
              return formatHostPort(host, port);
            },
          )
          .option("--metrics-public", "serve /metrics to any address, not only loopback ones", false)
          .option(
            "--allow-remote-operators",
            "accept operator connections from non-loopback addresses (no authentication yet: anyone reaching the port can call every agent)",
            false,
          ),
      ),
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
    const textUrls = textUrlsFrom(flags);
    if (textUrls.some((u) => u.startsWith("tls:")) && !tls)
      fail("--text tls://… needs --tls-cert and --tls-key", EXIT.USAGE);
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ reason: why }, "stopping");
      void server.close().then(() => process.exit(EXIT.OK));
    };
    let server: ReturnType<typeof createServer>;
    try {
      server = createServer({
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
        maxConnections: flags.maxConnections,
        maxConnectionsPerIp: flags.maxConnectionsPerIp,
        handshakesPerSecond: flags.handshakeRate,
        handshakeBurst: Math.max(1, flags.handshakeBurst),
        slowConsumerBytes: flags.slowConsumerBytes,
        slowConsumerMs: flags.slowConsumerAfter,
        maxFrameBytes: flags.maxFrame,
        maxJsonDepth: flags.maxJsonDepth,
        maxHelloBytes: flags.maxHello,
        admin: { ...(flags.admin ? { listen: flags.admin } : {}), metricsPublic: flags.metricsPublic },
        text: {
          listen: textUrls,
          hooks: cliTextHooks(flags, stop),
          ...(flags.textSecret !== undefined ? { secretCode: flags.textSecret } : {}),
        },
      });
    } catch (err) {
      fail((err as Error).message, EXIT.USAGE);
    }
    try {
      await server.start();
    } catch (err) {
      fail(`cannot start the server: ${(err as Error).message}`);
    }
    for (const l of server.listeners) process.stdout.write(`listening on ${l.url}\n`);
    for (const l of server.textListeners) process.stdout.write(`text on ${l.url}\n`);
    if (server.adminUrl) process.stdout.write(`admin on ${server.adminUrl}\n`);
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}
