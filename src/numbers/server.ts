/**
 * The numbers service: gRPC `grpc.Comms/GetNumbers` as in the Modest-as/server-client seed, so
 * that its unmodified Node client works against it, with the seed's faults fixed (see
 * docs/numbers.md): every command processed, precise errors, O(1) values, independent
 * sessions, resume by position, optional durable sessions and exact expiry.
 */
import { createServer as createNetServer } from "node:net";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { type Logger, silentLogger } from "../internal/logger.js";
import type { Conversation, NumbersCall } from "./conversation.js";
import { NUMBERS_DEFAULTS } from "./defaults.js";
import { commsService } from "./proto.js";
import { StatefulConversation } from "./stateful.js";
import { StatelessConversation } from "./stateless.js";
import { SessionStore } from "./store.js";

export type NumbersMode = "stateless" | "stateful";

export interface NumbersServerOptions {
  mode: NumbersMode;
  /** 0 picks a free port. @default 1337 */
  port?: number;
  /**
   * Where to listen. `localhost` means both 127.0.0.1 and ::1 (::1 skipped where the host has
   * no IPv6), whatever the resolver says, because clients dial the name and may get either.
   * @default "localhost"
   */
  host?: string;
  /** The pace of the numbers: one message per tick. @default 1000 */
  tickMs?: number;
  /** Stateful: keep sessions in this directory so they survive a restart or a crash. */
  stateDir?: string;
  /** Stateful: a session is forgotten this long after its last activity. @default 30000 */
  expiryMs?: number;
  logger?: Logger;
  /** Stateless first values, in [0, 1) like Math.random; for tests. @default crypto */
  random?: () => number;
}

export interface NumbersServer {
  readonly mode: NumbersMode;
  readonly port: number;
  /** Every address bound, `host:port` with IPv6 hosts in brackets. */
  readonly addresses: readonly string[];
  /** GetNumbers calls open now. */
  readonly activeStreams: number;
  /** Stateful sessions held (streamed or waiting for CONTINUE). */
  readonly sessions: number;
  /** Cancels every call (clients see UNAVAILABLE and may retry) and stops listening. */
  close(): Promise<void>;
}

const hostPort = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

function check(o: NumbersServerOptions): void {
  if (o.mode !== "stateless" && o.mode !== "stateful")
    throw new TypeError(`mode must be "stateless" or "stateful", got ${String(o.mode)}`);
  const port = o.port ?? NUMBERS_DEFAULTS.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new RangeError(`port must be an integer from 0 to 65535, got ${String(o.port)}`);
  for (const [name, v] of [
    ["tickMs", o.tickMs],
    ["expiryMs", o.expiryMs],
  ] as const)
    if (v !== undefined && !(Number.isFinite(v) && v > 0 && v <= 2 ** 31 - 1))
      throw new RangeError(`${name} must be a number of milliseconds above 0, got ${String(v)}`);
  if (o.stateDir !== undefined && o.mode !== "stateful")
    throw new TypeError("stateDir needs mode stateful: stateless streams have no session to keep");
}

/** Whether this host can listen on ::1 at all (containers often have IPv6 turned off). */
function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createNetServer();
    probe.once("error", (err: NodeJS.ErrnoException) =>
      resolve(err.code !== "EADDRNOTAVAIL" && err.code !== "EAFNOSUPPORT"),
    );
    probe.listen(0, "::1", () => probe.close(() => resolve(true)));
  });
}

function bind(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(hostPort(host, port), ServerCredentials.createInsecure(), (err, bound) => {
      if (!err) return resolve(bound);
      // grpc-js wraps the socket errors in a summary; the socket error is what helps.
      const inner = /errors: \[(.+)\]$/s.exec(err.message)?.[1];
      reject(new Error(inner ?? err.message, { cause: err }));
    }),
  );
}

/** Binds every host on one port; with port 0, tries a few free ports until one fits all. */
async function bindAll(server: Server, hosts: string[], port: number): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    let p = port;
    const done: string[] = [];
    try {
      for (const h of hosts) {
        p = await bind(server, h, p);
        done.push(hostPort(h, p));
      }
      return p;
    } catch (err) {
      for (const a of done) server.unbind(a);
      if (port !== 0 || attempt >= 5) throw err;
    }
  }
}

export async function startNumbersServer(options: NumbersServerOptions): Promise<NumbersServer> {
  check(options);
  const mode = options.mode;
  const log = options.logger ?? silentLogger;
  const tickMs = options.tickMs ?? NUMBERS_DEFAULTS.tickMs;
  const expiryMs = options.expiryMs ?? NUMBERS_DEFAULTS.expiryMs;
  const host = options.host ?? NUMBERS_DEFAULTS.host;
  const store =
    mode === "stateful"
      ? await SessionStore.open({ expiryMs, stateDir: options.stateDir, logger: log })
      : undefined;

  const conversations = new Set<Conversation>();
  let nextId = 1;
  const server = new Server({
    // Pings find clients that vanished without a FIN (a cable pulled, a black-holed link), so
    // their calls end and their sessions start to age.
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
  });
  server.addService(commsService().service, {
    GetNumbers: (call: NumbersCall) => {
      const clog = log.child({ stream: nextId++, peer: call.getPeer() });
      clog.debug("stream opened");
      const over = (c: Conversation): void => {
        conversations.delete(c);
      };
      conversations.add(
        store
          ? new StatefulConversation(call, tickMs, clog, over, store, expiryMs)
          : new StatelessConversation(call, tickMs, clog, over, options.random),
      );
    },
  });

  let hosts = [host];
  if (host === "localhost") {
    hosts = ["127.0.0.1"];
    if (await ipv6Loopback()) hosts.push("::1");
    else log.warn("no IPv6 on this host: listening on 127.0.0.1 only");
  }
  let port: number;
  try {
    port = await bindAll(server, hosts, options.port ?? NUMBERS_DEFAULTS.port);
  } catch (err) {
    server.forceShutdown();
    await store?.close();
    throw err;
  }
  const addresses = hosts.map((h) => hostPort(h, port));
  log.info({ addresses, mode, tickMs, expiryMs, stateDir: options.stateDir }, "numbers server listening");

  let closing: Promise<void> | undefined;
  return {
    mode,
    port,
    addresses,
    get activeStreams() {
      return conversations.size;
    },
    get sessions() {
      return store?.size ?? 0;
    },
    close() {
      closing ??= (async () => {
        for (const c of [...conversations]) c.abort();
        server.forceShutdown();
        await store?.close();
      })();
      return closing;
    },
  };
}
