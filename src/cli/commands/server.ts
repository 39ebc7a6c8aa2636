import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { type Command, InvalidArgumentError } from "commander";
import {
  type AuthKey,
  defaultKeyPath,
  generateKey,
  loadKeyFile,
  loadOrCreateKeyFile,
} from "../../auth/keys.js";
import { defaultRevocationsPath, RevocationList } from "../../auth/revocations.js";
import { checkAdvertised } from "../../cluster/cluster-node.js";
import { connectNatsBus } from "../../cluster/nats-bus.js";
import { checkClusterName } from "../../cluster/node-subjects.js";
import type { MusterError } from "../../errors/muster-error.js";
import { DEFAULTS } from "../../internal/defaults.js";
import { formatHostPort } from "../../internal/host-port.js";
import type { Logger } from "../../internal/logger.js";
import type { ServerAuthOptions } from "../../server/auth-gate.js";
import { createServer } from "../../server/create-server.js";
import type { FlagSource } from "../../server/flags.js";
import type { ClusterOptions } from "../../server/options.js";
import { parseTextAddress } from "../../text/url.js";
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
import { configChecked, withConfigFile } from "../config-file.js";
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
  standalone: boolean;
  authKey?: string;
  approve: boolean;
  maxEnrolmentsPerToken?: number;
  maxEnrolmentsPerAddress?: number;
  revocations?: string;
  agentMethods?: string;
  tlsClientCa?: string;
  drainTimeout: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  handshakeRate: number;
  handshakeBurst: number;
  slowConsumerBytes: number;
  slowConsumerAfter: number;
  maxFrame: number;
  maxJsonDepth: number;
  maxHello: number;
  maxStreamWindow: number;
  maxRelayedCallsPerAgent: number;
  ipv6Prefix: number;
  allowOrigin?: string[];
  httpHeadersTimeout: number;
  httpRequestTimeout: number;
  cluster?: string[];
  clusterName: string;
  advertiseHost?: string;
  advertise?: string[];
  config?: string;
  checkConfig: boolean;
}

/** What `muster flags` says of a value, by where commander found it. */
const SOURCES: Record<string, FlagSource> = {
  cli: "option",
  env: "option",
  implied: "option",
  config: "file",
};

export function registerServer(program: Command): void {
  const command = withLogOptions(
    withTextOptions(
      withDecodeLimits(
        program
          .command("server")
          .description(
            `run a server: agents dial it, operators call through it (default: ws://0.0.0.0:${DEFAULTS.wsPort} and tcp://0.0.0.0:${DEFAULTS.tcpPort})`,
          )
          .option(
            "--listen <url>",
            "where to listen, repeatable: ws://host:port, wss://…, tcp://host:port, tls://…, grpc://host:port, grpcs://…",
            collectList,
          )
          .option("--name <name>", "server name shown to peers (default: host name); unique within a cluster")
          .option(
            "--cluster <url>",
            "join a cluster: servers given the same NATS server (nats://host:4222, run with -js) share one fleet; repeatable for a NATS cluster",
            collectList,
          )
          .option(
            "--cluster-name <name>",
            "servers of one cluster share this name; several clusters may share one NATS",
            "muster",
          )
          .option(
            "--advertise-host <host>",
            "with --cluster: the host other servers' agents reach this one at (default: each --listen host, or this machine's host name for 0.0.0.0 and ::)",
          )
          .option(
            "--advertise <url>",
            "with --cluster: a URL other servers' agents reach this one at, instead of the --listen URLs (behind a proxy, a port mapping or a load balancer); repeatable, up to 8",
            collectList,
          )
          .option(
            "--tls-cert <file>",
            "PEM certificate: listen on wss:// and tls:// by default; grpcs:// needs it too",
          )
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
            "connections held at once, HTTP ones included; more get CLOSE busy (HTTP: 503) with a retry hint (0: no limit)",
            parseCount,
            DEFAULTS.maxConnections,
          )
          .option(
            "--max-connections-per-ip <n>",
            "connections held at once from one IP address (an IPv6 /64, see --ipv6-prefix), HTTP ones included (0: no limit)",
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
            "--ipv6-prefix <bits>",
            "per-address limits count an IPv6 client by its network of this many bits (128: each address)",
            parseCount,
            DEFAULTS.ipv6PrefixBits,
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
            "largest handshake (HELLO) accepted; a larger first frame is refused from its header (TCP, WebSocket)",
            parseBytes,
            DEFAULTS.maxHelloBytes,
          )
          .option(
            "--max-stream-window <size>",
            "largest window the server holds for a stream it relays (muster stream --window is capped to it)",
            parseBytes,
            DEFAULTS.maxStreamWindowBytes,
          )
          .option(
            "--max-relayed-calls-per-agent <n>",
            "calls one operator may relay to one agent at once; more are refused with RESOURCE_EXHAUSTED",
            parseCount,
            DEFAULTS.maxRelayedCallsPerAgent,
          )
          .option(
            "--http-headers-timeout <duration>",
            "an HTTP connection (admin API, WebSocket upgrade) must send its headers within this time, or it is answered 408 and closed",
            parseDuration,
            DEFAULTS.httpHeadersTimeoutMs,
          )
          .option(
            "--http-request-timeout <duration>",
            "an HTTP request must arrive whole (headers and body) within this time",
            parseDuration,
            DEFAULTS.httpRequestTimeoutMs,
          )
          .option(
            "--allow-origin <origin>",
            "web origin whose pages may open WebSocket connections (https://host[:port]), repeatable; other browser origins get 403 (default: none)",
            collectList,
          )
          .option(
            "--admin <host:port>",
            "also serve the admin API (/healthz, /readyz, /version, /metrics, /help) and the dashboard (/ui/) on this plain-HTTP address; both are always on the ws:// listeners",
            (text: string) => {
              const { host, port } = parseHostPort(text, true);
              return formatHostPort(host, port);
            },
          )
          .option("--metrics-public", "serve /metrics without a token", false)
          .option(
            "--auth-key <file>",
            "key that tokens are verified with: Ed25519 private or public key, or HMAC secret (default: $MUSTER_AUTH_KEY, else $MUSTER_HOME/auth.key, else ~/.muster/auth.key, created when missing)",
          )
          .option(
            "--revocations <file>",
            "revoked token ids, watched: a revocation ends live sessions within a second (default: $MUSTER_HOME/revoked.txt)",
          )
          .option(
            "--approve",
            "enrolment: agents with an enrol token wait as pending until `muster agents accept NAME`",
            false,
          )
          .option(
            "--max-enrolments-per-token <n>",
            `with --approve: enrolment requests waiting at once made with one enrol token; more are told busy (default: ${DEFAULTS.enrolmentMaxPendingPerToken})`,
            parsePositive,
          )
          .option(
            "--max-enrolments-per-address <n>",
            `with --approve: enrolment requests waiting at once from one address, an IPv6 /64 (default: ${DEFAULTS.enrolmentMaxPendingPerAddress})`,
            parsePositive,
          )
          .option(
            "--agent-methods <globs>",
            "server methods agents may call when their token grants none, comma-separated globs (default: none)",
          )
          .option(
            "--tls-client-ca <file>",
            "PEM CA for client certificates: a certificate it signed is an identity (CN the name, OU the role)",
          )
          .option(
            "--drain-timeout <duration>",
            "on SIGTERM, SIGINT or /api/shutdown: how long calls in flight may finish (a second signal exits at once)",
            parseDuration,
            DEFAULTS.drainTimeoutMs,
          )
          .option(
            "--standalone",
            "no authentication: loopback connections only, with a warning in the log and /readyz",
            false,
          ),
      ),
    ),
  ).action(async (flags: ServerFlags, cmd: Command) => {
    // Given on the command line, in the environment or in the config file, as opposed to a default.
    const given = (key: string): boolean => {
      const source = cmd.getOptionValueSource(key);
      return source !== undefined && source !== "default";
    };
    // For `muster flags`: option (command line, environment) before file before default.
    const sourceOf = (...keys: string[]): FlagSource => {
      const sources = keys.map((k) => SOURCES[cmd.getOptionValueSource(k) ?? "default"] ?? "default");
      return sources.includes("option") ? "option" : sources.includes("file") ? "file" : "default";
    };
    const check = flags.checkConfig;
    // A check writes nothing: not even the log file.
    const logger = loggerFrom(check ? { ...flags, logFile: undefined } : flags, "muster-server");
    if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey))
      fail("--tls-cert and --tls-key go together", EXIT.USAGE);
    if (flags.tlsClientCa && !flags.tlsCert)
      fail("--tls-client-ca needs --tls-cert and --tls-key", EXIT.USAGE);
    const tls =
      flags.tlsCert && flags.tlsKey
        ? {
            cert: readFileOrFail(flags.tlsCert, "--tls-cert"),
            key: readFileOrFail(flags.tlsKey, "--tls-key"),
            ...(flags.tlsClientCa ? { ca: readFileOrFail(flags.tlsClientCa, "--tls-client-ca") } : {}),
          }
        : undefined;
    const auth = flags.standalone ? undefined : authFrom(flags, check);
    if (flags.standalone) {
      for (const [set, name] of [
        [flags.authKey, "--auth-key"],
        [flags.approve || undefined, "--approve"],
        [flags.tlsClientCa, "--tls-client-ca"],
        [flags.agentMethods, "--agent-methods"],
        [flags.revocations, "--revocations"],
        [flags.maxEnrolmentsPerToken, "--max-enrolments-per-token"],
        [flags.maxEnrolmentsPerAddress, "--max-enrolments-per-address"],
        [flags.allowOrigin, "--allow-origin"],
      ] as const)
        if (set !== undefined)
          fail(`--standalone has no authentication: ${name} does not go with it`, EXIT.USAGE);
    }
    const textUrls = textUrlsFrom(flags);
    if (textUrls.some((u) => u.startsWith("tls:")) && !tls)
      fail("--text tls://… needs --tls-cert and --tls-key", EXIT.USAGE);
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) {
        // A text message never cuts the drain short; a second signal on this machine does.
        if (why === "STOP" || why === "QUITTING") {
          logger.warn({ reason: why }, "stop asked again while draining: the drain goes on");
          return;
        }
        logger.warn({ reason: why }, "second stop request: exiting now");
        process.exit(EXIT.FAILED);
      }
      stopping = true;
      logger.info(
        { reason: why, drainTimeoutMs: server.flags.get("drain-timeout")?.value },
        "stopping: draining",
      );
      void server.drain();
    };
    if (flags.cluster === undefined && flags.advertiseHost !== undefined)
      fail("--advertise-host goes with --cluster", EXIT.USAGE);
    if (flags.advertise !== undefined) {
      if (flags.cluster === undefined) fail("--advertise goes with --cluster", EXIT.USAGE);
      if (flags.advertiseHost !== undefined)
        fail("give --advertise (whole URLs) or --advertise-host (a host), not both", EXIT.USAGE);
      try {
        checkAdvertised(flags.advertise);
      } catch (err) {
        fail(`--${(err as Error).message}`, EXIT.USAGE);
      }
    }
    if (flags.cluster === undefined && flags.clusterName !== "muster")
      fail("--cluster-name goes with --cluster", EXIT.USAGE);
    const cluster = flags.cluster === undefined ? undefined : await joinCluster(flags, logger, check);
    let server: ReturnType<typeof createServer>;
    try {
      server = createServer({
        ...(cluster ? { cluster } : {}),
        ...(flags.listen ? { listen: flags.listen } : {}),
        ...(flags.name ? { name: flags.name } : {}),
        ...(tls ? { tls } : {}),
        logger,
        ...(given("resumeWindow") && { resumeWindowMs: flags.resumeWindow }),
        ...(given("heartbeat") && {
          heartbeatIntervalMs: flags.heartbeat,
          suspectAfterMs: Math.max(DEFAULTS.suspectAfterMs, flags.heartbeat * 2.4),
          deadAfterMs: Math.max(DEFAULTS.deadAfterMs, flags.heartbeat * 6),
        }),
        ...(given("callTimeout") && { callTimeoutMs: flags.callTimeout }),
        ...(given("drainTimeout") && { drainTimeoutMs: flags.drainTimeout }),
        logLevelGiven: given("logLevel") || given("trace"),
        flagSources: {
          "log-level": sourceOf("logLevel", "trace"),
          trace: sourceOf("logLevel", "trace"),
          "heartbeat-interval": sourceOf("heartbeat"),
          "resume-window": sourceOf("resumeWindow"),
          "call-timeout": sourceOf("callTimeout"),
          "drain-timeout": sourceOf("drainTimeout"),
        },
        ...(auth !== undefined ? { auth } : { standalone: true }),
        maxConnections: flags.maxConnections,
        maxConnectionsPerIp: flags.maxConnectionsPerIp,
        ipv6PrefixBits: flags.ipv6Prefix,
        handshakesPerSecond: flags.handshakeRate,
        handshakeBurst: Math.max(1, flags.handshakeBurst),
        slowConsumerBytes: flags.slowConsumerBytes,
        slowConsumerMs: flags.slowConsumerAfter,
        maxFrameBytes: flags.maxFrame,
        maxJsonDepth: flags.maxJsonDepth,
        maxHelloBytes: flags.maxHello,
        maxStreamWindowBytes: flags.maxStreamWindow,
        maxRelayedCallsPerAgent: flags.maxRelayedCallsPerAgent,
        httpHeadersTimeoutMs: flags.httpHeadersTimeout,
        httpRequestTimeoutMs: flags.httpRequestTimeout,
        ...(flags.allowOrigin ? { allowedOrigins: flags.allowOrigin } : {}),
        admin: { ...(flags.admin ? { listen: flags.admin } : {}), metricsPublic: flags.metricsPublic },
        text: {
          listen: textUrls,
          hooks: cliTextHooks(flags, stop),
          idleTimeoutMs: flags.textIdleTimeout,
          ...(flags.textSecret !== undefined ? { secretCode: flags.textSecret } : {}),
        },
      });
    } catch (err) {
      fail((err as Error).message, EXIT.USAGE);
    }
    if (check) configChecked(flags.config);
    try {
      await server.start();
    } catch (err) {
      fail(`cannot start the server: ${(err as Error).message}`);
    }
    for (const l of server.listeners) process.stdout.write(`listening on ${l.url}\n`);
    for (const l of server.textListeners) process.stdout.write(`text on ${l.url}\n`);
    if (server.adminUrl) process.stdout.write(`admin on ${server.adminUrl}\n`);
    if (flags.standalone)
      process.stdout.write("WARNING: standalone mode: no authentication, loopback connections only\n");
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
    // However the server ends (a signal, STOP, /api/shutdown), the process ends with it.
    void server.closed.then(() => process.exit(EXIT.OK));
  });
  withConfigFile(command, { text: parseTextAddress });
}

/**
 * Connects to the cluster's NATS server (exits 2 on a bad flag, 3 when it cannot be reached);
 * with `check`, only checks the flags.
 */
async function joinCluster(
  flags: ServerFlags,
  logger: Logger,
  check: boolean,
): Promise<ClusterOptions | undefined> {
  try {
    checkClusterName(flags.clusterName);
  } catch (err) {
    fail(`--cluster-name: ${(err as Error).message}`, EXIT.USAGE);
  }
  const urls = flags.cluster ?? [];
  for (const u of urls)
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(u))
      fail(`--cluster ${JSON.stringify(u)}: give a NATS URL such as nats://127.0.0.1:4222`, EXIT.USAGE);
  if (check) return undefined;
  try {
    const bus = await connectNatsBus(urls, {
      name: `muster-server ${flags.name ?? hostname()}`,
      logger: logger.child({ component: "nats" }),
    });
    return {
      bus,
      name: flags.clusterName,
      ...(flags.advertiseHost !== undefined ? { advertiseHost: flags.advertiseHost } : {}),
      ...(flags.advertise !== undefined ? { advertise: flags.advertise } : {}),
    };
  } catch (err) {
    fail(
      `cannot join the cluster: ${(err as MusterError).rawMessage ?? (err as Error).message}`,
      EXIT.UNREACHABLE,
    );
  }
}

/** A count of at least 1 (a cap of 0 would refuse every enrolment). */
function parsePositive(text: string): number {
  const n = parseCount(text);
  if (n < 1) throw new InvalidArgumentError(`"${text}" must be at least 1`);
  return n;
}

/**
 * The authentication of `muster server` from its flags (exits 2 with a clear message). With
 * `check`, a default key that does not exist yet is not created: a key of the moment stands in.
 */
function authFrom(flags: ServerFlags, check: boolean): ServerAuthOptions {
  let key: AuthKey;
  let notYet = false;
  try {
    if (flags.authKey !== undefined) {
      if (!existsSync(flags.authKey))
        fail(
          `--auth-key: ${flags.authKey} does not exist; make one with: muster token keygen --key ${flags.authKey}`,
          EXIT.USAGE,
        );
      key = loadKeyFile(flags.authKey);
    } else {
      const path = defaultKeyPath();
      notYet = check && !existsSync(path);
      if (notYet) {
        process.stdout.write(`signing key ${path} does not exist yet: it is created at the first start\n`);
        key = generateKey();
      } else {
        const made = loadOrCreateKeyFile(path);
        key = made.key;
        if (made.created)
          process.stdout.write(`created signing key ${path} (fingerprint ${key.fingerprint})\n`);
      }
    }
  } catch (err) {
    fail(`--auth-key: ${(err as MusterError).rawMessage ?? (err as Error).message}`, EXIT.USAGE);
  }
  const revocations = new RevocationList({ path: flags.revocations ?? defaultRevocationsPath() });
  try {
    revocations.load();
  } catch (err) {
    fail(`--revocations: ${(err as MusterError).rawMessage ?? (err as Error).message}`, EXIT.USAGE);
  }
  const auth: ServerAuthOptions = { key, revocations, approve: flags.approve };
  for (const [value, name] of [
    [flags.maxEnrolmentsPerToken, "--max-enrolments-per-token"],
    [flags.maxEnrolmentsPerAddress, "--max-enrolments-per-address"],
  ] as const)
    if (value !== undefined && !flags.approve) fail(`${name} goes with --approve`, EXIT.USAGE);
  if (flags.maxEnrolmentsPerToken !== undefined)
    auth.enrolmentMaxPendingPerToken = flags.maxEnrolmentsPerToken;
  if (flags.maxEnrolmentsPerAddress !== undefined)
    auth.enrolmentMaxPendingPerAddress = flags.maxEnrolmentsPerAddress;
  if (flags.tlsClientCa) auth.certificates = true;
  if (flags.agentMethods !== undefined) {
    const globs = flags.agentMethods
      .split(",")
      .map((g) => g.trim())
      .filter((g) => g !== "");
    if (globs.length === 0) fail("--agent-methods: give comma-separated method globs", EXIT.USAGE);
    auth.agentMethods = globs;
  }
  if (!notYet)
    process.stdout.write(`auth key ${key.source} (${key.algorithm}, fingerprint ${key.fingerprint})\n`);
  return auth;
}
