// muster.watch: an operator's live view of the agents — the list, then each change as it
// happens, on one server and across a cluster; a slow reader costs the server one name per agent.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { MemoryBackplane } from "../src/cluster/memory-bus.js";
import { connectOperator } from "../src/operator/create-operator.js";
import type { MusterStream } from "../src/rpc/stream.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import type { WatchItem } from "../src/server/watch-agents.js";
import { MemoryNetwork } from "../src/transport/memory.js";
import { quickReconnect } from "./support/fleet.js";

/** Reads items until `pred` holds for one; returns every item read. */
async function readUntil(
  it: AsyncIterator<WatchItem>,
  pred: (i: WatchItem) => boolean,
  what: string,
): Promise<WatchItem[]> {
  const seen: WatchItem[] = [];
  const timeout = new Promise<never>((_, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${what} in 10 s: ${JSON.stringify(seen)}`)), 10_000);
    t.unref();
  });
  for (;;) {
    const r = await Promise.race([it.next(), timeout]);
    assert.ok(!r.done, `the stream ended before ${what}`);
    seen.push(r.value);
    if (pred(r.value)) return seen;
  }
}

function agentOn(net: MemoryNetwork, name: string, server: string): MusterAgent {
  const a = createAgent({ name, servers: [`memory://${server}`], memory: net, reconnect: quickReconnect });
  a.start();
  return a;
}

describe("muster.watch", () => {
  it("on one server: the list, then joins, state changes and leaves as they happen", async () => {
    const net = new MemoryNetwork();
    const server = createServer({ listen: ["memory://s"], memory: net, standalone: true });
    await server.start();
    const first = agentOn(net, "web-1", "s");
    await first.connected();
    const op = await connectOperator({ server: "memory://s", memory: net, name: "ann" });
    let stream: MusterStream<WatchItem> | undefined;
    try {
      stream = op.watchAgents();
      const it = stream[Symbol.asyncIterator]();
      const [list] = await readUntil(it, (i) => i.type === "agents" && i.more !== true, "the list");
      assert.deepEqual(list?.type === "agents" && list.agents.map((a) => [a.name, a.state]), [
        ["web-1", "connected"],
      ]);
      const second = agentOn(net, "web-2", "s");
      await readUntil(
        it,
        (i) => i.type === "agent" && i.agent.name === "web-2" && i.agent.state === "connected",
        "web-2 joining",
      );
      await second.close();
      await readUntil(
        it,
        (i) => i.type === "agent" && i.agent.name === "web-2" && i.agent.state === "offline",
        "web-2 leaving (listed offline)",
      );
      await first.close();
    } finally {
      stream?.cancel();
      await op.close();
      await server.close();
    }
  });

  it("in a cluster: a watch on one server sees an agent join another", async () => {
    const hub = new MemoryBackplane();
    const net = new MemoryNetwork();
    const servers: MusterServer[] = ["s1", "s2"].map((name) =>
      createServer({
        name,
        listen: [`memory://${name}`],
        memory: net,
        standalone: true,
        cluster: { bus: hub.connect({ name }), refreshMs: 100 },
      }),
    );
    await Promise.all(servers.map((s) => s.start()));
    const op = await connectOperator({ server: "memory://s2", memory: net, name: "ann" });
    let stream: MusterStream<WatchItem> | undefined;
    const agents: MusterAgent[] = [];
    try {
      stream = op.watchAgents();
      const it = stream[Symbol.asyncIterator]();
      const [list] = await readUntil(it, (i) => i.type === "agents" && i.more !== true, "the list");
      assert.deepEqual(list?.type === "agents" && list.agents, []);
      agents.push(agentOn(net, "db-1", "s1"));
      const seen = await readUntil(
        it,
        (i) => i.type === "agent" && i.agent.name === "db-1" && i.agent.state === "connected",
        "db-1 joining s1",
      );
      const last = seen.at(-1);
      assert.equal(last?.type === "agent" && last.agent.server, "s1");
    } finally {
      stream?.cancel();
      await op.close();
      await Promise.all(agents.map((a) => a.close()));
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it("a large fleet's list comes in several items, each within the operator's frame", async () => {
    const net = new MemoryNetwork();
    const server = createServer({
      listen: ["memory://big"],
      memory: net,
      standalone: true,
      maxFrameBytes: 16 * 1024,
    });
    await server.start();
    const agents = Array.from({ length: 120 }, (_, i) =>
      agentOn(net, `node-${String(i).padStart(3, "0")}`, "big"),
    );
    await Promise.all(agents.map((a) => a.connected()));
    const op = await connectOperator({ server: "memory://big", memory: net, name: "ann" });
    let stream: MusterStream<WatchItem> | undefined;
    try {
      stream = op.watchAgents();
      const items = await readUntil(
        stream[Symbol.asyncIterator](),
        (i) => i.type === "agents" && i.more !== true,
        "the list",
      );
      assert.ok(items.length > 1, `the list in ${items.length} item(s)`);
      const names = items.flatMap((i) => (i.type === "agents" ? i.agents.map((a) => a.name) : []));
      assert.equal(new Set(names).size, 120);
    } finally {
      stream?.cancel();
      await op.close();
      await Promise.all(agents.map((a) => a.close()));
      await server.close();
    }
  });
});
