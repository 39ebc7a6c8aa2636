import { type AddressInfo, createServer as createNetServer } from "node:net";
import { createAgent } from "../agent/create-agent.js";
import { createServer } from "../server/create-server.js";
import { makePayload } from "./payload.js";
import type { BenchClient, BenchPayload, BenchServer, BenchSystem } from "./types.js";

/** Server method `bench.echo` (the payload back) and server stream `bench.stream`. */
/** `http` is long-polling (on a ws listener), dialled without trying WebSocket first. */
function musterSystem(scheme: "ws" | "tcp" | "grpc" | "http"): BenchSystem {
  const listenScheme = scheme === "http" ? "ws" : scheme;
  return {
    name: `muster/${scheme}`,

    async startServer({ host, port, extraHosts = [] }): Promise<BenchServer> {
      // More addresses listen on the first one's port, which must then be chosen first.
      const bound = extraHosts.length > 0 && port === 0 ? await freePort(host) : port;
      // Every client of the benchmark dials from loopback: no per-address limit (the peers have none).
      const server = createServer({
        listen: [host, ...extraHosts].map((h) => `${listenScheme}://${h}:${bound}`),
        maxConnectionsPerIp: 0,
        standalone: true,
      });
      server.handle("bench.echo", (p: BenchPayload) => p);
      // A stream under credit-based flow control: the agent's reading pace sets ours.
      server.handleStream("bench.stream", async function* (req: { count: number; size: number }) {
        const data = makePayload(0, req.size).data;
        for (let i = 0; i < req.count; i++) yield { i, data };
        return req.count;
      });
      await server.start();
      return {
        port: server.listeners[0]!.port,
        connected: () =>
          server.agents().filter((a) => a.state === "connected" || a.state === "suspect").length,
        async fanout(payload, timeoutMs) {
          const done = await server.call("all", "bench.echo", payload, { timeoutMs }).done;
          const replies: unknown[] = [];
          for (const o of done.outcomes) {
            if (o.status !== "ok") throw new Error(`${o.agent}: ${o.status} ${o.error?.message ?? ""}`);
            replies.push(o.value);
          }
          return replies;
        },
        close: () => server.close(),
      };
    },

    async connect({ host, port, index }): Promise<BenchClient> {
      const agent = createAgent({
        name: `bench-${index}`,
        servers: [`${scheme}://${host}:${port}${scheme === "http" ? "/?transport=polling" : ""}`],
        builtins: false,
      });
      agent.handle("bench.echo", (p: BenchPayload) => p);
      agent.start();
      await agent.connected();
      return {
        call: (payload) => agent.call("bench.echo", payload),
        async stream(count, size, onItem) {
          const s = agent.stream<BenchPayload>("bench.stream", { count, size });
          for await (const item of s) onItem(item);
          if (s.result !== count || s.received !== count)
            throw new Error(`stream ended after ${s.received} of ${count} items`);
        },
        close: () => agent.close(),
      };
    },
  };
}

/** A port free on `host` now (bound and released). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen({ host, port: 0 }, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export const systems: BenchSystem[] = [
  musterSystem("tcp"),
  musterSystem("ws"),
  musterSystem("grpc"),
  musterSystem("http"),
];
