// The admin HTTP API with real HTTP requests: health, readiness, version, help, and metrics
// checked by promtool and parsed for the values a fleet's activity should produce.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { networkInterfaces } from "node:os";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { VERSION } from "../src/internal/version.js";
import { ADMIN_ENDPOINTS } from "../src/server/admin.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { runCli, startCli } from "./support/cli.js";
import { quickReconnect } from "./support/fleet.js";

/** The value of one sample in a Prometheus exposition, or undefined. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** A non-loopback IPv4 address of this machine, if it has one. */
function externalAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return undefined;
}

describe("the admin API", () => {
  let server: MusterServer;
  let base: string;
  let ws: string;
  const agents: MusterAgent[] = [];

  before(async () => {
    server = createServer({
      listen: ["ws://127.0.0.1:0", "tcp://127.0.0.1:0"],
      admin: { listen: "127.0.0.1:0" },
      standalone: true,
    });
    assert.equal(server.readiness, "starting");
    await server.start();
    base = server.adminUrl!;
    ws = server.listeners[0]!.url.replace("ws://", "http://");
    for (const name of ["web-1", "web-2"]) {
      const a = createAgent({ name, servers: [server.listeners[1]!.url], reconnect: quickReconnect });
      a.start();
      await a.connected();
      agents.push(a);
    }
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await server.close();
  });

  it("/healthz and /readyz answer without a token, on the admin port and the WebSocket port", async () => {
    for (const root of [base, ws]) {
      const h = await fetch(`${root}/healthz`);
      assert.equal(h.status, 200);
      assert.equal(await h.text(), "ok\n");
      const r = await fetch(`${root}/readyz`);
      assert.equal(r.status, 200);
      assert.equal(await r.text(), "ready\nWARNING: standalone mode: no authentication, loopback only\n");
      assert.equal(r.headers.get("cache-control"), "no-store");
    }
  });

  it("/version and /help", async () => {
    const v = (await (await fetch(`${base}/version`)).json()) as Record<string, string>;
    assert.equal(v.version, VERSION);
    assert.equal(v.node, process.versions.node);
    assert.equal(typeof v.commit, "string");
    assert.equal(typeof v.buildTime, "string");
    const help = (await (await fetch(`${base}/help`)).json()) as { endpoints: { path: string }[] };
    assert.deepEqual(
      help.endpoints.map((e) => e.path),
      ADMIN_ENDPOINTS.map((e) => e.path),
    );
  });

  it("an unknown path is 404 naming /help; a POST is 405", async () => {
    const r = await fetch(`${base}/nope`);
    assert.equal(r.status, 404);
    assert.deepEqual(await r.json(), {
      error: "not_found",
      message: "no endpoint /nope; GET /help lists them",
    });
    const p = await fetch(`${base}/healthz`, { method: "POST" });
    assert.equal(p.status, 405);
    assert.equal(p.headers.get("allow"), "GET, HEAD");
  });

  it("/metrics counts agents, calls by method and outcome, latencies and events, and passes promtool", async (t) => {
    await server.call("all", "sys.ping").done;
    await server.call({ names: ["web-1", "ghost"] }, "sys.info").done;
    const r = await fetch(`${base}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    assert.equal(sample(text, "muster_agents", 'state="connected"'), 2);
    assert.equal(sample(text, "muster_agents", 'state="offline"'), 0);
    // The two agents, and the HTTP connections open now (this request's, kept-alive ones).
    assert.ok((sample(text, "muster_connections_open") ?? 0) >= 3);
    assert.equal(sample(text, "muster_calls_total", 'method="sys.ping",outcome="ok"'), 2);
    assert.equal(sample(text, "muster_calls_total", 'method="sys.info",outcome="ok"'), 1);
    assert.equal(sample(text, "muster_calls_total", 'method="sys.info",outcome="not_connected"'), 1);
    assert.equal(sample(text, "muster_call_duration_seconds_count", 'method="sys.ping"'), 2);
    assert.equal(sample(text, "muster_agent_events_total", 'event="join"'), 2);
    assert.ok((sample(text, "nodejs_eventloop_lag_seconds") ?? -1) >= 0, "event-loop lag");
    assert.ok((sample(text, "nodejs_heap_size_used_bytes") ?? 0) > 0, "heap");

    if (spawnSync("sh", ["-c", "command -v promtool"]).status !== 0) {
      t.skip("promtool is not installed (Debian package prometheus): the lint part was skipped");
      return;
    }
    const lint = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(lint.status, 0, `promtool: ${lint.stdout}${lint.stderr}`);
  });

  it("/metrics is refused to a non-loopback address unless metrics are public", async (t) => {
    const ip = externalAddress();
    if (ip === undefined) {
      t.skip("this machine has no non-loopback IPv4 address to make a remote request from");
      return;
    }
    for (const metricsPublic of [false, true]) {
      const s = createServer({ listen: [`ws://${ip}:0`], admin: { metricsPublic }, standalone: true });
      await s.start();
      try {
        const r = await fetch(`${s.listeners[0]!.url.replace("ws://", "http://")}/metrics`);
        assert.equal(r.status, metricsPublic ? 200 : 403);
        if (!metricsPublic)
          assert.match(((await r.json()) as { message: string }).message, /--metrics-public/);
        else await r.text();
      } finally {
        await s.close();
      }
    }
  });

  it("readiness turns draining when the server closes", async () => {
    const s = createServer({ listen: ["ws://127.0.0.1:0"], standalone: true });
    await s.start();
    const closing = s.close();
    assert.equal(s.readiness, "draining");
    await closing;
  });
});

describe("the admin API through the CLI", () => {
  it("muster server --admin prints its URL and serves it; a bad --admin exits 2", async () => {
    const p = startCli(["server", "--standalone", "--listen", "tcp://127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    try {
      await p.waitFor(/admin on http:\/\/127\.0\.0\.1:\d+/);
      const url = /admin on (\S+)/.exec(p.out)![1]!;
      const r = await fetch(`${url}/readyz`);
      assert.equal(await r.text(), "ready\nWARNING: standalone mode: no authentication, loopback only\n");
    } finally {
      p.child.kill("SIGTERM");
      assert.equal(await p.exited, 0);
    }
    const bad = await runCli(["server", "--admin", "http://127.0.0.1:80"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /"http:\/\/127\.0\.0\.1:80" is a URL; give HOST:PORT without a scheme/);
  });
});
