import { type AgentOptions, createAgent, type MusterAgent } from "../../src/agent/create-agent.js";
import { createServer, type MusterServer } from "../../src/server/create-server.js";
import type { ServerOptions } from "../../src/server/options.js";
import { MemoryNetwork } from "../../src/transport/memory.js";

/** Fast reconnects for tests. */
export const quickReconnect = { initialMs: 2, maxMs: 20, jitter: 0.5 } as const;

export interface Fleet {
  net: MemoryNetwork;
  server: MusterServer;
  agents: MusterAgent[];
  addAgent(name: string, extra?: Partial<AgentOptions>): Promise<MusterAgent>;
  close(): Promise<void>;
}

/** A server and agents over an in-process network; `close()` tears everything down. */
export async function fleet(serverOptions: Partial<ServerOptions> = {}): Promise<Fleet> {
  const net = new MemoryNetwork();
  const server = createServer({
    listen: ["memory://server"],
    memory: net,
    ...(serverOptions.auth === undefined ? { standalone: true } : {}),
    ...serverOptions,
  });
  await server.start();
  const agents: MusterAgent[] = [];
  return {
    net,
    server,
    agents,
    async addAgent(name, extra = {}) {
      const agent = createAgent({
        name,
        servers: ["memory://server"],
        memory: net,
        reconnect: quickReconnect,
        ...extra,
      });
      agents.push(agent);
      agent.start();
      await agent.connected();
      return agent;
    },
    async close() {
      await Promise.all(agents.map((a) => a.close()));
      await server.close();
    },
  };
}

/** Resolves when `predicate` holds, polling every few ms; fails after `ms`. */
export async function until(predicate: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
