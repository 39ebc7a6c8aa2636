// A muster cluster over a real nats-server, operated through the CLI as a user would: the
// backplane killed and restarted under traffic; three servers sharing one signing key; advertised
// URLs. (The cluster sessions of docs/cluster.md and README.md run in docs-shell.ports.test.ts.)
// The fleet-wide scenarios
// (300 agents, a server killed during a fan-out, one name on two servers) are in
// cluster-nats.test.ts.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer as createNetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type Proc, runCli, startCli } from "./support/cli.js";
import {
  agentsOn,
  type ClusterServer,
  callOn,
  parseCall,
  readyz,
  type Swarm,
  serversOn,
  startClusterServer,
  startSwarm,
  until,
  waitForStderr,
} from "./support/cli-cluster.js";
import { type NatsServer, natsServerMissing, startNatsServer } from "./support/nats-server.js";

const skip = natsServerMissing();
const procs: Proc[] = [];
const natsServers: NatsServer[] = [];
const dirs: string[] = [];
after(async () => {
  for (const p of procs) p.child.kill("SIGKILL");
  for (const n of natsServers) await n.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function nats(): Promise<NatsServer> {
  const n = await startNatsServer();
  natsServers.push(n);
  return n;
}

async function cluster(
  url: string,
  names: string[],
  extra: { auth?: boolean; args?: string[] } = {},
): Promise<ClusterServer[]> {
  const servers = await Promise.all(names.map((name) => startClusterServer({ name, nats: url, ...extra })));
  procs.push(...servers.map((s) => s.proc));
  return servers;
}

function agent(server: string, name: string, extra: string[] = []): Proc {
  const p = startCli(["agent", "--server", server, "--name", name, "--log-json", ...extra]);
  procs.push(p);
  return p;
}

describe("the backplane lost and back", { skip }, () => {
  it("nats-server killed and restarted mid-traffic: each server serves its own agents, other servers' fail fast, /readyz says degraded, the view recovers", async () => {
    const backplane = await nats();
    const servers = await cluster(backplane.url, ["n1", "n2", "n3"]);
    const [n1, n2, n3] = servers as [ClusterServer, ClusterServer, ClusterServer];
    const swarms: Swarm[] = await Promise.all(
      ["x-", "y-", "z-"].map((prefix, i) =>
        startSwarm({ prefix, count: 5, servers: [servers[i]!.ws], labels: { fleet: "swarm" } }),
      ),
    );
    procs.push(...swarms.map((s) => s.proc));
    // A CLI agent that leaves while NATS is away.
    const leaver = agent(n2.ws, "leaver");
    await waitForStderr(leaver, '"msg":"connected"');
    const names = [...swarms.flatMap((s) => s.names), "leaver"].sort();
    const home = (name: string): string =>
      name === "leaver" ? "n2" : name === "joiner" ? "n1" : `n${"xyz".indexOf(name[0]!) + 1}`;
    let seen = "";
    /** Whether every server lists each agent of `expected` in that state, on its home server. */
    const settled = async (expected: Record<string, string>): Promise<boolean> => {
      const lists = await Promise.all(servers.map((s) => agentsOn(s.ws)));
      seen = JSON.stringify(
        lists.map((l, i) => [
          servers[i]!.name,
          l.length,
          l.filter((a) => ["leaver", "joiner"].includes(a.name)).map((a) => [a.name, a.state, a.server]),
        ]),
      );
      return lists.every((l) =>
        Object.entries(expected).every(([n, state]) => {
          const a = l.find((x) => x.name === n);
          return a?.state === state && a.server === home(n);
        }),
      );
    };
    const connected = Object.fromEntries(names.map((n) => [n, "connected"]));
    await until(() => settled(connected), 30_000, "every server to list the 16 agents");

    // Mid-traffic: every agent runs test.slow for 5 s when NATS dies.
    const slowBefore = swarms.map((s) => s.lines("slow").length);
    const fan = startCli([
      "call",
      "all",
      "test.slow",
      '{"ms":5000}',
      "--timeout",
      "30s",
      "--json",
      "--server",
      n1.ws,
    ]);
    procs.push(fan);
    await until(
      async () => swarms.every((s, i) => s.lines("slow").length === slowBefore[i]! + 5),
      20_000,
      () => `test.slow to run on the 15 swarm agents: ${fan.out}${fan.err}`,
    );
    await backplane.kill();
    assert.equal(await fan.exited, 1, fan.err);
    const { outcomes } = parseCall(fan.out);
    assert.deepEqual(outcomes.map((o) => o.agent).sort(), names, "one outcome per expected agent");
    for (const o of outcomes) {
      if (home(o.agent) === "n1") assert.deepEqual([o.status, o.value], ["ok", "done"], o.agent);
      else if (o.agent === "leaver") assert.equal(o.error?.code, "UNIMPLEMENTED", "no test.slow there");
      else {
        assert.equal(o.status, "error", `${o.agent}: ${JSON.stringify(o)}`);
        assert.equal(o.error?.code, "UNAVAILABLE");
        // Settled by the loss itself, not by the deadline nor by the agent's answer.
        assert.match(o.error?.message ?? "", /lost the cluster backplane/);
        assert.ok(o.durationMs < 30_000, `${o.agent}: before the deadline`);
      }
    }

    // Meanwhile: degraded, serving its own agents, failing fast for the others'.
    for (const s of servers) assert.deepEqual(await readyz(s), { status: 200, state: "degraded" }, s.name);
    const [own, other, fanOut] = await Promise.all([
      callOn(n1.ws, "x-001", "test.echo", "7"),
      callOn(n1.ws, "y-001", "test.echo", "7"),
      callOn(n2.ws, "all", "test.echo", "8"),
    ]);
    assert.equal(own.code, 0, own.err);
    assert.deepEqual(own.outcomes[0]?.value, { from: "x-001", req: 7 });
    assert.equal(other.code, 1);
    assert.equal(other.outcomes[0]?.status, "not_connected");
    assert.equal(other.outcomes[0]?.error?.code, "UNAVAILABLE");
    assert.equal(fanOut.outcomes.length, 16, "every expected agent has its outcome");
    for (const o of fanOut.outcomes)
      assert.equal(
        o.status,
        home(o.agent) === "n2" ? (o.agent === "leaver" ? "error" : "ok") : "not_connected",
      );
    // Presence changes while NATS is away: one agent leaves n2, one joins n1.
    leaver.child.kill("SIGTERM");
    assert.equal(await leaver.exited, 0);
    const joiner = agent(n1.ws, "joiner", ["--label", "fleet=swarm"]);
    await waitForStderr(joiner, '"msg":"connected"');

    await backplane.restart();
    await until(
      async () => (await Promise.all(servers.map(readyz))).every((r) => r.state === "ready"),
      30_000,
      "every server ready again",
    );
    await until(
      () => settled({ ...connected, leaver: "offline", joiner: "connected" }),
      30_000,
      () =>
        `every server to list the agents where they are, the leaver offline and the joiner on n1: ${seen}`,
    );
    const calls = await Promise.all(servers.map((s) => callOn(s.ws, "fleet=swarm", "sys.ping")));
    for (const [i, r] of calls.entries()) {
      assert.equal(r.code, 0, `from ${servers[i]!.name}: ${r.err}`);
      assert.deepEqual(r.summary, { ok: 16, error: 0, timeout: 0, notConnected: 0 });
    }
    assert.deepEqual((await serversOn(n3.ws)).map((r) => [r.name, r.state]).sort(), [
      ["n1", "ready"],
      ["n2", "ready"],
      ["n3", "self"],
    ]);
  });
});

describe("one signing key for the cluster", { skip }, () => {
  it("three servers with the same --auth-key: a token made once works on every server", async () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-cluster-key-"));
    dirs.push(dir);
    const key = join(dir, "cluster.key");
    const muster = async (args: string[]): Promise<string> => {
      const r = await runCli(args);
      assert.equal(r.code, 0, `muster ${args.join(" ")}: ${r.err}`);
      return r.out.trim();
    };
    const other = join(dir, "other.key");
    await Promise.all([
      muster(["token", "keygen", "--key", key]),
      muster(["token", "keygen", "--key", other]),
    ]);
    const backplane = await nats();
    const [servers, operator, agentToken, stranger] = await Promise.all([
      cluster(backplane.url, ["k1", "k2", "k3"], {
        auth: true,
        args: ["--auth-key", key, "--cluster-name", "keyed"],
      }),
      muster(["token", "create", "--name", "ops", "--role", "operator", "--key", key]),
      muster(["token", "create", "--name", "db-1", "--role", "agent", "--label", "role=db", "--key", key]),
      // An operator token of another key.
      muster(["token", "create", "--name", "eve", "--role", "operator", "--key", other]),
    ]);
    const [k1, , k3] = servers as [ClusterServer, ClusterServer, ClusterServer];
    const tokenFile = join(dir, "db-1.token");
    writeFileSync(tokenFile, agentToken);
    const asOperator = ["--token", operator];

    const first = agent(k1.ws, "db-1", ["--token-file", tokenFile]);
    await waitForStderr(first, '"msg":"connected"');
    const on = async (s: ClusterServer, where: string): Promise<boolean> =>
      (await agentsOn(s.ws, asOperator)).some(
        (a) => a.name === "db-1" && a.state === "connected" && a.server === where,
      );
    await until(
      async () => (await Promise.all(servers.map((s) => on(s, "k1")))).every(Boolean),
      20_000,
      "every server to list db-1 on k1",
    );
    const calls = await Promise.all(
      servers.map((s) => callOn(s.ws, "role=db", "sys.ping", undefined, asOperator)),
    );
    for (const [i, r] of calls.entries()) {
      assert.equal(r.code, 0, `through ${servers[i]!.name}: ${r.err}`);
      assert.deepEqual(r.summary, { ok: 1, error: 0, timeout: 0, notConnected: 0 });
    }
    assert.equal((await serversOn(k3.ws, asOperator)).length, 3);

    // A token of another key is refused.
    const refused = await runCli(["agents", "--server", k3.ws, "--token", stranger]);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /refused this operator/);

    // The agent's token, made once, is taken by another server of the cluster too.
    first.child.kill("SIGTERM");
    assert.equal(await first.exited, 0);
    const second = agent(k3.ws, "db-1", ["--token-file", tokenFile]);
    await waitForStderr(second, '"msg":"connected"');
    await until(() => on(k1, "k3"), 20_000, "k1 to list db-1 on k3");
    const again = await callOn(k1.ws, "db-1", "sys.info", undefined, asOperator);
    assert.equal(again.code, 0, again.err);
    assert.equal((again.outcomes[0]?.value as { pid?: number } | undefined)?.pid, second.child.pid);
  });
});

describe("advertised URLs (--advertise)", { skip }, () => {
  it("wrong uses are usage errors, before anything is started", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--advertise", "ws://127.0.0.1:1"], /--advertise goes with --cluster/],
      [["--cluster", "nats://127.0.0.1:1", "--advertise", "ftp://a.example"], /not a URL agents can dial/],
      [
        ["--cluster", "nats://127.0.0.1:1", "--advertise", "ws://u:p@a.example:1"],
        /must not hold credentials/,
      ],
      [
        ["--cluster", "nats://127.0.0.1:1", "--advertise", "ws://a.example:1", "--advertise-host", "b"],
        /not both/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(["server", "--standalone", "--listen", "ws://127.0.0.1:0", ...args]);
      assert.equal(r.code, 2, `muster server ${args.join(" ")}: exit ${r.code}: ${r.err}`);
      assert.match(r.err, message);
    }
  });

  it("the cluster lists the advertised URL, and agents sent away from a draining server reach the server there", async (t) => {
    const backplane = await nats();
    // A forwarder in front of ad1's tcp listener: what a port mapping or a proxy would be.
    let target: URL | undefined;
    let forwarded = 0;
    const sockets = new Set<Socket>();
    const forwarder = createNetServer((inbound) => {
      forwarded++;
      sockets.add(inbound);
      const outbound = connect(Number(target!.port), target!.hostname);
      inbound.pipe(outbound).pipe(inbound);
      inbound.on("error", () => outbound.destroy());
      outbound.on("error", () => inbound.destroy());
    });
    await new Promise<void>((resolve) => forwarder.listen(0, "127.0.0.1", resolve));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      forwarder.close();
    });
    const advertised = `tcp://127.0.0.1:${(forwarder.address() as { port: number }).port}`;
    const [ad1] = await cluster(backplane.url, ["ad1"], {
      args: ["--cluster-name", "adv", "--advertise", advertised],
    });
    target = new URL(ad1!.tcp);
    const [ad2] = await cluster(backplane.url, ["ad2"], { args: ["--cluster-name", "adv"] });
    await until(
      async () => (await serversOn(ad2!.ws)).some((s) => s.name === "ad1" && s.urls.join() === advertised),
      20_000,
      "ad2 to list ad1 at the advertised URL only",
    );
    // An agent given ad2 alone learns ad1 from the WELCOME; ad2 drains: the agent moves through
    // the forwarder, the only way to ad1 it was told of.
    const mover = agent(ad2!.tcp, "adv-1");
    await waitForStderr(mover, '"msg":"connected"');
    ad2!.proc.child.kill("SIGTERM");
    assert.equal(await ad2!.proc.exited, 0, ad2!.proc.err.slice(-2000));
    assert.doesNotMatch(ad2!.proc.err, /handoff timeout/);
    await until(
      async () => (await agentsOn(ad1!.ws)).some((a) => a.name === "adv-1" && a.state === "connected"),
      20_000,
      "adv-1 on ad1",
    );
    assert.ok(forwarded > 0, "the agent came through the advertised URL");
  });
});
