// What the servers of a cluster share besides their fleet, over the in-memory backplane:
// revocations (every server ends the sessions and refuses the token, a server started later
// too), enrolment requests listed and decided from any server, and runtime flags of scope
// `cluster` set on one server and in force on all. The same revocation runs through the real
// CLI over a real nats-server in cluster-shared-nats.test.ts.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type AgentEvent, createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKeyFile } from "../src/auth/keys.js";
import { RevocationList } from "../src/auth/revocations.js";
import { decodeTokenUnverified, type IssueOptions, issueToken } from "../src/auth/tokens.js";
import { MemoryBackplane, type MemoryClusterBus } from "../src/cluster/memory-bus.js";
import { encodeRecord } from "../src/cluster/shared-bucket.js";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { silentLogger } from "../src/internal/logger.js";
import { connectOperator } from "../src/operator/create-operator.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { MemoryNetwork } from "../src/transport/memory.js";
import { quickReconnect, until } from "./support/fleet.js";

const dir = mkdtempSync(join(tmpdir(), "muster-shared-"));
const key = generateKeyFile(join(dir, "auth.key"), "EdDSA");
after(() => rmSync(dir, { recursive: true, force: true }));
const token = (o: IssueOptions): Promise<string> => issueToken(key, o);

const REFRESH = 100;

interface Cluster {
  hub: MemoryBackplane;
  net: MemoryNetwork;
  servers: Map<string, MusterServer>;
  buses: Map<string, MemoryClusterBus>;
  agents: MusterAgent[];
  addServer(name: string): Promise<MusterServer>;
  /** Starts an agent on `server`; resolves when it is connected, waiting (pending) or refused. */
  dial(name: string, server: string, t: string): Promise<{ agent: MusterAgent; first: AgentEvent }>;
  close(): Promise<void>;
}

/** A logger whose level can be set, as pino's: the log-level flag exists. */
function leveledLogger(): typeof silentLogger & { level: string } {
  const l = { ...silentLogger, level: "info", child: () => l };
  return l;
}

async function cluster(names: string[]): Promise<Cluster> {
  const hub = new MemoryBackplane();
  const net = new MemoryNetwork();
  const c: Cluster = {
    hub,
    net,
    servers: new Map(),
    buses: new Map(),
    agents: [],
    async addServer(name) {
      const bus = hub.connect({ name });
      const server = createServer({
        name,
        listen: [`memory://${name}`],
        memory: net,
        logger: leveledLogger(),
        auth: { key, revocations: new RevocationList(), approve: true },
        cluster: { bus, refreshMs: REFRESH },
      });
      await server.start();
      c.servers.set(name, server);
      c.buses.set(name, bus);
      return server;
    },
    async dial(name, server, t) {
      const agent = createAgent({
        name,
        servers: [`memory://${server}`],
        memory: net,
        reconnect: quickReconnect,
        serverOrder: "ordered",
        token: t,
      });
      c.agents.push(agent);
      const first = new Promise<AgentEvent>((resolve) => {
        const stop = agent.onEvent((e) => {
          if (e.type === "retry" || e.type === "connected" || e.type === "pending") {
            stop();
            resolve(e);
          }
        });
      });
      agent.start();
      return { agent, first: await first };
    },
    async close() {
      await Promise.all(c.agents.map((a) => a.close()));
      await Promise.all([...c.servers.values()].map((s) => s.close()));
    },
  };
  for (const n of names) await c.addServer(n);
  await until(
    () =>
      [...c.servers.values()].every(
        (s) => s.servers().filter((r) => r.state === "ready" || r.state === "self").length === names.length,
      ),
    5000,
    "every server to see the others",
  );
  return c;
}

const server = (c: Cluster, name: string): MusterServer => c.servers.get(name)!;

describe("state shared by the servers of a cluster (in-memory backplane)", () => {
  const open: Cluster[] = [];
  after(async () => {
    for (const c of open) await c.close();
  });

  it("a token revoked on one server: its session on another ends, every server refuses it, a server started later too", async () => {
    const c = await cluster(["s1", "s2", "s3"]);
    open.push(c);
    const t = await token({ role: "agent", subject: "web-1" });
    const id = decodeTokenUnverified(t).id;
    const { agent, first } = await c.dial("web-1", "s2", t);
    assert.equal(first.type, "connected");
    const events: AgentEvent[] = [];
    agent.onEvent((e) => events.push(e));
    await until(() => server(c, "s1").agent("web-1")?.state === "connected", 5000, "s1 to list web-1");

    const outcome = await server(c, "s1").revoke(id, "laptop lost", "ada");
    assert.deepEqual(outcome, { id, fresh: true, reach: "cluster" });
    await until(() => server(c, "s2").agent("web-1")?.state === "offline", 5000, "the session on s2 to end");
    assert.match(server(c, "s2").agent("web-1")!.disconnectReason ?? "", /its token .* was revoked/);
    await until(
      () =>
        events.some((e) => e.type === "retry" && /\(unauthenticated\): token .* was revoked/.test(e.error)),
      5000,
      "s2 to refuse the token",
    );
    for (const name of ["s1", "s2", "s3"]) {
      const rows = server(c, name).revocations();
      assert.equal(rows.length, 1, name);
      assert.equal(rows[0]!.id, id);
      assert.equal(rows[0]!.reason, "laptop lost");
      assert.equal(rows[0]!.by, "ada");
      assert.equal(rows[0]!.source, name === "s1" ? "memory" : "cluster", name);
    }
    // Revoked again: nothing new, still written for the cluster.
    assert.deepEqual(await server(c, "s3").revoke(id, undefined, "bob"), {
      id,
      fresh: false,
      reach: "cluster",
    });

    // A server that joins later learns it before it serves.
    const s4 = await c.addServer("s4");
    assert.deepEqual(
      s4.revocations().map((r) => [r.id, r.source, r.by]),
      [[id, "cluster", "ada"]],
    );
    const late = await c.dial("web-1", "s4", t);
    assert.equal(late.first.type, "retry");
    assert.match((late.first as { error: string }).error, /token .* was revoked/);

    // Malformed ids are refused; a revocation from a server cut off reaches the others when it is back.
    await assert.rejects(server(c, "s1").revoke("not an id!"), (err: MusterError) => {
      assert.equal(err.code, ErrorCode.INVALID_ARGUMENT);
      return true;
    });
    const other = decodeTokenUnverified(await token({ role: "agent", subject: "web-2" })).id;
    c.buses.get("s3")!.setDown(true);
    assert.deepEqual(await server(c, "s3").revoke(other, "cut off", "cy"), {
      id: other,
      fresh: true,
      reach: "queued",
    });
    assert.ok(
      server(c, "s3")
        .revocations()
        .some((r) => r.id === other),
      "in force on s3 at once",
    );
    assert.ok(
      !server(c, "s1")
        .revocations()
        .some((r) => r.id === other),
    );
    c.buses.get("s3")!.setDown(false);
    await until(
      () =>
        server(c, "s1")
          .revocations()
          .some((r) => r.id === other && r.by === "cy"),
      5000,
      "s1 to learn the revocation once s3 is back",
    );
  });

  it("a server with no revocation list says so", async () => {
    const hub = new MemoryBackplane();
    const s = createServer({
      name: "alone",
      listen: ["memory://alone"],
      memory: new MemoryNetwork(),
      standalone: true,
      cluster: { bus: hub.connect(), refreshMs: REFRESH },
    });
    await s.start();
    try {
      await assert.rejects(s.revoke("abc"), (err: MusterError) => {
        assert.equal(err.code, ErrorCode.UNIMPLEMENTED);
        assert.match(err.message, /standalone .*no tokens to revoke/);
        return true;
      });
      assert.throws(() => s.revocations(), /standalone/);
    } finally {
      await s.close();
    }
  });

  it("enrolment: requests listed on every server with the server holding them; decided from any server", async () => {
    const c = await cluster(["s1", "s2", "s3"]);
    open.push(c);
    const enrol = await token({ role: "enrol", subject: "edge-*", labels: {} });
    const { agent, first } = await c.dial("edge-1", "s2", enrol);
    assert.equal(first.type, "pending");
    await until(
      () => [...c.servers.values()].every((s) => s.pendingEnrolments().some((r) => r.name === "edge-1")),
      5000,
      "every server to list the request",
    );
    for (const s of c.servers.values()) {
      const [r] = s.pendingEnrolments();
      assert.equal(r?.server, "s2");
      assert.equal(r?.conflict, false);
      const row = s.agents().find((a) => a.name === "edge-1");
      assert.equal(row?.state, "pending");
      assert.equal(row?.server, "s2");
    }
    // Through an operator on s1, as `muster agents accept edge-1 --server <s1>` does.
    const admin = await connectOperator({
      server: "memory://s1",
      memory: c.net,
      token: await token({ role: "admin", subject: "ada" }),
    });
    try {
      const accepted = await admin.enrol("accept", "edge-1");
      assert.equal(accepted.server, "s2", "applied by the server the agent dialed");
      assert.equal(accepted.name, "edge-1");
    } finally {
      await admin.close();
    }
    await agent.connected();
    await until(
      () => [...c.servers.values()].every((s) => s.pendingEnrolments().length === 0),
      5000,
      "the request to leave every list",
    );
    await until(() => server(c, "s3").agent("edge-1")?.state === "connected", 5000, "s3 to list edge-1");

    // Nobody holds it: NOT_FOUND, within the bounded wait.
    const started = Date.now();
    await assert.rejects(
      server(c, "s1").decideEnrolmentInCluster("accept", "edge-404", "ada"),
      (err: MusterError) => {
        assert.equal(err.code, ErrorCode.NOT_FOUND);
        assert.match(err.message, /no server of the cluster holds an enrolment request from edge-404/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 10_000);
  });

  it("enrolment: one name asked for on two servers is a conflict; accepting one by fingerprint rejects the other", async () => {
    const c = await cluster(["s1", "s2", "s3"]);
    open.push(c);
    const enrol = await token({ role: "enrol", subject: "edge-*", labels: {} });
    const a = await c.dial("edge-2", "s1", enrol);
    const b = await c.dial("edge-2", "s3", enrol);
    assert.equal(a.first.type, "pending");
    assert.equal(b.first.type, "pending");
    const s2 = server(c, "s2");
    await until(() => s2.pendingEnrolments().length === 2, 5000, "s2 to list both requests");
    const rows = s2.pendingEnrolments();
    assert.deepEqual(
      rows.map((r) => r.conflict),
      [true, true],
    );
    assert.deepEqual(new Set(rows.map((r) => r.server)), new Set(["s1", "s3"]));
    await assert.rejects(s2.decideEnrolmentInCluster("accept", "edge-2", "ada"), (err: MusterError) => {
      assert.equal(err.code, ErrorCode.INVALID_ARGUMENT);
      assert.match(
        err.message,
        /2 agents ask to enrol as edge-2 .* on server s1.* on server s3|on server s3.*on server s1/,
      );
      return true;
    });
    const chosen = rows.find((r) => r.server === "s3")!;
    const rejected = new Promise<string>((resolve) =>
      a.agent.onEvent((e) => e.type === "retry" && /rejected/.test(e.error) && resolve(e.error)),
    );
    const decision = await s2.decideEnrolmentInCluster("accept", "edge-2", "ada", chosen.fingerprint);
    assert.equal(decision.server, "s3");
    assert.equal(decision.request.fingerprint, chosen.fingerprint);
    await b.agent.connected();
    assert.match(
      await rejected,
      /another agent \(fingerprint [0-9a-f]{16}\) was accepted as edge-2 on server s3/,
    );
  });

  it("runtime flags: cluster-wide ones set on one server reach every server, and a server started later", async () => {
    const c = await cluster(["s1", "s2"]);
    open.push(c);
    const s1 = server(c, "s1");
    const s2 = server(c, "s2");
    assert.deepEqual(
      s1.flags.list().map((f) => [f.name, f.scope]),
      [
        ["log-level", "server"],
        ["trace", "server"],
        ["heartbeat-interval", "cluster"],
        ["resume-window", "cluster"],
        ["call-timeout", "cluster"],
        ["drain-timeout", "cluster"],
      ],
    );
    const list = s1.flags.set({ "call-timeout": "7s", "log-level": "debug" }, "ada");
    assert.deepEqual(
      list
        .filter((f) => f.name === "call-timeout" || f.name === "log-level")
        .map((f) => [f.name, f.source, f.by, f.server]),
      [
        ["log-level", "api", "ada", undefined],
        ["call-timeout", "cluster", "ada", "s1"],
      ],
    );
    await until(() => s2.flags.get("call-timeout")?.value === 7000, 5000, "s2 to apply call-timeout");
    const seen = s2.flags.get("call-timeout")!;
    assert.equal(seen.source, "cluster");
    assert.equal(seen.by, "ada");
    assert.equal(seen.server, "s1");
    assert.equal(s2.flags.get("log-level")?.value, "info", "log-level is each server's own");
    // A value stored by a newer version that this one refuses is ignored, not applied.
    const bucket = await c.buses.get("s1")!.bucket("muster_muster_flags");
    await bucket.put("drain-timeout", encodeRecord({ value: "forever", by: "x", server: "s9", at: "" }));
    await bucket.put("no-such-flag", encodeRecord({ value: 1, by: "x", server: "s9", at: "" }));
    s2.flags.set({ "heartbeat-interval": "3s" }, "bob");
    await until(
      () => s1.flags.get("heartbeat-interval")?.value === 3000,
      5000,
      "s1 to apply heartbeat-interval",
    );
    assert.equal(s1.flags.get("call-timeout")?.value, 7000);
    assert.equal(s1.flags.get("drain-timeout")?.source, "default");

    const s3 = await c.addServer("s3");
    const flags = new Map(s3.flags.list().map((f) => [f.name, f]));
    assert.equal(flags.get("call-timeout")?.value, 7000);
    assert.equal(flags.get("call-timeout")?.source, "cluster");
    assert.equal(flags.get("heartbeat-interval")?.value, 3000);
    assert.equal(flags.get("heartbeat-interval")?.by, "bob");
    assert.equal(flags.get("log-level")?.source, "default", "the logger's level, not given as an option");
  });
});
