import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { decodeTokenUnverified } from "../src/auth/tokens.js";
import type { AgentInfo } from "../src/presence/presence.js";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";

/** Every process of these tests shares one fresh MUSTER_HOME: the key, the revocations. */
const home = mkdtempSync(join(tmpdir(), "muster-auth-cli-"));
const env = { MUSTER_HOME: home };
const procs: Proc[] = [];
after(() => {
  for (const p of procs) p.child.kill("SIGKILL");
  rmSync(home, { recursive: true, force: true });
});

const start = (args: string[]): Proc => {
  const p = startCli(args, env);
  procs.push(p);
  return p;
};
const cli = (args: string[]) => runCli(args, 20_000, env);

async function create(args: string[]): Promise<string> {
  const r = await cli(["token", "create", ...args]);
  assert.equal(r.code, 0, r.err);
  return r.out.trim();
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function http(
  url: string,
  token?: string,
  init: RequestInit = {},
): Promise<{ status: number; body: string }> {
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  const res = await fetch(url, { ...init, headers });
  return { status: res.status, body: await res.text() };
}

describe("authentication and operations through the real CLI", () => {
  it("tokens, refusals, the admin API, live flags, revocation, and a drain on SIGTERM during a call", async () => {
    const keygen = await cli(["token", "keygen"]);
    assert.equal(keygen.code, 0, keygen.err);
    const [tcpPort, wsPort] = [await freePort(), await freePort()];
    const ws = `ws://127.0.0.1:${wsPort}`;
    const tcp = `tcp://127.0.0.1:${tcpPort}`;
    const server = start([
      "server",
      "--listen",
      ws,
      "--listen",
      tcp,
      "--admin",
      "127.0.0.1:0",
      "--drain-timeout",
      "10s",
      "--log-json",
    ]);
    await server.waitFor(/admin on (http:\/\/\S+)/);
    const admin = /admin on (http:\/\/\S+)/.exec(server.out)![1]!;
    assert.match(server.out, /auth key .*auth\.key \(EdDSA, fingerprint [0-9a-f]{16}\)/);

    const tokenFile = join(home, "web-1.token");
    writeFileSync(tokenFile, await create(["--name", "web-1", "--role", "agent", "--label", "role=web"]));
    const handlers = join(home, "slow.mjs");
    writeFileSync(
      handlers,
      "export async function slow(ms) { await new Promise((r) => setTimeout(r, ms)); return ms; }\n",
    );
    const agent = start([
      "agent",
      "--server",
      tcp,
      "--name",
      "web-1",
      "--token-file",
      tokenFile,
      "--handlers",
      handlers,
      "--log-json",
    ]);

    // On the server's machine, operator commands sign their own admin token with the key.
    const list = async (): Promise<AgentInfo[]> => {
      const r = await cli(["agents", "--server", ws, "--json"]);
      assert.equal(r.code, 0, r.err);
      return JSON.parse(r.out) as AgentInfo[];
    };
    const web1 = await eventually("web-1 connected", async () =>
      (await list()).find((a) => a.name === "web-1" && a.state === "connected"),
    );
    assert.deepEqual(web1.labels, { role: "web" }, "the labels came from the token");
    const ping = await cli(["call", "web-1", "sys.ping", "--server", ws]);
    assert.equal(ping.code, 0, ping.err);

    // Someone else's token: refused, saying why, and retried (an agent never gives up).
    const impostor = start([
      "agent",
      "--server",
      tcp,
      "--name",
      "web-2",
      "--token-file",
      tokenFile,
      "--log-json",
    ]);
    await eventually("the impostor refused", async () =>
      /the token is for agent web-1, not web-2/.test(impostor.err) ? true : undefined,
    );
    impostor.child.kill("SIGKILL");
    // No credential at all, from a machine without the key: refused, exit 1.
    const anon = await runCli(["agents", "--server", ws], 20_000, { MUSTER_HOME: join(home, "nowhere") });
    assert.equal(anon.code, 1);
    assert.match(anon.err, /refused this operator: .*no credential/);

    // The admin API: no token, the wrong role, the right one.
    const operator = await create(["--name", "ann", "--role", "operator"]);
    const agentToken = readFileSync(tokenFile, "utf8").trim();
    assert.equal((await http(`${admin}/healthz`)).status, 200);
    assert.equal((await http(`${admin}/api/agents`)).status, 401);
    assert.equal((await http(`${admin}/api/agents`, agentToken)).status, 403);
    const agents = await http(`${admin}/api/agents`, operator);
    assert.equal(agents.status, 200);
    assert.match(agents.body, /"name":"web-1"/);
    const detail = JSON.parse((await http(`${admin}/api/agents/web-1`, operator)).body) as Record<
      string,
      unknown
    >;
    assert.equal((detail.identity as { role: string }).role, "agent");
    assert.equal((detail.session as { state: string }).state, "connected");
    assert.equal(
      (
        await http(`${admin}/api/flags`, operator, {
          method: "PUT",
          body: "{}",
          headers: { "content-type": "application/json" },
        })
      ).status,
      403,
    );
    const metrics = await http(`${admin}/metrics`, operator);
    assert.match(metrics.body, /muster_handshakes_total\{result="new"\}/);
    assert.match(metrics.body, /muster_auth_failures_total\{reason="name"\}/);

    // muster status and muster flags, with the local admin token.
    const status = await cli(["status", "--admin", admin]);
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, /ready/);
    const set = await cli(["flags", "set", "heartbeat-interval=1s", "--admin", admin]);
    assert.equal(set.code, 0, set.err);
    const flags = JSON.parse((await http(`${admin}/api/flags`, operator)).body) as {
      flags: Array<{ name: string; value: unknown; source: string }>;
    };
    const heartbeat = flags.flags.find((f) => f.name === "heartbeat-interval");
    assert.equal(heartbeat?.value, 1000);
    assert.equal(heartbeat?.source, "api");
    await eventually("the agent told the new heartbeat", async () =>
      /heartbeat interval changed/.test(agent.err) ? true : undefined,
    );
    const badFlag = await cli(["flags", "set", "heartbeat-interval=soon", "--admin", admin]);
    assert.equal(badFlag.code, 1);
    assert.match(badFlag.err, /not a duration/);

    // Revoking the operator token: the API refuses it from now on.
    const revoked = await cli(["token", "revoke", operator, "--reason", "left the team"]);
    assert.equal(revoked.code, 0, revoked.err);
    await eventually("the revoked token refused", async () => {
      const r = await http(`${admin}/api/agents`, operator);
      return r.status === 401 && /was revoked/.test(r.body) ? true : undefined;
    });

    // SIGTERM during a call: the call finishes, then the server exits 0.
    // Long enough to be seen in flight by a `muster agents` that starts on a loaded machine.
    const call = start(["call", "web-1", "slow", "5000", "--server", ws, "--timeout", "8s"]);
    await eventually("the call in flight", async () =>
      (await list()).find((a) => a.name === "web-1" && a.pendingCalls === 1),
    );
    server.child.kill("SIGTERM");
    assert.equal(await call.exited, 0, call.out + call.err);
    assert.match(call.out, /web-1\s+ok/);
    assert.equal(await server.exited, 0, server.err);
    assert.match(server.err, /"abandoned":0/);
    agent.child.kill("SIGKILL");
  });

  it("revoking an agent's token ends its live session; a second SIGTERM exits at once", async () => {
    const port = await freePort();
    const ws = `ws://127.0.0.1:${port}`;
    const server = start(["server", "--listen", ws, "--drain-timeout", "60s", "--log-json"]);
    await server.waitFor("listening on");
    const token = await create(["--name", "rev-1", "--role", "agent"]);
    const handlers = join(home, "forever.mjs");
    writeFileSync(handlers, "export function forever() { return new Promise(() => {}); }\n");
    const agent = start([
      "agent",
      "--server",
      ws,
      "--name",
      "rev-1",
      "--token",
      token,
      "--handlers",
      handlers,
      "--log-json",
    ]);
    const state = async (): Promise<AgentInfo | undefined> => {
      const r = await cli(["agents", "--server", ws, "--json"]);
      return r.code === 0 ? (JSON.parse(r.out) as AgentInfo[]).find((a) => a.name === "rev-1") : undefined;
    };
    await eventually("rev-1 connected", async () =>
      (await state())?.state === "connected" ? true : undefined,
    );
    const r = await cli(["token", "revoke", decodeTokenUnverified(token).id]);
    assert.equal(r.code, 0, r.err);
    const gone = await eventually("rev-1 offline", async () => {
      const a = await state();
      return a?.state === "offline" ? a : undefined;
    });
    assert.match(gone.disconnectReason ?? "", /was revoked/);
    await eventually("the agent told", async () =>
      /no longer accepts this agent's credential/.test(agent.err) ? true : undefined,
    );

    // A call that never ends holds the drain; a second signal does not wait for it.
    const other = await create(["--name", "rev-2", "--role", "agent"]);
    const stuck = start([
      "agent",
      "--server",
      ws,
      "--name",
      "rev-2",
      "--token",
      other,
      "--handlers",
      handlers,
    ]);
    await eventually("rev-2 connected", async () => {
      const res = await cli(["agents", "--server", ws, "--json"]);
      return res.code === 0 &&
        (JSON.parse(res.out) as AgentInfo[]).some((a) => a.name === "rev-2" && a.state === "connected")
        ? true
        : undefined;
    });
    const call = start(["call", "rev-2", "forever", "--server", ws, "--timeout", "60s"]);
    await eventually("the call in flight", () => callPending(ws));
    server.child.kill("SIGTERM");
    await eventually("draining", async () => (/stopping: draining/.test(server.err) ? true : undefined));
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 1);
    assert.match(server.err, /second stop request: exiting now/);
    call.child.kill("SIGKILL");
    stuck.child.kill("SIGKILL");
    agent.child.kill("SIGKILL");
  });

  it("enrolment: pending, accepted by an admin, then the agent keeps the token it was issued", async () => {
    const port = await freePort();
    const ws = `ws://127.0.0.1:${port}`;
    const server = start(["server", "--listen", ws, "--approve", "--admin", "127.0.0.1:0", "--log-json"]);
    await server.waitFor(/admin on (http:\/\/\S+)/);
    const admin = /admin on (http:\/\/\S+)/.exec(server.out)![1]!;
    const enrolFile = join(home, "enrol.token");
    const enrol = await create(["--name", "edge-*", "--role", "enrol", "--label", "zone=eu"]);
    writeFileSync(enrolFile, enrol);
    const file = join(home, "edge-1.token");
    const agent = start([
      "agent",
      "--server",
      ws,
      "--name",
      "edge-1",
      "--enrol-token-file",
      enrolFile,
      "--token-file",
      file,
      "--log-json",
    ]);
    await agent.waitFor("pending: waiting for an operator to accept edge-1");
    const listed = await cli(["agents", "--server", ws]);
    assert.match(listed.out, /edge-1\s+zone=eu\s+pending/);
    const bad = await cli(["agents", "accept", "--server", ws]);
    assert.equal(bad.code, 2);
    const accept = await cli(["agents", "accept", "edge-1", "--server", ws]);
    assert.equal(accept.code, 0, accept.err);
    assert.match(accept.out, /accepted edge-1 \(fingerprint [0-9a-f]{16}/);
    await agent.waitFor("enrolled");
    const issued = decodeTokenUnverified(readFileSync(file, "utf8").trim());
    assert.equal(issued.role, "agent");
    assert.equal(issued.subject, "edge-1");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(readFileSync(enrolFile, "utf8"), enrol, "the shared enrol token is never written to");
    // A second agent with the same enrol token asks to join too: it is not refused.
    const second = start([
      "agent",
      "--server",
      ws,
      "--name",
      "edge-2",
      "--enrol-token-file",
      enrolFile,
      "--token-file",
      join(home, "edge-2.token"),
    ]);
    await second.waitFor("pending: waiting for an operator to accept edge-2");
    second.child.kill("SIGKILL");
    const ping = await cli(["call", "edge-1", "sys.ping", "--server", ws]);
    assert.equal(ping.code, 0, ping.err);
    // muster shutdown: a graceful drain through the admin API; the process exits 0.
    const down = await cli(["shutdown", "--admin", admin]);
    assert.equal(down.code, 0, down.err);
    assert.equal(await server.exited, 0);
    agent.child.kill("SIGKILL");
  });

  it("standalone: no tokens on loopback, and it says so loudly", async () => {
    const port = await freePort();
    const server = start(["server", "--standalone", "--listen", `ws://127.0.0.1:${port}`]);
    await server.waitFor("WARNING: standalone mode");
    const ready = await http(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    assert.match(ready.body, /standalone/i);
    assert.equal((await http(`http://127.0.0.1:${port}/api/agents`)).status, 200);
    const mixed = await cli(["server", "--standalone", "--approve"]);
    assert.equal(mixed.code, 2);
    assert.match(mixed.err, /--standalone has no authentication: --approve does not go with it/);
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);
  });
});

async function callPending(ws: string): Promise<true | undefined> {
  const r = await runCli(["agents", "--server", ws, "--json"], 20_000, env);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.out) as AgentInfo[]).some((a) => a.name === "rev-2" && a.pendingCalls === 1)
    ? true
    : undefined;
}
