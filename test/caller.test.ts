// Who a handler is called for (ctx.caller) when a server relays an operator's call, stream or
// text line; and the one fan-out shape that server.call() and operator.call() share.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKey } from "../src/auth/keys.js";
import { issueToken } from "../src/auth/tokens.js";
import { MemoryBackplane } from "../src/cluster/memory-bus.js";
import { connectOperator, type MusterOperator } from "../src/operator/create-operator.js";
import type { CallContext, CallerInfo } from "../src/rpc/types.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { MemoryNetwork } from "../src/transport/memory.js";
import { type Frame, FrameType } from "../src/wire/frame.js";
import { freePort } from "./support/cli.js";
import { quickReconnect } from "./support/fleet.js";
import { RawPeer } from "./support/raw-peer.js";

function whoami(agent: MusterAgent): void {
  agent.handle("whoami", (_req: unknown, ctx: CallContext) => ({ caller: ctx.caller, hop: ctx.peer.role }));
  agent.handleStream("whoami-stream", async function* (_req: unknown, ctx) {
    yield ctx.caller;
  });
}

describe("over TCP with tokens: an operator's relayed calls and streams", () => {
  let server: MusterServer;
  let agent: MusterAgent;
  let op: MusterOperator;
  let url: string;
  before(async () => {
    const key = generateKey();
    url = `tcp://127.0.0.1:${await freePort()}`;
    server = createServer({ name: "s1", listen: [url], auth: { key } });
    await server.start();
    agent = createAgent({
      name: "web-1",
      servers: [url],
      token: await issueToken(key, { role: "agent", subject: "web-1" }),
      reconnect: quickReconnect,
    });
    whoami(agent);
    agent.start();
    await agent.connected();
    op = await connectOperator({
      server: url,
      name: "ann-laptop",
      token: await issueToken(key, { role: "operator", subject: "ann" }),
    });
  });
  after(async () => {
    await op?.close();
    await agent?.close();
    await server?.close();
  });

  it("a relayed call names the operator as the caller and the server as the hop", async () => {
    const [o] = (await op.call<{ caller: CallerInfo; hop: string }>("web-1", "whoami").done).outcomes;
    assert.equal(o?.status, "ok", JSON.stringify(o));
    assert.deepEqual(o!.value, {
      caller: { role: "operator", name: "ann-laptop", subject: "ann", server: "s1", relayed: true },
      hop: "server",
    });
  });

  it("a relayed stream names the operator too", async () => {
    const items: unknown[] = [];
    for await (const item of op.stream("web-1", "whoami-stream")) items.push(item);
    assert.deepEqual(items, [
      { role: "operator", name: "ann-laptop", subject: "ann", server: "s1", relayed: true },
    ]);
  });

  it("the server's own call is direct: the caller is the server itself", async () => {
    const v = await server.callAgent<{ caller: CallerInfo }>("web-1", "whoami");
    assert.deepEqual(v.caller, { role: "server", name: "server", relayed: false });
  });

  it("server.call() and operator.call() return the same shape", async () => {
    const local = server.call("all", "whoami");
    const remote = op.call("all", "whoami");
    for (const fan of [local, remote]) {
      assert.ok(fan.expected instanceof Promise, "expected is a promise on both");
      assert.deepEqual([...(await fan.expected)], ["web-1"]);
      const seen: string[] = [];
      for await (const o of fan) seen.push(`${o.agent}:${o.status}`);
      assert.deepEqual(seen, ["web-1:ok"]);
      const done = await fan.done;
      assert.deepEqual(Object.keys(done).sort(), ["byAgent", "outcomes", "summary"]);
      assert.equal(done.outcomes.length, 1);
      assert.equal(done.byAgent.get("web-1")?.status, "ok");
      assert.deepEqual(done.summary, { ok: 1, error: 0, timeout: 0, notConnected: 0 });
      assert.deepEqual(fan.summary(), done.summary);
      assert.equal(typeof fan.cancel, "function");
    }
    assert.deepEqual(local.expectedNames, ["web-1"], "the server also knows them at once");
  });

  it("an operator's fan-out is cancelled by its AbortSignal", async () => {
    const abort = new AbortController();
    abort.abort();
    await assert.rejects(op.call("all", "whoami", undefined, { signal: abort.signal }).done, /CANCELLED/);
  });
});

describe("the ORIGIN frame on the wire", () => {
  let server: MusterServer;
  let url: string;
  const peers: RawPeer[] = [];
  before(async () => {
    url = `tcp://127.0.0.1:${await freePort()}`;
    server = createServer({ name: "s1", listen: [url], standalone: true });
    await server.start();
  });
  after(async () => {
    for (const p of peers) p.socket.destroy();
    await server?.close();
  });

  /** Has an operator call `method` on raw agent `name`, answers it, and returns what came before. */
  async function relayedTo(name: string, features?: string[]): Promise<Frame[]> {
    const raw = await RawPeer.join(url, "agent", name, features === undefined ? {} : { features });
    peers.push(raw);
    const op = await connectOperator({ server: url, name: "ann" });
    try {
      const fan = op.call(name, "work");
      const call = (await raw.waitFor((f) => f.type === FrameType.CALL, "the relayed CALL")) as Frame & {
        type: typeof FrameType.CALL;
      };
      raw.send({ type: FrameType.RESULT, id: call.id, payload: { kind: 0, bytes: new Uint8Array(0) } });
      assert.equal((await fan.done).summary.ok, 1);
      return raw.frames.filter((f) => f.seq > 0);
    } finally {
      await op.close();
    }
  }

  it("goes right ahead of the CALL to an agent that asked for it", async () => {
    const frames = await relayedTo("new-1", ["origin", "some-later-feature"]);
    const i = frames.findIndex((f) => f.type === FrameType.CALL);
    const origin = frames[i - 1];
    assert.equal(origin?.type, FrameType.ORIGIN, "an ORIGIN right before the CALL");
    assert.equal((origin as { id: number }).id, (frames[i] as { id: number }).id);
    assert.deepEqual((origin as { origin: unknown }).origin, {
      role: "operator",
      name: "ann",
      subject: "ann",
      server: "s1",
    });
  });

  it("is never sent to an agent that did not ask (an earlier version)", async () => {
    const frames = await relayedTo("old-1");
    assert.ok(frames.some((f) => f.type === FrameType.CALL));
    assert.ok(!frames.some((f) => f.type === FrameType.ORIGIN), "no ORIGIN frame");
  });

  it("a HELLO whose features are malformed is refused with a precise reason", async () => {
    await assert.rejects(
      RawPeer.join(url, "agent", "bad-1", { features: ["x".repeat(33)] }),
      /HELLO\.features must be an array of at most 16 strings of 1–32 characters/,
    );
  });
});

describe("in a cluster", () => {
  it("an operator on one server calling an agent on another: the caller names the first server", async () => {
    const hub = new MemoryBackplane();
    const net = new MemoryNetwork();
    const servers = ["s1", "s2"].map((name) =>
      createServer({
        name,
        listen: [`memory://${name}`],
        memory: net,
        standalone: true,
        cluster: { bus: hub.connect({ name }), refreshMs: 100 },
      }),
    );
    await Promise.all(servers.map((s) => s.start()));
    const agent = createAgent({
      name: "web-1",
      servers: ["memory://s1"],
      memory: net,
      reconnect: quickReconnect,
    });
    whoami(agent);
    agent.start();
    await agent.connected();
    const op = await connectOperator({ server: "memory://s2", memory: net, name: "ann" });
    try {
      let o: { status: string; value?: unknown } | undefined;
      // The directory reaches s2 within a refresh or two.
      for (let i = 0; i < 100; i++) {
        [o] = (await op.call("web-1", "whoami").done).outcomes;
        if (o?.status === "ok") break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(o?.value, {
        caller: { role: "operator", name: "ann", subject: "ann", server: "s2", relayed: true },
        hop: "server",
      });
      const items: unknown[] = [];
      for await (const item of op.stream("web-1", "whoami-stream")) items.push(item);
      assert.deepEqual(items, [
        { role: "operator", name: "ann", subject: "ann", server: "s2", relayed: true },
      ]);
    } finally {
      await op.close();
      await agent.close();
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});
