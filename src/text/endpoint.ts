import { createHash, timingSafeEqual } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { lstatSync, unlinkSync } from "node:fs";
import { connect, createServer as createNetServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { optionLimit } from "../internal/limits.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { readPeerCertificate } from "../transport/peer-certificate.js";
import { CLOSE_GRACE_MS, type ConnectionLimits, EndpointBudget, TextConnection } from "./connection.js";
import { PeerLogLimiter, type PeerLogLimits } from "./log-limiter.js";
import { MESSAGE_LIMITS, type Message, parseMessage } from "./message.js";
import type { TextContext, TextService, TextTransport } from "./service.js";
import { formatTextAddress, isLoopbackHost, parseTextAddress, type TextAddress } from "./url.js";

/** The largest UDP datagram a text endpoint takes (upstream's DATAGRAM_MAX_SIZE). */
export const UDP_MAX_BYTES = 1024;

export interface TextEndpointOptions {
  /** Handles every message received. */
  service: TextService;
  logger?: Logger;
  /**
   * Certificate and key (PEM) for `tls://` endpoints; with `ca`, clients are asked for a
   * certificate (not required: the service's guard judges it, see `TextContext.certificate`).
   */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer | (string | Buffer)[] };
  /**
   * UDP only: datagrams must carry `secret_code=<this>`, or they are dropped (logged). The
   * parameter is removed before the message is dispatched, so it never reaches a log.
   */
  secretCode?: string;
  /** @default MESSAGE_LIMITS.maxLineBytes (1 MiB) */
  maxLineBytes?: number;
  /** Connections held at once per stream endpoint; more are told so and closed. @default DEFAULTS.textMaxConnections (256) */
  maxConnections?: number;
  /**
   * A connection that has read and written nothing for this long, while none of its lines is
   * being handled, is closed (0: never). @default DEFAULTS.textIdleTimeoutMs (60 s)
   */
  idleTimeoutMs?: number;
  /**
   * Bytes of lines a connection may hold (waiting, or being handled) before its socket is no
   * longer read. @default DEFAULTS.textConnectionQueueBytes (1 MiB)
   */
  maxQueuedBytes?: number;
  /** Lines a connection may hold before its socket is no longer read. @default DEFAULTS.textConnectionQueueLines (64) */
  maxQueuedLines?: number;
  /**
   * Bytes all connections of the endpoint may hold, partial lines included; above it, those
   * holding anything are no longer read until it is back under three quarters.
   * @default DEFAULTS.textEndpointQueueBytes (16 MiB)
   */
  maxEndpointQueuedBytes?: number;
  /**
   * Unsent reply bytes a connection may hold before it is dropped as a slow consumer (from
   * 64 KiB on, its next line waits for the peer to read). @default DEFAULTS.textMaxBufferedBytes (8 MiB)
   */
  maxBufferedBytes?: number;
  /** How much is logged about peers: refused connections, lines and datagrams. */
  logLimits?: PeerLogLimits;
  /** Called for each accepted stream connection, before its first line is read (to greet it). */
  onConnection?(ctx: TextContext): void;
}

/** A listening text endpoint. */
export interface TextListener {
  /** Where it listens, with the bound port (`tcp://127.0.0.1:3001`, `unix:/run/x.sock`). */
  readonly url: string;
  readonly address: TextAddress;
  /** Stream connections open now (0 for UDP). */
  readonly connections: number;
  /** Bytes its connections hold now: lines waiting or being handled, partial lines (0 for UDP). */
  readonly heldBytes: number;
  /** Stops listening and closes every connection (after what each was sending). */
  close(): Promise<void>;
}

/** Datagrams handled at once; more are dropped (and logged). */
const UDP_IN_FLIGHT = 256;

/**
 * Starts a text endpoint: `tcp://host:port` (TLS with `tls://`) and `unix:/path` take one
 * message per line, `udp://host:port` one message per datagram (at most 1024 bytes). Lines
 * on one connection are handled one after the other, so replies come in order.
 */
export async function listenText(url: string, options: TextEndpointOptions): Promise<TextListener> {
  const address = parseTextAddress(url);
  const logger = options.logger ?? silentLogger;
  if (address.kind === "udp") return listenUdp(address, options, logger);
  if (address.kind === "tls" && options.tls === undefined)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `${url}: a tls:// text endpoint needs a certificate and key`,
    );
  const guarded = options.service.guarded;
  if (address.kind !== "unix" && !isLoopbackHost(address.host) && address.kind !== "tls" && !guarded)
    logger.warn(
      { url },
      "text endpoint on a non-loopback address: anyone who can reach it may signal this process and its agents",
    );
  return listenStream(address, options, logger);
}

function listenError(url: string, err: unknown): MusterError {
  const e = err as NodeJS.ErrnoException;
  return new MusterError(ErrorCode.UNAVAILABLE, `cannot listen on ${url}: ${e.code ?? e.message}`);
}

/** A Unix socket path left by a process that is gone is removed; one in use is an error. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `cannot listen on unix:${path}: it exists and is not a socket`,
    );
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
  if (alive)
    throw new MusterError(
      ErrorCode.UNAVAILABLE,
      `cannot listen on unix:${path}: another process listens there`,
    );
  unlinkSync(path);
}

async function listenStream(
  address: TextAddress,
  o: TextEndpointOptions,
  logger: Logger,
): Promise<TextListener> {
  const limits: ConnectionLimits = {
    maxLineBytes: optionLimit(o.maxLineBytes, MESSAGE_LIMITS.maxLineBytes, "maxLineBytes", 1),
    maxQueuedBytes: optionLimit(o.maxQueuedBytes, DEFAULTS.textConnectionQueueBytes, "maxQueuedBytes", 1),
    maxQueuedLines: optionLimit(o.maxQueuedLines, DEFAULTS.textConnectionQueueLines, "maxQueuedLines", 1),
    idleTimeoutMs: optionLimit(o.idleTimeoutMs, DEFAULTS.textIdleTimeoutMs, "idleTimeoutMs"),
    replyHighWaterBytes: DEFAULTS.textReplyHighWaterBytes,
    maxBufferedBytes: optionLimit(o.maxBufferedBytes, DEFAULTS.textMaxBufferedBytes, "maxBufferedBytes", 1),
  };
  const maxConnections = optionLimit(o.maxConnections, DEFAULTS.textMaxConnections, "maxConnections", 1);
  const budget = new EndpointBudget(
    optionLimit(o.maxEndpointQueuedBytes, DEFAULTS.textEndpointQueueBytes, "maxEndpointQueuedBytes", 1),
  );
  const log = new PeerLogLimiter(logger, o.logLimits);
  let closing: Promise<void> | undefined;
  const transport: TextTransport = address.kind === "udp" ? "tcp" : address.kind;
  const connections = new Map<Socket, TextConnection>();
  /** Refused connections, until they are gone: each is ended at once and cut soon after. */
  const refused = new Set<Socket>();
  const onSocket = (socket: Socket): void => {
    const peer =
      address.kind === "unix" ? `unix:${address.path}` : `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on("error", () => {});
    if (connections.size >= maxConnections || closing !== undefined) {
      log.log("warn", peer, { peer, maxConnections }, "text connection refused: too many connections");
      refused.add(socket);
      const cut = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
      cut.unref();
      socket.once("close", () => {
        clearTimeout(cut);
        refused.delete(socket);
      });
      // Read and drop what it sends, so that its end is seen and the socket freed at once.
      socket.resume();
      socket.end(`SERVICE_UNAVAILABLE message="too many text connections (${maxConnections})"\n`);
      return;
    }
    const remote = socket.remoteAddress;
    const certificate = readPeerCertificate(socket);
    const connection = new TextConnection({
      socket,
      transport,
      peer,
      local: address.kind === "unix" || (remote !== undefined && isLoopbackHost(remote)),
      service: o.service,
      limits,
      budget,
      log,
      logger,
      ...(remote !== undefined ? { remoteAddress: remote } : {}),
      ...(certificate !== undefined ? { certificate } : {}),
      ...(o.onConnection !== undefined ? { onConnection: o.onConnection } : {}),
    });
    connections.set(socket, connection);
    socket.once("close", () => connections.delete(socket));
  };
  const server: Server =
    address.kind === "tls"
      ? createTlsServer(
          {
            cert: o.tls!.cert,
            key: o.tls!.key,
            allowHalfOpen: true,
            // With a CA, a client certificate is asked for and judged by the service's guard.
            ...(o.tls!.ca !== undefined
              ? { ca: o.tls!.ca, requestCert: true, rejectUnauthorized: false }
              : {}),
          },
          onSocket,
        )
      : createNetServer({ allowHalfOpen: true }, onSocket);
  server.on("tlsClientError", (err: Error, socket: Socket) => {
    logger.debug(
      { error: err.message, peer: socket.remoteAddress },
      "TLS handshake failed on a text endpoint",
    );
  });
  if (address.kind === "unix") await clearStaleSocket(address.path);
  const url = formatTextAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(listenError(url, err)));
    if (address.kind === "unix") server.listen(address.path, resolve);
    else server.listen(address.port, address.host, resolve);
  });
  server.on("error", (err) => logger.error({ url, error: err.message }, "text endpoint error"));
  const bound =
    address.kind === "unix" ? address : { ...address, port: (server.address() as { port: number }).port };
  logger.info({ url: formatTextAddress(bound) }, "text endpoint listening");
  return {
    url: formatTextAddress(bound),
    address: bound,
    get connections() {
      return connections.size;
    },
    get heldBytes() {
      return budget.held;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Every connection ends after what it was sending; one whose peer does not close is cut.
        for (const c of connections.values()) c.close();
        for (const s of refused) s.destroy();
      }).then(() => {
        log.flush();
        if (address.kind === "unix") {
          try {
            unlinkSync(address.path);
          } catch {
            // already gone
          }
        }
      });
      return closing;
    },
  };
}

function secretMatches(expected: string, given: string): boolean {
  // Hash both so that the comparison is constant-time whatever the lengths.
  const a = createHash("sha256").update(expected).digest();
  const b = createHash("sha256").update(given).digest();
  return timingSafeEqual(a, b);
}

async function listenUdp(
  address: { readonly kind: "udp" | "tcp" | "tls"; readonly host: string; readonly port: number },
  o: TextEndpointOptions,
  logger: Logger,
): Promise<TextListener> {
  const socket: UdpSocket = createSocket({ type: address.host.includes(":") ? "udp6" : "udp4" });
  const log = new PeerLogLimiter(logger, o.logLimits);
  let inFlight = 0;
  const secret = o.secretCode;
  if (!isLoopbackHost(address.host) && secret === undefined && !o.service.guarded)
    logger.warn(
      { url: formatTextAddress(address) },
      "UDP text endpoint on a non-loopback address without a secret code: anyone who can reach it may signal this process",
    );
  socket.on("message", (buf: Buffer, rinfo: RemoteInfo) => {
    const peer = `${rinfo.address}:${rinfo.port}`;
    if (buf.length > UDP_MAX_BYTES) {
      log.log(
        "warn",
        peer,
        { peer, bytes: buf.length },
        `UDP text message dropped: over ${UDP_MAX_BYTES} bytes`,
      );
      return;
    }
    if (inFlight >= UDP_IN_FLIGHT) {
      log.log("warn", peer, { peer, inFlight }, "UDP text message dropped: too many being handled");
      return;
    }
    let text = buf.toString("utf8");
    if (text.endsWith("\n")) text = text.slice(0, -1);
    let message: Message;
    try {
      message = parseMessage(text);
    } catch (err) {
      const error = err instanceof MusterError ? err.rawMessage : String(err);
      log.log("warn", peer, { peer, error }, "UDP text message refused");
      return;
    }
    const given = message.get("secret_code");
    if (secret !== undefined) {
      if (given === undefined || !secretMatches(secret, given)) {
        const reason = given === undefined ? "no secret_code" : "wrong secret_code";
        log.log("warn", peer, { peer, command: message.command, reason }, "UDP text message dropped");
        return;
      }
    } else if (given !== undefined) {
      log.log(
        "warn",
        peer,
        { peer, command: message.command },
        "UDP text message has a secret_code, but none is expected",
      );
    }
    if (given !== undefined) {
      const params = new Map(message.params);
      params.delete("secret_code");
      message = message.with({ params });
    }
    const ctx: TextContext = {
      transport: "udp",
      peer,
      remoteAddress: rinfo.address,
      local: isLoopbackHost(rinfo.address),
      secretVerified: secret !== undefined,
      send(reply) {
        logger.debug(
          { peer, command: reply.command },
          "reply to a UDP message dropped: UDP carries no replies",
        );
      },
      close() {},
    };
    inFlight++;
    void o.service.receive(message, ctx).finally(() => inFlight--);
  });
  socket.on("error", (err) => logger.error({ error: err.message }, "UDP text endpoint error"));
  const url = formatTextAddress(address);
  await new Promise<void>((resolve, reject) => {
    socket.once("error", (err) => reject(listenError(url, err)));
    socket.bind(address.port, address.host, () => resolve());
  });
  const bound: TextAddress = { ...address, port: socket.address().port };
  logger.info({ url: formatTextAddress(bound) }, "text endpoint listening");
  let closing: Promise<void> | undefined;
  return {
    url: formatTextAddress(bound),
    address: bound,
    connections: 0,
    heldBytes: 0,
    close() {
      closing ??= new Promise<void>((resolve) => socket.close(() => resolve())).then(() => log.flush());
      return closing;
    },
  };
}

/** Starts every endpoint in `urls`; if one fails, those started are closed and the error thrown. */
export async function listenTextAll(
  urls: readonly string[],
  options: TextEndpointOptions,
): Promise<TextListener[]> {
  const started: TextListener[] = [];
  try {
    for (const url of urls) started.push(await listenText(url, options));
  } catch (err) {
    await Promise.all(started.map((l) => l.close()));
    throw err;
  }
  return started;
}
