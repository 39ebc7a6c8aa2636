import { connect, createServer, type Server, type Socket } from "node:net";

/** A TCP proxy between agents and a server, that can cut every connection on demand. */
export interface TcpProxy {
  /** Host:port agents should dial instead of the target. */
  readonly address: { host: string; port: number };
  /** Connections currently relayed. */
  readonly connections: number;
  /** Destroys every relayed connection at once (a network failure: both ends see a reset). */
  cutAll(): number;
  close(): Promise<void>;
}

/**
 * Starts a proxy on `127.0.0.1:listenPort` (0 = any free port) relaying to `target`.
 * Bytes are forwarded untouched, so it works for tcp:// and ws:// alike.
 */
export async function startTcpProxy(
  target: { host: string; port: number },
  listenPort = 0,
): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : listenPort;
  return {
    address: { host: "127.0.0.1", port },
    get connections() {
      return pairs.size;
    },
    cutAll() {
      const n = pairs.size;
      for (const [a, b] of [...pairs]) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
      return n;
    },
    close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
