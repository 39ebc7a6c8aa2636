import { Agent, createServer, request, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * A small HTTP/1.1 reverse proxy of the kind that breaks WebSockets: it refuses every `Upgrade`
 * (502) and cuts a client connection idle for `idleMs` (no byte either way), a held request
 * included. It counts both.
 */
export class BreakingProxy {
  upgradesRefused = 0;
  idleCuts = 0;
  requests = 0;
  readonly #server: Server;
  readonly #agent = new Agent({ keepAlive: true });
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(targetPort: number, idleMs = 10_000): Promise<BreakingProxy> {
    const server = createServer();
    const proxy = new BreakingProxy(server);
    server.on("connection", (socket: Socket) => {
      proxy.#sockets.add(socket);
      socket.on("close", () => proxy.#sockets.delete(socket));
      socket.setTimeout(idleMs, () => {
        proxy.idleCuts++;
        socket.destroy();
      });
    });
    server.on("upgrade", (_req, socket: Socket) => {
      proxy.upgradesRefused++;
      socket.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    server.on("request", (req, res) => {
      proxy.requests++;
      const upstream = request(
        {
          host: "127.0.0.1",
          port: targetPort,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, connection: "keep-alive" },
          agent: proxy.#agent,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      res.on("close", () => {
        if (!res.writableFinished) upstream.destroy();
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#agent.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
