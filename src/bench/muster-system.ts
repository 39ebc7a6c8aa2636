import { createAgent } from "../agent/create-agent.js";
import { createServer } from "../server/create-server.js";
import { makePayload } from "./payload.js";
import type { BenchClient, BenchPayload, BenchServer, BenchSystem } from "./types.js";

/** Server method `bench.echo` (the payload back) and server stream `bench.stream`. */
function musterSystem(scheme: "ws" | "tcp"): BenchSystem {
  return {
    name: `muster/${scheme}`,

    async startServer({ host, port }): Promise<BenchServer> {
      // Every client of the benchmark dials from loopback: no per-address limit (the peers have none).
      const server = createServer({
        listen: [`${scheme}://${host}:${port}`],
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
        servers: [`${scheme}://${host}:${port}`],
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

export const systems: BenchSystem[] = [musterSystem("tcp"), musterSystem("ws")];
