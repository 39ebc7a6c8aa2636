import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import { type AgentEvent, createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import type { Logger } from "../src/internal/logger.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { quickReconnect, until } from "./support/fleet.js";

async function standalone(extra: Parameters<typeof createServer>[0] = {}): Promise<MusterServer> {
  const server = createServer({ listen: ["tcp://127.0.0.1:0"], standalone: true, ...extra });
  await server.start();
  return server;
}

function agentOf(
  urls: string[],
  name: string,
  extra: Partial<Parameters<typeof createAgent>[0]> = {},
): MusterAgent {
  const agent = createAgent({ name, servers: urls, reconnect: quickReconnect, ...extra });
  agent.handle("slow", async (ms: number) => {
    await new Promise((r) => setTimeout(r, ms));
    return ms;
  });
  agent.handle(
    "forever",
    (_req, ctx) =>
      new Promise((_r, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))),
  );
  agent.start();
  return agent;
}

describe("graceful shutdown (drain)", () => {
  it("during a fan-out: the calls finish, new sessions and calls are refused, then agents are told to go", async () => {
    const server = await standalone();
    server.handle("work", () => "done");
    const url = server.listeners[0]!.url;
    const agents = ["d1", "d2", "d3"].map((n) => agentOf([url], n));
    try {
      await Promise.all(agents.map((a) => a.connected()));
      const events: AgentEvent[] = [];
      agents[0]!.onEvent((e) => events.push(e));
      const fan = server.call("all", "slow", 400, { timeoutMs: 5000 });
      await until(() => server.agents().every((a) => a.pendingCalls === 1), 2000, "calls in flight");
      const drained = server.drain({ timeoutMs: 5000 });
      assert.equal(server.readiness, "draining");
      // A new session is refused with a retry hint, pointing elsewhere.
      const late = agentOf([url], "late");
      const refused = await new Promise<string>((res) =>
        late.onEvent((e) => e.type === "retry" && res(e.error)),
      );
      assert.match(refused, /\(shutdown\): the server is draining: connect to another server/);
      await late.close();
      // A new call from a connected agent is refused; the ones in flight go on.
      await assert.rejects(agents[1]!.call("work"), (e: MusterError) => {
        assert.equal(e.code, ErrorCode.UNAVAILABLE);
        assert.match(e.message, /the server is draining: work refused, call another server/);
        return true;
      });
      const outcomes = [];
      for await (const o of fan) outcomes.push(o);
      assert.deepEqual(
        outcomes.map((o) => [o.status, o.value]),
        [
          ["ok", 400],
          ["ok", 400],
          ["ok", 400],
        ],
      );
      const result = await drained;
      assert.equal(result.abandoned, 0);
      await server.closed;
      await until(() => events.some((e) => e.type === "disconnected"), 3000, "the agent told");
      const down = events.find((e) => e.type === "disconnected") as { code: string; reason: string };
      assert.equal(down.code, "shutdown");
      assert.match(down.reason, /reconnect to another server/);
      assert.equal(server.drain(), server.drain(), "drain is idempotent");
    } finally {
      await Promise.all(agents.map((a) => a.close()));
      await server.close();
    }
  });

  it("calls still running at the drain timeout are ended; nothing hangs", async () => {
    const server = await standalone({ drainTimeoutMs: 200 });
    const agent = agentOf([server.listeners[0]!.url], "stuck");
    try {
      await agent.connected();
      const call = server.callAgent("stuck", "forever", undefined, { timeoutMs: 60_000 });
      await until(() => server.agent("stuck")?.pendingCalls === 1, 2000, "the call in flight");
      const result = await server.drain();
      assert.equal(result.abandoned, 1);
      await assert.rejects(call, (e: MusterError) => e.code === ErrorCode.CLOSED);
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it("an agent told the server shuts down moves on to its next server", async () => {
    const a = await standalone();
    const b = await standalone();
    // In order, so that it starts on the server that drains.
    const agent = agentOf([a.listeners[0]!.url, b.listeners[0]!.url], "mover", { serverOrder: "ordered" });
    try {
      await agent.connected();
      assert.equal(a.agent("mover")?.state, "connected");
      await a.drain();
      await until(() => b.agent("mover")?.state === "connected", 5000, "the agent on the second server");
      assert.equal(await b.callAgent("mover", "slow", 1), 1);
    } finally {
      await agent.close();
      await a.close();
      await b.close();
    }
  });
});

describe("runtime flags, applied live", () => {
  it("heartbeat interval is pushed to connected agents; call timeout, resume window and log level apply at once", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) };
    const serverLog = pino({ level: "info" }, sink) as unknown as Logger;
    const agentLog = pino({ level: "info" }, sink) as unknown as Logger;
    const server = await standalone({ logger: serverLog });
    const agent = agentOf([server.listeners[0]!.url], "flagged", { logger: agentLog });
    try {
      await agent.connected();
      const before = server.flags.list();
      assert.deepEqual(before.map((f) => f.name).sort(), [
        "call-timeout",
        "drain-timeout",
        "heartbeat-interval",
        "log-level",
        "resume-window",
        "trace",
      ]);
      assert.equal(server.flags.get("heartbeat-interval")?.value, 5000);
      assert.equal(server.flags.get("heartbeat-interval")?.source, "default");

      server.flags.set({ "heartbeat-interval": "250ms", "call-timeout": 150, "log-level": "debug" }, "test");
      await until(
        () => lines.some((l) => l.msg === "heartbeat interval changed" && l.heartbeatIntervalMs === 250),
        3000,
        "the agent to take the new heartbeat",
      );
      const change = lines.find((l) => l.flag === "heartbeat-interval");
      assert.equal(change?.by, "test");
      assert.equal(server.flags.get("heartbeat-interval")?.source, "api");
      assert.equal((serverLog as unknown as { level: string }).level, "debug");
      // The default call timeout is the new one for calls that name none.
      const outcome = (await server.call("flagged", "slow", 2000).done).byAgent.get("flagged");
      assert.equal(outcome?.status, "timeout");
      assert.match(outcome?.error?.message ?? "", /150 ms/);

      // All or nothing: one bad entry and nothing changes.
      assert.throws(
        () => server.flags.set({ "resume-window": "2s", "heartbeat-interval": "a while" }, "test"),
        /heartbeat-interval: "a while" is not a duration/,
      );
      assert.equal(server.flags.get("resume-window")?.value, 30_000);
      assert.throws(() => server.flags.set({ "no-such": 1 }, "test"), /no-such/);
    } finally {
      await agent.close();
      await server.close();
    }
  });
});
