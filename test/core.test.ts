import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AgentEvent } from "../src/agent/create-agent.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { fleet, quickReconnect, until } from "./support/fleet.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("server ⇄ agent core", () => {
  it("calls one agent and gets its sys.info and sys.ping", async () => {
    const f = await fleet();
    try {
      await f.addAgent("web-1", { labels: { role: "web" } });
      const info = await f.server.callAgent<{ name: string; labels: Record<string, string>; pid: number }>(
        "web-1",
        "sys.info",
      );
      assert.equal(info.name, "web-1");
      assert.deepEqual(info.labels, { role: "web" });
      assert.equal(info.pid, process.pid);
      const pong = await f.server.callAgent<{ pong: boolean }>("web-1", "sys.ping");
      assert.equal(pong.pong, true);
      const list = f.server.agents();
      assert.equal(list.length, 1);
      assert.equal(list[0]!.state, "connected");
      assert.equal(list[0]!.transport, "memory");
    } finally {
      await f.close();
    }
  });

  it("agents call the server; unknown methods fail with UNIMPLEMENTED", async () => {
    const f = await fleet();
    try {
      f.server.handle("add", (req: { a: number; b: number }, ctx) => ({
        sum: req.a + req.b,
        from: ctx.peer.name,
      }));
      const a = await f.addAgent("calc");
      assert.deepEqual(await a.call("add", { a: 2, b: 3 }), { sum: 5, from: "calc" });
      await assert.rejects(
        a.call("nope"),
        (e: MusterError) => e.code === "UNIMPLEMENTED" && /nope/.test(e.message),
      );
      await assert.rejects(
        f.server.callAgent("calc", "nope"),
        (e: MusterError) => e.code === "UNIMPLEMENTED" && /agent calc/.test(e.message),
      );
      await assert.rejects(
        f.server.callAgent("ghost", "sys.ping"),
        (e: MusterError) => e.code === "NOT_FOUND",
      );
    } finally {
      await f.close();
    }
  });

  it("gives every expected agent exactly one outcome: ok, error, timeout, not connected", async () => {
    const f = await fleet();
    try {
      const ok = await f.addAgent("ok-1", { labels: { role: "web" } });
      ok.handle("work", () => "done");
      const err = await f.addAgent("err-1", { labels: { role: "web" } });
      err.handle("work", () => {
        throw new Error("disk full");
      });
      const slow = await f.addAgent("slow-1", { labels: { role: "web" } });
      let slowAborted = false;
      slow.handle("work", (_r, ctx) => {
        return new Promise((resolve) => {
          ctx.signal.addEventListener("abort", () => {
            slowAborted = true;
            resolve("too late");
          });
        });
      });
      const gone = await f.addAgent("gone-1", { labels: { role: "web" } });
      await gone.close();
      await until(() => f.server.agent("gone-1")?.state === "offline", 2000, "gone-1 offline");
      await f.addAgent("db-1", { labels: { role: "db" } });

      const started = Date.now();
      const fan = f.server.call("role=web", "work", undefined, { timeoutMs: 300 });
      assert.deepEqual([...(await fan.expected)].sort(), ["err-1", "gone-1", "ok-1", "slow-1"]);
      const seen: string[] = [];
      for await (const o of fan) seen.push(`${o.agent}:${o.status}`);
      const elapsed = Date.now() - started;
      assert.deepEqual(seen.sort(), ["err-1:error", "gone-1:not_connected", "ok-1:ok", "slow-1:timeout"]);
      const all = (await fan.done).byAgent;
      assert.equal(all.get("ok-1")!.value, "done");
      assert.equal(all.get("err-1")!.error!.code, "INTERNAL");
      assert.match(all.get("err-1")!.error!.message, /disk full/);
      assert.equal(all.get("slow-1")!.error!.code, "DEADLINE_EXCEEDED");
      assert.deepEqual(fan.summary(), { ok: 1, error: 1, timeout: 1, notConnected: 1 });
      assert.ok(elapsed < 300 + 500, `outcomes by the deadline plus a margin, took ${elapsed} ms`);
      await until(() => slowAborted, 1000, "the slow handler to see its deadline/cancel");

      // Explicit names: an unknown name is expected too, and reported not connected.
      const byName = (await f.server.call("ok-1,nobody", "work").done).byAgent;
      assert.equal(byName.get("nobody")!.status, "not_connected");
      assert.equal(byName.get("ok-1")!.status, "ok");
      const glob = f.server.call("*-1", "sys.ping");
      assert.equal(glob.expectedNames.length, 5);
    } finally {
      await f.close();
    }
  });

  it("a call in flight across a drop completes exactly once after the resume", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("worker");
      const events: AgentEvent[] = [];
      a.onEvent((e) => events.push(e));
      let runs = 0;
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      a.handle("job", async () => {
        runs++;
        await gate;
        return "result";
      });
      const pending = f.server.callAgent("worker", "job", undefined, { timeoutMs: 5000 });
      await until(() => runs === 1, 2000, "the job to start");
      f.net.cutAll("test cut");
      release(); // the result is produced while the link is down
      assert.equal(await pending, "result");
      assert.equal(runs, 1, "the handler ran exactly once");
      await until(() => events.some((e) => e.type === "resumed"), 2000, "resumed event");
      const resumed = events.find((e) => e.type === "resumed");
      assert.ok(resumed && resumed.type === "resumed" && resumed.replayedToServer >= 1);
    } finally {
      await f.close();
    }
  });

  it("keeps calls in both directions exactly-once through many random cuts", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("busy");
      const served = new Map<number, number>();
      a.handle("echo", (n: number) => {
        served.set(n, (served.get(n) ?? 0) + 1);
        return n;
      });
      const srvSeen = new Map<number, number>();
      f.server.handle("up", (n: number) => {
        srvSeen.set(n, (srvSeen.get(n) ?? 0) + 1);
        return n * 2;
      });
      const N = 2000;
      const down: Promise<unknown>[] = [];
      const up: Promise<unknown>[] = [];
      let cuts = 0;
      for (let i = 0; i < N; i++) {
        down.push(f.server.callAgent("busy", "echo", i, { timeoutMs: 20_000 }));
        up.push(a.call("up", i, { timeoutMs: 20_000 }));
        if (i % 20 === 19) {
          await sleep(1);
          f.net.cutAll();
          cuts++;
        }
      }
      const d = await Promise.all(down);
      const u = await Promise.all(up);
      assert.ok(cuts >= 100);
      assert.deepEqual(
        d,
        Array.from({ length: N }, (_, i) => i),
      );
      assert.deepEqual(
        u,
        Array.from({ length: N }, (_, i) => i * 2),
      );
      for (let i = 0; i < N; i++) {
        assert.equal(served.get(i), 1, `agent handler for ${i} ran ${served.get(i)} times`);
        assert.equal(srvSeen.get(i), 1, `server handler for ${i} ran ${srvSeen.get(i)} times`);
      }
    } finally {
      await f.close();
    }
  });

  it("reports expired when the agent comes back after the resume window; pending calls fail clearly", async () => {
    const f = await fleet({ resumeWindowMs: 50, heartbeatIntervalMs: 40 });
    try {
      const a = await f.addAgent("late", { reconnect: { initialMs: 400, maxMs: 400, jitter: 0 } });
      const events: AgentEvent[] = [];
      a.onEvent((e) => events.push(e));
      a.handle("never", () => new Promise(() => {}));
      const fromServer = f.server.callAgent("late", "never", undefined, { timeoutMs: 10_000 });
      const toServer = a.call("missing-until-later", undefined, { timeoutMs: 10_000 });
      fromServer.catch(() => {}); // asserted below
      toServer.catch(() => {});
      f.server.handle("missing-until-later", () => new Promise(() => {}));
      await sleep(20);
      f.net.cutAll();
      await assert.rejects(fromServer, (e: MusterError) => e.code === "SESSION_EXPIRED");
      await assert.rejects(toServer, (e: MusterError) => e.code === "SESSION_EXPIRED");
      await until(() => events.some((e) => e.type === "expired"), 3000, "expired event");
      await until(() => a.state === "connected", 3000, "reconnected");
      assert.equal((await f.server.callAgent<{ pong: boolean }>("late", "sys.ping")).pong, true);
    } finally {
      await f.close();
    }
  });

  it("a newer connection under the same name replaces the stale session at once", async () => {
    const f = await fleet();
    try {
      const old = await f.addAgent("dup");
      const oldEvents: AgentEvent[] = [];
      old.onEvent((e) => oldEvents.push(e));
      old.handle("hang", () => new Promise(() => {}));
      const pending = f.server.callAgent("dup", "hang", undefined, { timeoutMs: 10_000 });
      pending.catch(() => {}); // asserted below
      await sleep(10);
      const started = Date.now();
      await f.addAgent("dup", { reconnect: quickReconnect });
      await assert.rejects(pending, (e: MusterError) => e.code === "REPLACED");
      assert.ok(Date.now() - started < 2000, "failed at once, not at the deadline");
      await until(() => oldEvents.some((e) => e.type === "replaced"), 2000, "replaced event");
      assert.equal(old.state, "closed");
      assert.equal(f.server.agents().filter((a) => a.name === "dup").length, 1);
    } finally {
      await f.close();
    }
  });

  it("streams presence events: join, disconnect, resume, leave", async () => {
    const f = await fleet();
    try {
      const events = f.server.events();
      const a = await f.addAgent("p-1");
      let resumed = false;
      a.onEvent((e) => {
        if (e.type === "resumed") resumed = true;
      });
      f.net.cutAll();
      await until(() => resumed && f.server.agent("p-1")?.state === "connected", 2000, "resume");
      await a.close();
      const types: string[] = [];
      for await (const e of events) {
        types.push(e.type);
        if (e.type === "leave") break;
      }
      assert.deepEqual(types, ["join", "disconnect", "resume", "leave"]);
    } finally {
      await f.close();
    }
  });

  it("agents retry for ever until the server appears", async () => {
    const { MemoryNetwork } = await import("../src/transport/memory.js");
    const { createAgent } = await import("../src/agent/create-agent.js");
    const { createServer } = await import("../src/server/create-server.js");
    const net = new MemoryNetwork();
    const agent = createAgent({
      name: "early",
      servers: ["memory://later"],
      memory: net,
      reconnect: quickReconnect,
    });
    const retries: AgentEvent[] = [];
    agent.onEvent((e) => e.type === "retry" && retries.push(e));
    agent.start();
    await until(() => retries.length >= 5, 3000, "retries");
    const server = createServer({ listen: ["memory://later"], memory: net, standalone: true });
    await server.start();
    try {
      await agent.connected();
      assert.equal(server.agent("early")?.state, "connected");
    } finally {
      await agent.close();
      await server.close();
    }
  });
});
