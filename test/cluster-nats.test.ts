// A muster cluster over a real nats-server.
//
// First its parts: the server registry and the agent directory (their logic is tested on the
// in-memory bus in src/cluster; this checks that JetStream KV gives them what they need).
//
// Then the whole of it as a user runs it: three `muster server --cluster` processes of the built
// CLI, 300 agents in three processes (test/support/agent-swarm.ts), and the operator commands
// (`muster servers`, `muster agents`, `muster call`, `muster signal`) against each server: a
// fan-out from any server reaches every agent; a call and a text line cross servers; a server
// killed during a fan-out settles its agents' outcomes long before the deadline and its agents
// come back on the other servers; one agent name on two servers keeps one session. The backplane
// going away, a shared signing key and docs/cluster.md are in cluster-nats-ops.test.ts.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ClusterBus } from "../src/cluster/bus.js";
import { eventually } from "../src/cluster/bus-conformance.js";
import { AgentDirectory, type DirectoryEvent } from "../src/cluster/directory.js";
import { connectNatsBus } from "../src/cluster/nats-bus.js";
import { type RegistryEvent, ServerRegistry } from "../src/cluster/registry.js";
import { VERSION } from "../src/internal/version.js";
import type { AgentInfo } from "../src/presence/presence.js";
import type { ServerInfo } from "../src/server/server-info.js";
import { type Proc, runCli, startCli } from "./support/cli.js";
import {
  agentsOn,
  type ClusterServer,
  callOn,
  census,
  parseCall,
  type Swarm,
  serversOn,
  startClusterServer,
  startSwarm,
  until,
} from "./support/cli-cluster.js";
import { type NatsServer, natsServerMissing, startNatsServer } from "./support/nats-server.js";

const skip = natsServerMissing();
let server: NatsServer | undefined;
const buses: ClusterBus[] = [];
const bus = async (name: string): Promise<ClusterBus> => {
  const b = await connectNatsBus(server!.url, { name, reconnectTimeWaitMs: 100 });
  buses.push(b);
  return b;
};

before(async () => {
  if (!skip) server = await startNatsServer();
});
after(async () => {
  for (const b of buses) await b.close();
  await server?.stop();
});

it("nats: registry: up, draining, deregistered, and a crashed server suspect then dead", {
  skip,
}, async () => {
  const refreshMs = 200;
  const reg = (name: string, b: ClusterBus) =>
    new ServerRegistry({ bus: b, name, urls: [`tcp://${name}:1`], version: "1.0.0", refreshMs });
  const a = reg("a", await bus("a"));
  const events: string[] = [];
  a.on((e: RegistryEvent) => {
    if (e.type !== "conflict")
      events.push(`${e.type} ${e.server.name}${e.type === "down" ? ` ${e.reason}` : ""}`);
  });
  await a.start();
  const b = reg("b", await bus("b"));
  await b.start();
  await eventually("b up", () => events.includes("up b"));
  await b.markDraining();
  await eventually("b draining", () => a.get("b")?.state === "draining");
  await b.stop();
  await eventually("b deregistered", () => events.includes("down b deregistered"));
  assert.equal(a.get("b"), undefined);

  const crashingBus = await bus("c");
  const c = reg("c", crashingBus);
  await c.start();
  await eventually("c up", () => events.includes("up c"));
  await crashingBus.close(); // no deregistration: c just goes silent
  await eventually("c suspect", () => a.get("c")?.state === "suspect");
  await eventually("c dead", () => events.includes("down c dead"));
  assert.deepEqual(
    events.filter((e) => !e.startsWith("change")),
    ["up b", "down b deregistered", "up c", "down c dead"],
  );
  await a.stop();
  await c.stop(); // its bus is closed: nothing to delete, nothing left running
});

it("nats: directory: a newer session on another server takes the agent; the old holder is told", {
  skip,
}, async () => {
  const dir = async (name: string) => {
    const d = new AgentDirectory({ bus: await bus(`dir-${name}`), serverName: name, serverId: `${name}-1` });
    await d.start();
    return d;
  };
  const a = await dir("a");
  const b = await dir("b");
  const seenByA: DirectoryEvent[] = [];
  a.on((e) => seenByA.push(e));
  const labels = { role: "db", zone: "eu" };
  const first = await a.claim("db-1", { session: "s1", epoch: 1000, labels, version: "1" });
  assert.equal(first.won, true);
  await eventually("b sees a's agent", () => b.ownerOf("db-1")?.record.server === "a");
  assert.deepEqual(b.ownerOf("db-1")?.record.labels, labels);
  assert.equal(
    (await b.claim("db-1", { session: "s0", epoch: 999, labels, version: "1" })).won,
    false,
    "older",
  );
  const second = await b.claim("db-1", { session: "s2", epoch: 2000, labels, version: "1" });
  assert.equal(second.won, true);
  await eventually("a is told", () =>
    seenByA.some((e) => e.type === "claimed" && e.takenFromUs && e.previous?.session === "s1"),
  );
  assert.equal(await a.setState("db-1", "s1", "offline"), false, "a's old session cannot touch it");
  assert.equal(await b.release("db-1", "s2", "closed"), true);
  await eventually(
    "released everywhere",
    () => a.ownerOf("db-1") === undefined && b.ownerOf("db-1") === undefined,
  );
  assert.equal(a.list()[0]?.record.reason, "closed");
  a.stop();
  b.stop();
});

describe("three muster servers, 300 agents, through the CLI", { skip }, () => {
  let nats: NatsServer;
  let servers: ClusterServer[] = [];
  let swarms: Swarm[] = [];
  const procs: Proc[] = [];
  /** The server each swarm's agents dial (and so are held by): a-… s1, b-… s2, c-… s3. */
  const home = (agent: string): string => `s${"abc".indexOf(agent[0]!) + 1}`;
  /** Agents per server: unequal, so that the loads s3 announces to its agents differ. */
  const held: Record<string, number> = { s1: 110, s2: 90, s3: 100 };
  const all: string[] = [];

  before(async () => {
    nats = await startNatsServer();
    servers = await Promise.all(
      ["s1", "s2", "s3"].map((name) => startClusterServer({ name, nats: nats.url, text: true })),
    );
    procs.push(...servers.map((s) => s.proc));
    // Each swarm is given one server only: it learns the others from that server's WELCOME.
    const swarm = async (prefix: string, i: number): Promise<Swarm> => {
      const s = await startSwarm({
        prefix,
        count: held[`s${i + 1}`]!,
        servers: [servers[i]!.ws],
        labels: { fleet: "swarm" },
      });
      procs.push(s.proc);
      return s;
    };
    swarms = await Promise.all([swarm("a-", 0), swarm("b-", 1)]);
    // s3's agents connect once s3 knows the load of s1 and s2: they all hear the same loads
    // (what the spread test below is about).
    await until(
      async () => (await serversOn(servers[2]!.ws)).filter((r) => r.agents === held[r.name]).length === 2,
      20_000,
      "s3 to know how many agents s1 and s2 have",
    );
    swarms.push(await swarm("c-", 2));
    all.push(...swarms.flatMap((s) => s.names));
  });
  after(async () => {
    for (const p of procs) p.child.kill("SIGKILL");
    await nats?.stop();
  });

  it("every server lists the 300 agents, each with the server holding it, and the registry of the three servers", async () => {
    const lists = new Map<string, AgentInfo[]>();
    await until(
      async () => {
        await Promise.all(servers.map(async (s) => lists.set(s.name, await agentsOn(s.ws))));
        return [...lists.values()].every((l) => l.filter((a) => a.state === "connected").length === 300);
      },
      30_000,
      () =>
        `every server to list 300 connected agents: ${JSON.stringify([...lists].map(([n, l]) => [n, census(l)]))}`,
    );
    for (const [name, list] of lists) {
      assert.deepEqual(list.map((a) => a.name).sort(), all);
      for (const a of list) {
        assert.equal(a.server, home(a.name), `${a.name} on ${name}`);
        assert.deepEqual(a.labels, { fleet: "swarm" });
      }
    }
    // The registry: every server sees the three and their agents (the load is refreshed every 2 s).
    const registries = new Map<string, ServerInfo[]>();
    await until(
      async () => {
        await Promise.all(servers.map(async (s) => registries.set(s.name, await serversOn(s.ws))));
        return [...registries.values()].every(
          (rows) =>
            rows.length === 3 && rows.every((r) => r.agents === held[r.name] && r.state !== "suspect"),
        );
      },
      20_000,
      () => `every server to list the three servers and their agents: ${JSON.stringify([...registries])}`,
    );
    for (const [name, rows] of registries) {
      for (const r of rows) {
        const it = servers.find((x) => x.name === r.name);
        assert.ok(it, `an unknown server ${r.name}`);
        assert.equal(r.state, r.name === name ? "self" : "ready");
        assert.deepEqual(r.urls, [it.ws, it.tcp]);
        assert.equal(r.version, VERSION);
        assert.equal(typeof r.lagMs, "number");
        assert.equal(typeof r.lastHeartbeatMs, "number");
      }
    }
    // The tables, as people read them.
    const [agents, registry] = await Promise.all([
      runCli(["agents", "--server", servers[1]!.ws]),
      runCli(["servers", "--server", servers[0]!.ws]),
    ]);
    assert.equal(agents.code, 0, agents.err);
    assert.match(
      agents.out,
      /^NAME\s+LABELS\s+STATE\s+SERVER\s+ADDRESS\s+VERSION\s+CONNECTED SINCE\s+LAST SEEN$/m,
    );
    assert.match(agents.out, /^c-000\s+fleet=swarm\s+connected\s+s3\s+-\s+/m, "an agent of another server");
    assert.match(
      agents.out,
      /^b-000\s+fleet=swarm\s+connected\s+s2\s+ws 127\.0\.0\.1:\d+/m,
      "one of its own",
    );
    assert.equal(registry.code, 0, registry.err);
    assert.match(registry.out, /^NAME\s+STATE\s+AGENTS\s+LAG\s+VERSION\s+LAST HEARTBEAT\s+URLS$/m);
    assert.match(registry.out, /^s1\s+self\s+110\s+[\d.]+ ms\s+\S+\s+-\s+ws:\/\/127\.0\.0\.1:\d+ tcp:/m);
    assert.match(registry.out, /^s3\s+ready\s+100\s+[\d.]+ ms\s+\S+\s+[\d.]+s ago\s+ws:/m);
  });

  it("muster call all from each server: one outcome per agent, 300 ok, each from the agent's own process", async () => {
    const pidOf = (agent: string): number | undefined => swarms["abc".indexOf(agent[0]!)]!.proc.child.pid;
    const results = await Promise.all(
      servers.map((s) => callOn(s.ws, "all", "sys.info", undefined, ["--timeout", "20s"])),
    );
    for (const [i, r] of results.entries()) {
      const s = servers[i]!;
      assert.equal(r.code, 0, `from ${s.name}: ${r.err}`);
      assert.equal(r.outcomes.length, 300, `from ${s.name}`);
      assert.deepEqual(r.outcomes.map((o) => o.agent).sort(), all, "each agent exactly once");
      for (const o of r.outcomes) {
        assert.equal(o.status, "ok", `${o.agent} from ${s.name}: ${JSON.stringify(o.error)}`);
        const info = o.value as { name: string; pid: number };
        assert.equal(info.name, o.agent);
        assert.equal(info.pid, pidOf(o.agent));
      }
      assert.deepEqual(r.summary, { ok: 300, error: 0, timeout: 0, notConnected: 0 });
    }
  });

  it("a call and a text line cross servers: results, errors and deadlines as from a local agent", async () => {
    const [s1, s2] = servers as [ClusterServer, ClusterServer];
    const [echo, unknown, late, alive, rotate] = await Promise.all([
      callOn(s1.ws, "c-007", "test.echo", '{"q":1}'),
      callOn(s1.ws, "c-008", "test.nope"),
      callOn(s1.ws, "c-009", "test.slow", '{"ms":10000}', ["--timeout", "500ms"]),
      // One agent of s3 through s1's text endpoint: the reply comes back marked with s1.
      runCli(["signal", "--type", "tcp", "--host", s1.text!, "--reply", "c_005/ALIVE"]),
      // '*/LOG_ROTATE' on s1's text endpoint reaches every agent, whichever server holds it.
      runCli(["signal", "--type", "tcp", "--host", s1.text!, "*/LOG_ROTATE"]),
    ]);
    assert.equal(echo.code, 0, echo.err);
    assert.deepEqual(echo.outcomes[0]?.value, { from: "c-007", req: { q: 1 } });
    assert.equal(unknown.code, 1);
    assert.equal(unknown.outcomes[0]?.status, "error");
    assert.equal(unknown.outcomes[0]?.error?.code, "UNIMPLEMENTED");
    assert.equal(late.code, 1);
    assert.equal(late.outcomes[0]?.status, "timeout");
    assert.equal(alive.code, 0, alive.err);
    assert.match(alive.out, /^<s1:c_005 \S+ABSOLUTELY reply_timestamp=/);
    assert.equal(rotate.code, 0, rotate.out + rotate.err);
    const rotations = await callOn(s2.ws, "all", "test.rotations");
    assert.equal(rotations.code, 0, rotations.err);
    assert.equal(rotations.outcomes.length, 300);
    for (const o of rotations.outcomes) assert.equal(o.value, 1, `${o.agent} rotated its logs once`);

    // A server of the cluster in the address: the agent is reached there only; `?` is the
    // other servers, which hold c_005 (on s3) for a message that came to s1.
    const signal = (line: string) => runCli(["signal", "--type", "tcp", "--host", s1.text!, "--reply", line]);
    const [onS3, onS2, remote, nowhere] = await Promise.all([
      signal("s3:c_005/ALIVE"),
      signal("s2:c_005/ALIVE"),
      signal("?:c_005/ALIVE"),
      signal("zz:c_005/ALIVE"),
    ]);
    assert.match(onS3.out, /^<s1:c_005 \S+ABSOLUTELY reply_timestamp=/, onS3.out + onS3.err);
    assert.match(onS2.out, /SERVICE_UNAVAILABLE.*no agent c_005 on server s2/, onS2.out + onS2.err);
    assert.match(remote.out, /^<s1:c_005 \S+ABSOLUTELY reply_timestamp=/, remote.out + remote.err);
    assert.match(nowhere.out, /SERVICE_UNAVAILABLE.*no server named zz/, nowhere.out + nowhere.err);
  });

  // How the agents of s3 spread over s1 and s2 once it is gone (for the spread test below).
  const moved = new Map<string, string>();

  it("a server killed during a fan-out: every outcome long before the deadline; its agents back on the others; every server agrees", async () => {
    const [s1, s2, s3] = servers as [ClusterServer, ClusterServer, ClusterServer];
    const swarmC = swarms[2]!;
    const slowBefore = swarms.map((s) => s.lines("slow").length);
    // Every agent runs test.slow for 3 s; the deadline is 40 s.
    const fan = startCli([
      "call",
      "fleet=swarm",
      "test.slow",
      '{"ms":3000}',
      "--timeout",
      "40s",
      "--json",
      "--server",
      s1.ws,
    ]);
    procs.push(fan);
    await until(
      async () => swarms.every((s, i) => s.lines("slow").length === slowBefore[i]! + s.names.length),
      30_000,
      () =>
        `test.slow to run on all 300 agents (started: ${swarms.map((s) => s.lines("slow").length).join(", ")}; muster call said: ${fan.out.slice(0, 1000)}${fan.err})`,
    );
    s3.proc.child.kill("SIGKILL");
    await s3.proc.exited;
    const code = await Promise.race([
      fan.exited,
      new Promise<"hung">((r) => setTimeout(() => r("hung"), 60_000)),
    ]);
    assert.equal(code, 1, `the fan-out ends, not every agent ok: ${fan.err}`);
    const { outcomes, summary } = parseCall(fan.out);
    assert.deepEqual(outcomes.map((o) => o.agent).sort(), all, "one outcome per expected agent");
    for (const o of outcomes) {
      assert.ok(o.durationMs < 40_000, `${o.agent}: before the deadline`);
      if (home(o.agent) === "s3") {
        assert.equal(o.status, "error", `${o.agent}: ${JSON.stringify(o)}`);
        assert.equal(o.error?.code, "UNAVAILABLE");
        assert.match(o.error?.message ?? "", /server s3 is gone/);
      } else assert.deepEqual([o.status, o.value], ["ok", "done"], o.agent);
    }
    assert.deepEqual(summary, { ok: 200, error: 100, timeout: 0, notConnected: 0 }, "s3 held 100");

    // s3's agents found s1 and s2 on their own (learned from s3's WELCOME): new sessions.
    await until(
      async () => new Set(swarmC.lines("connected").map(([n]) => n)).size === 100,
      30_000,
      "the 100 agents of s3 to connect elsewhere",
    );
    for (const [name, url] of swarmC.lines("connected")) moved.set(name!, url!);
    assert.ok(
      [...moved.values()].every((u) => u === s1.ws || u === s2.ws),
      "each moved to s1 or s2",
    );
    assert.deepEqual(
      [...new Set(swarmC.lines("expired").map(([n]) => n))].sort(),
      swarmC.names,
      "their sessions could not be resumed: each reported expired",
    );
    const serverOf = (url: string): string => (url === s1.ws ? "s1" : "s2");
    const expected = (a: AgentInfo): string =>
      home(a.name) === "s3" ? serverOf(moved.get(a.name)!) : home(a.name);
    const view = (list: AgentInfo[]): string =>
      JSON.stringify(list.map((a) => [a.name, a.state, a.server]).sort());
    await until(
      async () => {
        const [l1, l2] = await Promise.all([agentsOn(s1.ws), agentsOn(s2.ws)]);
        return (
          l1.length === 300 &&
          l1.every((a) => a.state === "connected" && a.server === expected(a)) &&
          view(l1) === view(l2)
        );
      },
      30_000,
      "s1 and s2 to list the 300 agents alike, connected where they are",
    );
    await until(
      async () => (await serversOn(s1.ws)).find((r) => r.name === "s3")?.state !== "ready",
      20_000,
      "s3 no longer ready in the registry",
    );
    for (const s of [s1, s2]) {
      const r = await callOn(s.ws, "all", "sys.ping", undefined, ["--timeout", "20s"]);
      assert.equal(r.code, 0, `from ${s.name}: ${r.err}`);
      assert.deepEqual(r.summary, { ok: 300, error: 0, timeout: 0, notConnected: 0 });
    }
    for (const s of swarms) assert.equal(s.proc.child.exitCode, null, "no agent process died");
  });

  // s3 announced s1 with 110 agents and s2 with 90: each agent picks one of the two with a
  // chance falling with its load (docs/protocol.md §9.8), about 45 / 55; all 100 on one side
  // would happen once in 10^26 runs.
  it("the agents of the killed server spread over both others", (t) => {
    assert.equal(moved.size, 100);
    const counts = new Map<string, number>();
    for (const url of moved.values()) counts.set(url, (counts.get(url) ?? 0) + 1);
    const where = [...counts].map(([url, n]) => `${n} to ${url === servers[0]!.ws ? "s1" : "s2"}`);
    t.diagnostic(`the agents of s3 went: ${where.join(", ")}`);
    assert.equal(counts.size, 2, `they went: ${where.join(", ")}`);
  });

  it("the same agent name on two servers: one session, the older one replaced", async () => {
    const [s1, s2] = servers as [ClusterServer, ClusterServer];
    const first = startCli(["agent", "--server", s1.ws, "--name", "twin", "--log-json"]);
    procs.push(first);
    const twinOn = async (s: ClusterServer): Promise<AgentInfo[]> =>
      (await agentsOn(s.ws)).filter((a) => a.name === "twin");
    await until(async () => (await twinOn(s2))[0]?.server === "s1", 20_000, "s2 to list twin on s1");
    const second = startCli(["agent", "--server", s2.ws, "--name", "twin", "--log-json"]);
    procs.push(second);
    const code = await Promise.race([
      first.exited,
      new Promise<"hung">((r) => setTimeout(() => r("hung"), 30_000)),
    ]);
    assert.equal(code, 1, "the replaced agent stops with status 1");
    assert.match(first.err, /replaced by a newer session on server s2/);
    let session = "";
    await until(
      async () => {
        const [on1, on2] = await Promise.all([twinOn(s1), twinOn(s2)]);
        session = on2[0]?.sessionId ?? "";
        return (
          on1.length === 1 &&
          on2.length === 1 &&
          on1[0]!.state === "connected" &&
          on1[0]!.server === "s2" &&
          on2[0]!.state === "connected" &&
          on1[0]!.sessionId === session
        );
      },
      20_000,
      "s1 and s2 to list one twin, connected on s2, the same session",
    );
    const r = await callOn(s1.ws, "twin", "sys.info");
    assert.equal(r.code, 0, r.err);
    assert.equal(
      (r.outcomes[0]?.value as { pid: number } | undefined)?.pid,
      second.child.pid,
      "the newer process answers",
    );
    assert.equal(second.child.exitCode, null);
  });
});
