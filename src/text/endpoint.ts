import { createHash, timingSafeEqual } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { lstatSync, unlinkSync } from "node:fs";
import { connect, createServer as createNetServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { LineSplitter } from "./lines.js";
import { MESSAGE_LIMITS, Message, parseMessage } from "./message.js";
import type { TextContext, TextService, TextTransport } from "./service.js";
import { formatTextAddress, isLoopbackHost, parseTextAddress, type TextAddress } from "./url.js";

/** The largest UDP datagram a text endpoint takes (upstream's DATAGRAM_MAX_SIZE). */
export const UDP_MAX_BYTES = 1024;

export interface TextEndpointOptions {
  /** Handles every message received. */
  service: TextService;
  logger?: Logger;
  /** Certificate and key (PEM) for `tls://` endpoints. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * UDP only: datagrams must carry `secret_code=<this>`, or they are dropped (logged). The
   * parameter is removed before the message is dispatched, so it never reaches a log.
   */
  secretCode?: string;
  /** @default MESSAGE_LIMITS.maxLineBytes (1 MiB) */
  maxLineBytes?: number;
  /** Connections held at once per stream endpoint; more are told so and closed. @default 256 */
  maxConnections?: number;
  /**
   * Unsent reply bytes a connection may hold before it is dropped as a slow consumer.
   * @default 8 MiB
   */
  maxBufferedBytes?: number;
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
  /** Stops listening and closes every connection (after what each was sending). */
  close(): Promise<void>;
}

/** Lines read ahead of the one being handled before the socket is paused. */
const QUEUE_HIGH = 64;
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
  if (address.kind !== "unix" && !isLoopbackHost(address.host) && address.kind !== "tls")
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
  const maxLine = o.maxLineBytes ?? MESSAGE_LIMITS.maxLineBytes;
  const maxConnections = o.maxConnections ?? 256;
  const maxBuffered = o.maxBufferedBytes ?? 8 * 1024 * 1024;
  const transport: TextTransport = address.kind === "udp" ? "tcp" : address.kind;
  const sockets = new Set<Socket>();
  const onSocket = (socket: Socket): void => {
    const peer =
      address.kind === "unix" ? `unix:${address.path}` : `${socket.remoteAddress}:${socket.remotePort}`;
    if (sockets.size >= maxConnections) {
      logger.warn({ peer, maxConnections }, "text connection refused: too many connections");
      socket.end(`SERVICE_UNAVAILABLE message="too many text connections (${maxConnections})"\n`);
      socket.on("error", () => {});
      return;
    }
    sockets.add(socket);
    serveConnection(socket, { transport, peer, service: o.service, logger, maxLine, maxBuffered, o });
    socket.once("close", () => sockets.delete(socket));
  };
  const server: Server =
    address.kind === "tls"
      ? createTlsServer({ cert: o.tls!.cert, key: o.tls!.key, allowHalfOpen: true }, onSocket)
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
  let closing: Promise<void> | undefined;
  return {
    url: formatTextAddress(bound),
    address: bound,
    get connections() {
      return sockets.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) {
          s.end();
          // A peer that does not close its side in time is cut.
          setTimeout(() => s.destroy(), 1000).unref();
        }
      }).then(() => {
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

interface ConnectionSetup {
  transport: TextTransport;
  peer: string;
  service: TextService;
  logger: Logger;
  maxLine: number;
  maxBuffered: number;
  o: TextEndpointOptions;
}

function serveConnection(socket: Socket, c: ConnectionSetup): void {
  const { logger, peer } = c;
  const splitter = new LineSplitter(c.maxLine);
  // Lines waiting, in order; a `{ tooLong }` entry ends the connection once reached.
  const queue: (string | { tooLong: string })[] = [];
  let busy = false;
  let ended = false;
  let failed = false;
  let closed = false;
  const ctx: TextContext = {
    transport: c.transport,
    peer,
    send(message: Message) {
      if (closed || socket.destroyed || !socket.writable) {
        logger.debug({ peer, command: message.command }, "text reply dropped: the connection is closed");
        return;
      }
      socket.write(`${message.toString()}\n`);
      if (socket.writableLength > c.maxBuffered) {
        logger.warn(
          { peer, bufferedBytes: socket.writableLength },
          "text connection dropped: it does not read its replies",
        );
        socket.destroy();
      }
    },
    close() {
      if (closed) return;
      closed = true;
      socket.end();
    },
  };
  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    while (queue.length > 0 && !closed) {
      const item = queue.shift()!;
      if (queue.length < QUEUE_HIGH / 2 && socket.isPaused() && !failed) socket.resume();
      if (typeof item !== "string") {
        ctx.send(new Message({ command: "INVALID", params: { message: item.tooLong } }));
        ctx.close();
        break;
      }
      if (item.trim() === "") continue;
      await c.service.receiveLine(item, ctx);
    }
    busy = false;
    // The peer ended its side: answer what it sent, then end ours.
    if (ended && queue.length === 0) ctx.close();
  };
  socket.setNoDelay(true);
  socket.on("data", (chunk: Buffer) => {
    if (failed) return;
    try {
      splitter.push(chunk, (line) => queue.push(line));
    } catch (err) {
      // What came before the long line is answered first; nothing after it is read.
      const why = err instanceof MusterError ? err.rawMessage : String(err);
      logger.warn({ peer, error: why }, "text connection closed: line too long");
      failed = true;
      socket.pause();
      queue.push({ tooLong: why });
    }
    if (queue.length >= QUEUE_HIGH) socket.pause();
    void pump();
  });
  socket.on("end", () => {
    ended = true;
    // A last line without its newline still counts.
    if (!failed && splitter.pending > 0) splitter.push(Buffer.from("\n"), (line) => queue.push(line));
    void pump();
  });
  socket.on("error", (err) => logger.debug({ peer, error: err.message }, "text connection error"));
  socket.on("close", () => {
    closed = true;
  });
  c.o.onConnection?.(ctx);
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
  let inFlight = 0;
  const secret = o.secretCode;
  if (!isLoopbackHost(address.host) && secret === undefined)
    logger.warn(
      { url: formatTextAddress(address) },
      "UDP text endpoint on a non-loopback address without a secret code: anyone who can reach it may signal this process",
    );
  socket.on("message", (buf: Buffer, rinfo: RemoteInfo) => {
    const peer = `${rinfo.address}:${rinfo.port}`;
    if (buf.length > UDP_MAX_BYTES) {
      logger.warn({ peer, bytes: buf.length }, `UDP text message dropped: over ${UDP_MAX_BYTES} bytes`);
      return;
    }
    if (inFlight >= UDP_IN_FLIGHT) {
      logger.warn({ peer, inFlight }, "UDP text message dropped: too many being handled");
      return;
    }
    let text = buf.toString("utf8");
    if (text.endsWith("\n")) text = text.slice(0, -1);
    let message: Message;
    try {
      message = parseMessage(text);
    } catch (err) {
      logger.warn(
        { peer, error: err instanceof MusterError ? err.rawMessage : String(err) },
        "UDP text message refused",
      );
      return;
    }
    const given = message.get("secret_code");
    if (secret !== undefined) {
      if (given === undefined || !secretMatches(secret, given)) {
        logger.warn(
          {
            peer,
            command: message.command,
            reason: given === undefined ? "no secret_code" : "wrong secret_code",
          },
          "UDP text message dropped",
        );
        return;
      }
    } else if (given !== undefined) {
      logger.warn(
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
    close() {
      closing ??= new Promise<void>((resolve) => socket.close(() => resolve()));
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
