// Several servers sharing one fleet over the in-memory backplane: the cluster logic (registry,
// directory, relay of calls and fan-outs, failover of outcomes) exactly as it runs over NATS,
// in one process with memory links. The same scenarios run over a real nats-server in
// cluster-nats.test.ts.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type AgentOptions, createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { encodeEnvelope } from "../src/cluster/envelope.js";
import { MemoryBackplane, type MemoryClusterBus } from "../src/cluster/memory-bus.js";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { MemoryNetwork } from "../src/transport/memory.js";
import { captureLogger, type LogLine } from "./support/capture-logger.js";
import { quickReconnect, until } from "./support/fleet.js";

const REFRESH = 100;

interface Cluster {
  hub: MemoryBackplane;
  net: MemoryNetwork;
  servers: MusterServer[];
  buses: MemoryClusterBus[];
  agents: MusterAgent[];
  addServer(name: string): Promise<MusterServer>;
  addAgent(name: string, server: string, extra?: Partial<AgentOptions>): Promise<MusterAgent>;
  close(): Promise<void>;
}

async function cluster(names: string[]): Promise<Cluster> {
  const hub = new MemoryBackplane();
  const net = new MemoryNetwork();
  const c: Cluster = {
    hub,
    net,
    servers: [],
    buses: [],
    agents: [],
    async addServer(name) {
      const bus = hub.connect({ name });
      const server = createServer({
        name,
        listen: [`memory://${name}`],
        memory: net,
        standalone: true,
        cluster: { bus, refreshMs: REFRESH },
      });
      await server.start();
      c.servers.push(server);
      c.buses.push(bus);
      return server;
    },
    async addAgent(name, server, extra = {}) {
      const agent = createAgent({
        name,
        servers: [`memory://${server}`],
        memory: net,
        reconnect: quickReconnect,
        serverOrder: "ordered",
        ...extra,
      });
      agent.handle("echo", (req: unknown) => ({ from: name, req }));
      agent.handle("fail", () => {
        throw new Error("it failed on purpose");
      });
      agent.handle("slow", async (req: { ms: number }, ctx) => {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, req.ms);
          ctx.signal.addEventListener("abort", () => {
            clearTimeout(t);
            resolve();
          });
        });
        return "late";
      });
      c.agents.push(agent);
      agent.start();
      await agent.connected();
      return agent;
    },
    async close() {
      await Promise.all(c.agents.map((a) => a.close()));
      await Promise.all(c.servers.map((s) => s.close()));
    },
  };
  for (const n of names) await c.addServer(n);
  // Every server sees every other before the test starts.
  await until(
    () =>
      c.servers.every(
        (s) => s.servers().filter((r) => r.state === "ready" || r.state === "self").length === names.length,
      ),
    5000,
    "every server to see the others",
  );
  return c;
}

/** Waits until every server lists `n` live agents. */
async function seeAgents(c: Cluster, n: number, servers = c.servers): Promise<void> {
  await until(
    () => servers.every((s) => s.agents().filter((a) => a.state === "connected").length === n),
    5000,
    `every server to list ${n} connected agents`,
  );
}

describe("cluster over the in-memory backplane", () => {
  const open: Cluster[] = [];
  after(async () => {
    for (const c of open) await c.close();
  });

  it("three servers, 30 agents spread over them: a fan-out from each server has 30 outcomes", async () => {
    const c = await cluster(["s1", "s2", "s3"]);
    open.push(c);
    for (let i = 0; i < 30; i++)
      await c.addAgent(`a-${i}`, `s${(i % 3) + 1}`, { labels: { n: String(i % 2) } });
    await seeAgents(c, 30);
    for (const s of c.servers) {
      const rows = s.agents();
      assert.equal(rows.length, 30);
      assert.deepEqual(
        new Set(rows.map((a) => a.server)),
        new Set(["s1", "s2", "s3"]),
        "every agent listed with the server holding it",
      );
      const { byAgent } = await s.call("all", "echo", { q: 1 }).done;
      assert.equal(byAgent.size, 30);
      for (const [name, o] of byAgent) {
        assert.equal(o.status, "ok", `${name}: ${JSON.stringify(o)}`);
        assert.deepEqual(o.value, { from: name, req: { q: 1 } });
      }
      const labelled = await s.call("n=1", "echo").done;
      assert.equal(labelled.outcomes.length, 15, "a label selector matches agents on every server");
    }
    const s1 = c.servers[0]!;
    const counts = s1.servers().map((r) => [r.name, r.agents]);
    await until(
      () => s1.servers().every((r) => r.agents === 10),
      3000,
      `the registry to show 10 agents per server (${JSON.stringify(counts)})`,
    );
  });

  it("one agent on another server: results, errors and deadlines come back as from a local one", async () => {
    const c = await cluster(["t1", "t2"]);
    open.push(c);
    await c.addAgent("far", "t2");
    await seeAgents(c, 1);
    const t1 = c.servers[0]!;
    assert.deepEqual(await t1.callAgent("far", "echo", [1, 2]), { from: "far", req: [1, 2] });
    await assert.rejects(t1.callAgent("far", "fail"), (e: MusterError) => {
      assert.match(e.message, /it failed on purpose/);
      return true;
    });
    await assert.rejects(t1.callAgent("far", "slow", { ms: 2000 }, { timeoutMs: 100 }), (e: MusterError) => {
      assert.equal(e.code, ErrorCode.DEADLINE_EXCEEDED);
      return true;
    });
    await assert.rejects(t1.callAgent("nobody", "echo"), (e: MusterError) => e.code === ErrorCode.NOT_FOUND);
    const ac = new AbortController();
    const p = t1.callAgent("far", "slow", { ms: 2000 }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(p, (e: MusterError) => e.code === ErrorCode.CANCELLED);
  });

  it("the same agent name on two servers: the newer session wins everywhere, the older is replaced", async () => {
    const c = await cluster(["r1", "r2"]);
    open.push(c);
    const old = await c.addAgent("twin", "r1");
    await seeAgents(c, 1);
    const ended = new Promise<string>((resolve) => {
      old.onEvent((e) => {
        if (e.type === "replaced") resolve(e.reason);
      });
    });
    await c.addAgent("twin", "r2");
    await until(
      () =>
        c.servers.every(
          (s) => s.agents().find((a) => a.name === "twin" && a.state === "connected")?.server === "r2",
        ),
      5000,
      "both servers to list twin on r2",
    );
    assert.match(await ended, /replaced by a newer session on server r2/);
    for (const s of c.servers)
      assert.deepEqual(await s.callAgent("twin", "echo", 1), { from: "twin", req: 1 });
  });

  it("a server that goes silent during a fan-out: its agents' outcomes come at once, not at the deadline", async () => {
    const c = await cluster(["d1", "d2"]);
    open.push(c);
    for (let i = 0; i < 6; i++) await c.addAgent(`x-${i}`, i < 3 ? "d1" : "d2");
    await seeAgents(c, 6);
    const d1 = c.servers[0]!;
    const started = Date.now();
    const fan = d1.call("all", "slow", { ms: 60_000 }, { timeoutMs: 60_000 });
    setTimeout(() => c.buses[1]!.setDown(true), 100);
    // d1's own agents answer at their deadline; cancel them once d2's are settled.
    const remote = new Set(["x-3", "x-4", "x-5"]);
    const seen = new Map<string, { status: string; code?: string }>();
    for await (const o of fan) {
      seen.set(o.agent, { status: o.status, code: o.error?.code });
      if ([...remote].every((n) => seen.has(n))) fan.cancel();
    }
    const took = Date.now() - started;
    for (const n of remote) assert.deepEqual(seen.get(n), { status: "error", code: ErrorCode.UNAVAILABLE });
    assert.ok(took < 10_000, `settled in ${took} ms, long before the 60 s deadline`);
    assert.equal(seen.size, 6, "every expected agent has exactly one outcome");
  });

  it("the backplane lost: local calls work, calls to other servers fail at once, readiness says degraded", async () => {
    const c = await cluster(["n1", "n2"]);
    open.push(c);
    await c.addAgent("near", "n1");
    await c.addAgent("far", "n2");
    await seeAgents(c, 2);
    const n1 = c.servers[0]!;
    c.buses[0]!.setDown(true);
    assert.equal(n1.readiness, "degraded");
    assert.deepEqual(await n1.callAgent("near", "echo", 1), { from: "near", req: 1 });
    await assert.rejects(
      n1.callAgent("far", "echo", 1),
      (e: MusterError) =>
        e.code === ErrorCode.UNAVAILABLE &&
        /agent far cannot be reached: it is on server n2, and this server has lost the cluster backplane/.test(
          e.message,
        ),
    );
    c.buses[0]!.setDown(false);
    assert.equal(n1.readiness, "ready");
    await until(
      () => n1.agents().find((a) => a.name === "far")?.state === "connected",
      5000,
      "far listed again",
    );
    assert.deepEqual(await n1.callAgent("far", "echo", 2), { from: "far", req: 2 });
  });

  it("a server of the next protocol version: its call parts, with fields this version does not know, are served", async () => {
    const c = await cluster(["v1"]);
    open.push(c);
    await c.addAgent("agent-v", "v1");
    const probe = c.hub.connect({ name: "next-version" });
    const [row] = c.servers[0]!.servers();
    assert.ok(row);
    // The fake reads its outcomes on its own inbox, as a server of version 2 would.
    // Outcomes come in batches: the unknown agent's at once, the call's when it answers.
    const outcomes: Array<{ n: string; e?: { code: string } }> = [];
    const got = new Promise<void>((resolve) => {
      probe.subscribe("muster.muster.node.fake2.outcomes", (m) => {
        const headLength = new DataView(m.data.buffer, m.data.byteOffset).getUint32(0);
        const head = JSON.parse(new TextDecoder().decode(m.data.subarray(4, 4 + headLength)));
        outcomes.push(...head.o);
        if (outcomes.length === 2) resolve();
      });
    });
    const ids = await idsOf(c);
    const body = encodeEnvelope(
      {
        t: "part",
        v: 2,
        id: "fake2.1",
        origin: "fake2",
        method: "echo",
        timeoutMs: 5000,
        k: 1,
        names: ["agent-v", "ghost"],
        priority: "high",
      },
      [new TextEncoder().encode('"hi"')],
    );
    probe.publish(`muster.muster.node.${ids.get("v1")}.part`, body);
    await got;
    assert.deepEqual(outcomes.map((o) => o.n).sort(), ["agent-v", "ghost"]);
    assert.equal(outcomes.find((o) => o.n === "ghost")?.e?.code, ErrorCode.UNAVAILABLE);
    assert.equal(outcomes.find((o) => o.n === "agent-v")?.e, undefined);
    await probe.close();
  });
});

/** Server ids by name, read from the registry bucket as any server reads them. */
async function idsOf(c: Cluster): Promise<Map<string, string>> {
  const bus = c.hub.connect({ name: "reader" });
  const bucket = await bus.bucket("muster_muster_servers");
  const out = new Map<string, string>();
  for (const key of await bucket.keys()) {
    const e = await bucket.get(key);
    if (e === undefined) continue;
    const rec = JSON.parse(new TextDecoder().decode(e.value)) as { name: string; id: string };
    out.set(rec.name, rec.id);
  }
  await bus.close();
  return out;
}

describe("session handoff when a server drains", () => {
  it("the agent resumes on another server with the same session: nothing lost, repeated or reordered", async () => {
    const c = await cluster(["h1", "h2"]);
    try {
      const agent = await c.addAgent("mover", "h1", { servers: ["memory://h1", "memory://h2"] });
      await seeAgents(c, 1);
      const [h1, h2] = c.servers as [MusterServer, MusterServer];
      const events: string[] = [];
      agent.onEvent((e) => events.push(e.type));
      const received: number[] = [];
      h1.handle("count", (n: number) => n);
      h2.handle("count", (n: number) => {
        received.push(n);
        return n;
      });
      // The agent calls its server all along; the calls in flight when h1 drains finish first.
      let n = 0;
      let stop = false;
      const answers: number[] = [];
      const calling = (async () => {
        while (!stop) {
          const i = ++n;
          answers.push(await agent.call<number>("count", i));
        }
      })();
      await until(() => n > 20, 5000, "calls to flow");
      const before = h1.agent("mover")?.sessionId;
      await h1.drain({ timeoutMs: 2000 });
      await until(
        () => h2.agents().find((a) => a.name === "mover")?.state === "connected",
        5000,
        "mover on h2",
      );
      await until(() => received.length > 20, 5000, "calls to reach h2");
      stop = true;
      await calling;
      assert.equal(h2.agent("mover")?.sessionId, before, "the same session, now on h2");
      assert.equal(h2.agent("mover")?.server, "h2");
      assert.ok(events.includes("resumed"), `the agent resumed: ${events.join(",")}`);
      assert.ok(!events.includes("expired"), `no expired session: ${events.join(",")}`);
      assert.deepEqual(
        answers,
        answers.map((_, i) => i + 1),
        "every call answered once, in order",
      );
      assert.deepEqual(await h2.callAgent("mover", "echo", "after"), { from: "mover", req: "after" });
    } finally {
      await c.close();
    }
  });
});

describe("agents kept up to date with the cluster's servers", () => {
  it("a server that joins later is told to agents connected before it (muster.servers), and one that leaves is forgotten", async () => {
    const c = await cluster(["u1"]);
    try {
      const agent = await c.addAgent("early", "u1");
      const urls = () => agent.servers.map((s) => `${s.source} ${s.url} ${s.name ?? ""}`);
      assert.deepEqual(urls(), ["configured memory://u1 u1"], "alone at first");
      const u2 = await c.addServer("u2");
      await until(() => urls().includes("learned memory://u2 u2"), 10_000, "u2 learned");
      await u2.close();
      await until(() => !urls().some((u) => u.includes("u2")), 20_000, "u2 forgotten");
      assert.equal(agent.state, "connected", "the session went on all along");
    } finally {
      await c.close();
    }
  });
});

describe("a drain under traffic", () => {
  it("fan-outs from another server and the agents' own calls go on through a drain: none fails, each agent sees its rounds in order", async () => {
    const c = await cluster(["d1", "d2"]);
    try {
      const N = 12;
      const seen = new Map<string, number[]>();
      for (let i = 0; i < N; i++) {
        const name = `busy-${i}`;
        const agent = await c.addAgent(name, "d1", { servers: ["memory://d1", "memory://d2"] });
        seen.set(name, []);
        agent.handle("round", (r: number) => {
          seen.get(name)!.push(r);
          return r;
        });
      }
      await seeAgents(c, N);
      const [d1, d2] = c.servers as [MusterServer, MusterServer];
      for (const s of [d1, d2]) s.handle("count", (n: number) => n);
      const failures: string[] = [];
      let stop = false;
      // d2 fans out to every agent, one round after the other with no pause.
      let rounds = 0;
      const fanning = (async () => {
        while (!stop) {
          const round = ++rounds;
          const { outcomes } = await d2.call("all", "round", round, { timeoutMs: 10_000 }).done;
          if (outcomes.length !== N) failures.push(`round ${round}: ${outcomes.length} outcomes`);
          for (const o of outcomes)
            if (o.status !== "ok" || o.value !== round)
              failures.push(`round ${round} to ${o.agent}: ${o.status} ${o.error?.message ?? ""}`);
        }
      })();
      // Every agent calls the server it is on, one call after the other.
      const calling = c.agents.map(async (agent) => {
        let n = 0;
        while (!stop) {
          const i = ++n;
          try {
            const r = await agent.call<number>("count", i, { timeoutMs: 10_000 });
            if (r !== i) failures.push(`${agent.name} call ${i}: answered ${r}`);
          } catch (err) {
            failures.push(`${agent.name} call ${i}: ${(err as MusterError).message}`);
          }
        }
      });
      await until(() => rounds > 5, 5000, "fan-outs to flow");
      const drained = await d1.drain({ timeoutMs: 5000 });
      assert.deepEqual(drained.handoff, { moved: N, left: 0 }, JSON.stringify(drained));
      const after = rounds;
      await until(() => rounds > after + 5, 5000, "fan-outs after the drain");
      stop = true;
      await Promise.all([fanning, ...calling]);
      assert.deepEqual(failures, [], "no call failed");
      for (const [name, list] of seen) {
        assert.ok(list.length >= after, `${name} got the rounds`);
        assert.deepEqual(
          list,
          [...list].sort((a, b) => a - b),
          `${name} saw its rounds in order`,
        );
        assert.equal(new Set(list).size, list.length, `${name} saw no round twice`);
      }
      for (const name of seen.keys()) assert.equal(d2.agent(name)?.server, "d2");
    } finally {
      await c.close();
    }
  });
});

describe("the whole cluster stopping at once", () => {
  it("servers draining together stop handing sessions to each other once none is ready", async () => {
    const hub = new MemoryBackplane();
    const net = new MemoryNetwork();
    const logs: LogLine[][] = [[], []];
    const servers = ["w1", "w2"].map((name, i) =>
      createServer({
        name,
        listen: [`memory://${name}`],
        memory: net,
        standalone: true,
        logger: captureLogger(logs[i]!),
        cluster: { bus: hub.connect({ name }), refreshMs: REFRESH },
      }),
    );
    const agents: MusterAgent[] = [];
    try {
      for (const s of servers) await s.start();
      for (let i = 0; i < 6; i++) {
        const agent = createAgent({
          name: `all-${i}`,
          servers: ["memory://w1", "memory://w2"],
          memory: net,
          reconnect: quickReconnect,
          serverOrder: "ordered",
        });
        agents.push(agent);
        agent.start();
        await agent.connected();
      }
      await until(
        () => servers.every((s) => s.agents().length === 6),
        5000,
        "both servers to list the agents",
      );
      const results = await Promise.all(servers.map((s) => s.drain({ timeoutMs: 2000 })));
      // Each drain ends when the other is no longer ready, not after going round the two.
      const said = logs.map((l) =>
        l.some((x) => x.msg === "no other server is ready: the sessions left end here"),
      );
      assert.ok(said.some(Boolean), `a drain saw no server left ready: ${JSON.stringify(results)}`);
      for (const r of results) {
        assert.ok(r.handoff !== undefined, "each drain began by handing over");
        assert.ok(r.handoff.moved + r.handoff.left <= 12, JSON.stringify(r));
      }
    } finally {
      await Promise.all(agents.map((a) => a.close()));
      for (const s of servers) await s.close();
    }
  });
});

describe("failover without a handoff", () => {
  it("a server that closes without draining: its agent gets a new session elsewhere, reported expired", async () => {
    const c = await cluster(["f1", "f2"]);
    try {
      const agent = await c.addAgent("orphan", "f1", { servers: ["memory://f1", "memory://f2"] });
      await seeAgents(c, 1);
      const [f1, f2] = c.servers as [MusterServer, MusterServer];
      const before = f1.agent("orphan")?.sessionId;
      const events: string[] = [];
      agent.onEvent((e) => events.push(e.type));
      await f1.close();
      await until(() => f2.agent("orphan")?.state === "connected", 15_000, "orphan on f2");
      assert.notEqual(f2.agent("orphan")?.sessionId, before, "a new session");
      // The server lists the agent before the agent has read its WELCOME: wait for its event.
      await until(() => events.includes("connected"), 15_000, "the agent's connected event");
      assert.ok(!events.includes("resumed"), events.join(","));
      assert.deepEqual(await f2.callAgent("orphan", "echo", 3), { from: "orphan", req: 3 });
    } finally {
      await c.close();
    }
  });
});
