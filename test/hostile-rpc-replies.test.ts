// Replies that would not fit, and one operator's relayed calls crowding out everyone's, over
// real TCP. The agent list comes in pages that each fit in a frame (`muster agents` follows
// them); a value too large for its receiver becomes an error for that call, never a dead link;
// an operator's relayed calls on one agent are capped before they reach it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { DEFAULTS } from "../src/internal/defaults.js";
import { connectOperator, type MusterOperator } from "../src/operator/create-operator.js";
import type { AgentInfo } from "../src/presence/presence.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { decodeValue } from "../src/wire/codec.js";
import { runCli } from "./support/cli.js";
import { quickReconnect, until } from "./support/fleet.js";
import { RawPeer } from "./support/raw-peer.js";

const MiB = 1024 * 1024;

/** The value of a RESULT frame; throws its error. */
function resultValue(f: Awaited<ReturnType<RawPeer["result"]>>): unknown {
  if ("error" in f) throw new Error(`${f.error.code}: ${f.error.message}`);
  return decodeValue(f.payload);
}

describe("replies larger than the receiver accepts", () => {
  let server: MusterServer;
  let url: string;
  const agents: MusterAgent[] = [];
  const crowd: RawPeer[] = [];
  let op: MusterOperator;
  before(async () => {
    server = createServer({ listen: ["tcp://127.0.0.1:0"], standalone: true });
    server.handle("huge", () => "x".repeat(2 * MiB));
    server.handle("small", () => "ok");
    server.handleStream("huge-items", function* () {
      yield "small";
      yield "x".repeat(2 * MiB);
    });
    await server.start();
    url = server.listeners[0]!.url;
    const big = createAgent({ name: "big", servers: [url], reconnect: quickReconnect });
    // Fits in the agent's frame to the server, not once wrapped as an outcome for an operator.
    big.handle("almost-1mib", () => "y".repeat(MiB - 64));
    agents.push(big);
    big.start();
    await big.connected();
    // 100 agents of about 13 KB of labels each: 1.3 MB of agent list.
    const labels: Record<string, string> = {};
    for (let i = 0; i < 60; i++) labels[`label-${i}`] = `${i}`.padEnd(200, "v");
    for (let i = 0; i < 100; i++) {
      crowd.push(await RawPeer.join(url, "agent", `crowd-${String(i).padStart(3, "0")}`, { labels }));
    }
    op = await connectOperator({ server: url, name: "reader" });
  });
  after(async () => {
    await op.close();
    for (const p of crowd) p.destroy();
    await Promise.all(agents.map((a) => a.close()));
    await server.close();
  });

  it("pages muster.agents: every page fits in a frame, and the CLI and the library follow them", async () => {
    const all = await op.agents();
    assert.equal(all.length, 101);
    assert.equal(new Set(all.map((a) => a.name)).size, 101);
    const r = await runCli(["agents", "--server", url, "--json"], 30_000);
    assert.equal(r.code, 0, r.err);
    assert.equal((JSON.parse(r.out) as AgentInfo[]).length, 101);
    const table = await runCli(["agents", "--server", url], 30_000);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /crowd-099/);
    // The raw method: a first page without arguments, then the rest from `next`.
    const raw = await RawPeer.join(url, "operator", "raw-reader");
    try {
      raw.call(1, "muster.agents", undefined);
      const page = resultValue(await raw.result(1)) as { agents: AgentInfo[]; next?: string };
      assert.ok(
        page.agents.length > 0 && page.agents.length < 101,
        `${page.agents.length} in the first page`,
      );
      assert.equal(page.next, page.agents[page.agents.length - 1]!.name);
      raw.call(2, "muster.agents", { after: page.next, limit: 5 });
      const second = resultValue(await raw.result(2)) as { agents: AgentInfo[] };
      assert.equal(second.agents.length, 5);
      assert.ok(second.agents[0]!.name > page.next!);
    } finally {
      raw.destroy();
    }
  });

  it("turns a relayed result that would not fit the operator's frame into an error outcome", async () => {
    const call = op.call("big", "almost-1mib", undefined, { timeoutMs: 10_000 });
    const { outcomes } = await call.done;
    assert.equal(outcomes.length, 1);
    const o = outcomes[0]!;
    assert.equal(o.status, "error");
    assert.equal(o.error?.code, "RESOURCE_EXHAUSTED");
    assert.match(
      o.error!.message,
      /almost-1mib on big: the outcome is \d+ bytes as a frame, over the 1048576-byte frame limit/,
    );
    // The operator's link is alive: the next call works.
    const ping = await op.call("big", "sys.ping").done;
    assert.equal(ping.summary.ok, 1);
  });

  it("fails a server result or stream item too large for the agent, not its link", async () => {
    const agent = agents[0]!;
    const drops: string[] = [];
    const stop = agent.onEvent((e) => {
      if (e.type === "disconnected") drops.push(e.reason);
    });
    try {
      await assert.rejects(
        agent.call("huge"),
        (e: MusterError) =>
          e.code === "RESOURCE_EXHAUSTED" && /over the 1048576-byte frame limit/.test(e.rawMessage),
      );
      const s = agent.stream<string>("huge-items");
      assert.equal((await s.next()).value, "small");
      await assert.rejects(s.next(), (e: MusterError) => e.code === "RESOURCE_EXHAUSTED");
      assert.equal(await agent.call("small"), "ok");
      assert.deepEqual(drops, [], "the link never dropped");
    } finally {
      stop();
    }
  });
});

describe("relayed calls per operator per agent", () => {
  let server: MusterServer;
  let url: string;
  let agent: MusterAgent;
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let running = 0;
  let maxRunning = 0;
  before(async () => {
    server = createServer({ listen: ["tcp://127.0.0.1:0"], standalone: true });
    await server.start();
    url = server.listeners[0]!.url;
    agent = createAgent({ name: "busy", servers: [url], reconnect: quickReconnect });
    agent.handle("slow", async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await gate;
      running--;
      return "done";
    });
    agent.start();
    await agent.connected();
  });
  after(async () => {
    release();
    await agent.close();
    await server.close();
  });

  it("caps one operator's relayed calls on an agent; another operator's calls still get in", async () => {
    const greedy = await connectOperator({ server: url, name: "greedy" });
    const polite = await connectOperator({ server: url, name: "polite" });
    try {
      const calls = Array.from({ length: 1100 }, () =>
        greedy.call("busy", "slow", undefined, { timeoutMs: 60_000 }),
      );
      const limit = DEFAULTS.maxRelayedCallsPerAgent;
      await until(() => running === limit, 20_000, `${limit} slow calls running on the agent`);
      // The others were answered by the server without reaching the agent.
      const refused = await Promise.all(calls.slice(limit).map((c) => c.done.catch((e: MusterError) => e)));
      for (const r of refused) {
        const body = r instanceof Error ? { code: r.code, message: r.rawMessage } : r.outcomes[0]!.error!;
        assert.equal(body.code, "RESOURCE_EXHAUSTED");
      }
      const relayRefusals = refused.filter((r): r is Exclude<typeof r, MusterError> => !(r instanceof Error));
      assert.ok(relayRefusals.length > 0);
      assert.match(
        relayRefusals[0]!.outcomes[0]!.error!.message,
        new RegExp(
          `greedy has ${limit} relayed calls in flight on agent busy \\(limit ${limit}, maxRelayedCallsPerAgent\\)`,
        ),
      );
      // Another operator is not starved.
      const other = await polite.call("busy", "sys.ping", undefined, { timeoutMs: 10_000 }).done;
      assert.equal(other.summary.ok, 1, JSON.stringify(other.outcomes));
      assert.equal(maxRunning, limit);
      release();
      const done = await Promise.all(calls.slice(0, limit).map((c) => c.done));
      assert.ok(done.every((d) => d.summary.ok === 1));
      // The slots are free again.
      assert.equal((await greedy.call("busy", "slow").done).summary.ok, 1);
    } finally {
      await greedy.close();
      await polite.close();
    }
  });
});
