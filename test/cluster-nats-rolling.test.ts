// A rolling restart of a cluster through the real CLI over a real nats-server: each of three
// servers in turn gets SIGTERM (it drains and hands its sessions over) and is started again,
// while fan-outs run from the servers that are up. No agent session may expire, and every
// fan-out has exactly one outcome per expected agent.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  agentsOn,
  type ClusterServer,
  callOn,
  type Swarm,
  startClusterServer,
  startSwarm,
  until,
} from "./support/cli-cluster.js";
import { type NatsServer, natsServerMissing, startNatsServer } from "./support/nats-server.js";

const skip = natsServerMissing();
let nats: NatsServer | undefined;

before(async () => {
  if (!skip) nats = await startNatsServer();
});
after(async () => {
  await nats?.stop();
});

describe("a rolling restart of the cluster", { skip, timeout: 300_000 }, () => {
  const servers: ClusterServer[] = [];
  let swarm: Swarm | undefined;
  after(async () => {
    await swarm?.stop();
    for (const s of servers) {
      s.proc.child.kill("SIGKILL");
      await s.proc.exited;
    }
  });

  it("three servers restarted one after the other under fan-outs: zero expired sessions", async () => {
    for (const name of ["r1", "r2", "r3"]) servers.push(await startClusterServer({ name, nats: nats!.url }));
    const N = 30;
    swarm = await startSwarm({ prefix: "roll-", count: N, servers: servers.map((s) => s.ws) });
    const live = async (s: ClusterServer) => (await agentsOn(s.ws)).filter((a) => a.state === "connected");
    for (const s of servers)
      await until(async () => (await live(s)).length === N, 30_000, `${s.name} to list ${N} agents`);
    const before = new Map((await agentsOn(servers[0]!.ws)).map((a) => [a.name, a.sessionId]));

    // Fan-outs from whichever server is up, until the restarts are over.
    let rolling = true;
    let current = 1;
    const rounds: Array<{ outcomes: number; agents: Set<string>; ok: number }> = [];
    const calling = (async () => {
      while (rolling) {
        const s = servers[current % servers.length]!;
        const r = await callOn(s.ws, "all", "test.echo", '"x"', ["--timeout", "20s"]);
        if (r.outcomes.length === 0) continue; // that server was going down: no call was made
        rounds.push({
          outcomes: r.outcomes.length,
          agents: new Set(r.outcomes.map((o) => o.agent)),
          ok: r.outcomes.filter((o) => o.status === "ok").length,
        });
      }
    })();

    try {
      for (let i = 0; i < servers.length; i++) {
        const old = servers[i]!;
        current = i + 1; // fan-outs go through another server meanwhile
        old.proc.child.kill("SIGTERM");
        assert.equal(await old.proc.exited, 0, old.proc.err.slice(-2000));
        assert.doesNotMatch(
          old.proc.err,
          /handoff timeout/,
          `every session it held was taken over; the agents' attempts:\n${swarm!
            .lines("retry")
            .map((l) => l.join(" "))
            .join("\n")}`,
        );
        servers[i] = await startClusterServer({ name: old.name, nats: nats!.url });
      }
      await until(async () => rounds.length >= 6, 60_000, "fan-outs during and after the restarts");
    } finally {
      // Whatever failed above, the fan-outs stop: a loop left running would keep this file alive.
      rolling = false;
      await calling;
    }

    assert.deepEqual(swarm.lines("expired"), [], "no session expired");
    assert.deepEqual(swarm.lines("connected"), [], "no agent had to start a new session");
    const after = new Map((await agentsOn(servers[0]!.ws)).map((a) => [a.name, a.sessionId]));
    for (const [name, id] of before) assert.equal(after.get(name), id, `${name} kept its session`);
    for (const r of rounds) {
      assert.equal(r.outcomes, N, "one outcome per expected agent");
      assert.equal(r.agents.size, N, "no agent twice");
    }
    const last = rounds.at(-1)!;
    assert.equal(last.ok, N, "once the restarts are over, every agent answers");
  });
});
