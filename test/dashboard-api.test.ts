// The dashboard's server side over real HTTP on loopback, with real agents: the live streams
// (snapshot, deltas, replay after a cut, a new snapshot after a gap, the target filter, the
// bounds), the call console's endpoint, the static files and their headers, and who may use
// them (tokens, roles, grants; a standalone server's own pages only).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKeyFile } from "../src/auth/keys.js";
import { issueToken } from "../src/auth/tokens.js";
import { MemoryBackplane } from "../src/cluster/memory-bus.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { MemoryNetwork } from "../src/transport/memory.js";
import { quickReconnect, until } from "./support/fleet.js";
import { openSse } from "./support/sse-client.js";

const dir = mkdtempSync(join(tmpdir(), "muster-dashboard-"));
const key = generateKeyFile(join(dir, "auth.key"), "EdDSA");
after(() => rmSync(dir, { recursive: true, force: true }));

/** A JSON answer, as the tests read it. */
type Json = Record<string, unknown> & { message: string; error: string };
async function json(res: Response | Promise<Response>): Promise<Json> {
  return (await (await res).json()) as Json;
}

/** A raw HTTP request (fetch will not send some of these headers), answered whole. */
function raw(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the dashboard's endpoints on a server with tokens", () => {
  let server: MusterServer;
  let base: string;
  let tcp: string;
  let operator: string;
  let admin: string;
  let narrow: string;
  const agents: MusterAgent[] = [];
  const cancelled: string[] = [];

  async function addAgent(name: string, labels: Record<string, string>): Promise<MusterAgent> {
    const agent = createAgent({
      name,
      labels,
      servers: [tcp],
      token: await issueToken(key, { role: "agent", subject: name, labels }),
      reconnect: quickReconnect,
    });
    agent.handle("test.echo", (req) => ({ from: name, req }));
    agent.handle("test.slow", (_req, ctx) => {
      return new Promise((resolve) => {
        ctx.signal.addEventListener("abort", () => {
          cancelled.push(name);
          resolve(null);
        });
      });
    });
    agent.start();
    await agent.connected();
    agents.push(agent);
    return agent;
  }
  const auth = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

  before(async () => {
    server = createServer({
      listen: ["ws://127.0.0.1:0", "tcp://127.0.0.1:0"],
      auth: { key },
      dashboard: { maxStreams: 6, maxBufferedBytes: 64 * 1024 },
    });
    await server.start();
    base = server.listeners[0]!.url.replace("ws://", "http://");
    tcp = server.listeners[1]!.url;
    operator = await issueToken(key, { role: "operator", subject: "olga" });
    admin = await issueToken(key, { role: "admin", subject: "ada" });
    narrow = await issueToken(key, { role: "operator", subject: "nina", methods: ["test.echo"] });
    await addAgent("web-1", { role: "web" });
    await addAgent("web-2", { role: "web" });
    await addAgent("db-1", { role: "db" });
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await server.close();
  });

  it("/api/whoami says who a token is; a wrong token is 401, no token is 401", async () => {
    const me = await json(fetch(`${base}/api/whoami`, { headers: auth(admin) }));
    assert.deepEqual(me, {
      subject: "ada",
      role: "admin",
      standalone: false,
      server: server.servers()[0]!.name,
    });
    const n = await json(fetch(`${base}/api/whoami`, { headers: auth(narrow) }));
    assert.deepEqual(n.methods, ["test.echo"]);
    assert.equal((await fetch(`${base}/api/whoami`, { headers: auth("nonsense") })).status, 401);
    assert.equal((await fetch(`${base}/api/whoami`)).status, 401);
    assert.equal((await fetch(`${base}/api/live/fleet`)).status, 401);
  });

  it("the fleet stream: a snapshot, then the changes; a reconnect with the last id replays what it missed", async () => {
    const s = await openSse(`${base}/api/live/fleet`, auth(operator));
    assert.equal(s.status, 200);
    assert.match(s.headers.get("content-type") ?? "", /^text\/event-stream/);
    const snap = await s.next((m) => m.data.type === "snapshot", 5000, "the snapshot");
    const names = (snap.data.agents as Array<{ name: string }>).map((a) => a.name).sort();
    assert.deepEqual(names, ["db-1", "web-1", "web-2"]);
    assert.equal(snap.data.total, 3);
    assert.ok(snap.id !== undefined);
    // A join arrives as a delta with the whole row.
    await addAgent("web-3", { role: "web" });
    const joined = await s.next(
      (m) => m.data.type === "agent" && (m.data.data as { agent: { name: string } }).agent.name === "web-3",
      5000,
      "web-3's join",
    );
    assert.equal(joined.data.topic, "fleet");
    const lastSeen = s.lastId()!;
    s.close();
    // While nobody watches: web-3 leaves, web-4 joins.
    await agents.find((a) => a.name === "web-3")!.close();
    await addAgent("web-4", { role: "web" });
    await until(() => server.agent("web-4")?.state === "connected");
    await new Promise((r) => setTimeout(r, 150));
    const again = await openSse(`${base}/api/live/fleet`, { ...auth(operator), "last-event-id": lastSeen });
    const web4 = await again.next(
      (m) => m.data.type === "agent" && (m.data.data as { agent: { name: string } }).agent.name === "web-4",
      5000,
      "web-4 replayed",
    );
    assert.ok(web4.id !== undefined);
    const replayed = again.messages.map((m) => m.data);
    assert.ok(!replayed.some((d) => d.type === "snapshot"), "a replay, not a new snapshot");
    const web3 = replayed.find(
      (d) => d.type === "agent" && (d.data as { agent: { name: string } }).agent.name === "web-3",
    ) as { data: { agent: { state: string }; was: string } } | undefined;
    assert.equal(web3?.data.agent.state, "offline", "web-3's departure replayed");
    assert.equal(web3?.data.was, "connected");
    again.close();
  });

  it("a reconnect whose id the server does not hold (another epoch) gets a new snapshot", async () => {
    const s = await openSse(`${base}/api/live/fleet`, {
      ...auth(operator),
      "last-event-id": "000000000000-5",
    });
    const first = await s.next(() => true, 5000, "the first message");
    assert.equal(first.data.type, "snapshot");
    s.close();
  });

  it("?target= filters the fleet exactly as muster call targets; a bad target is 400", async () => {
    const s = await openSse(`${base}/api/live/fleet?target=${encodeURIComponent("role=db")}`, auth(operator));
    const snap = await s.next((m) => m.data.type === "snapshot");
    assert.deepEqual(
      (snap.data.agents as Array<{ name: string }>).map((a) => a.name),
      ["db-1"],
    );
    s.close();
    const bad = await fetch(`${base}/api/live/fleet?target=${encodeURIComponent("=x")}`, {
      headers: auth(operator),
    });
    assert.equal(bad.status, 400);
    assert.equal((await json(bad)).error, "invalid_argument");
    const unknown = await fetch(`${base}/api/live/nothing`, { headers: auth(operator) });
    assert.equal(unknown.status, 404);
    assert.match((await json(unknown)).message, /pages: fleet, events, runs, servers/);
  });

  it("the events stream carries fan-outs; the servers stream the servers and flags, live", async () => {
    const ev = await openSse(`${base}/api/live/events`, auth(operator));
    await ev.next((m) => m.data.type === "snapshot");
    const sv = await openSse(`${base}/api/live/servers`, auth(operator));
    const snap = await sv.next((m) => m.data.type === "snapshot");
    assert.equal((snap.data.servers as unknown[]).length, 1);
    assert.equal(snap.data.readiness, "ready");
    assert.ok(Array.isArray(snap.data.flags));
    await server.call("role=web", "test.echo", 1).done;
    const done = await ev.next((m) => m.data.type === "call-done", 5000, "call-done");
    assert.deepEqual((done.data.data as { summary: unknown }).summary, {
      ok: 3,
      error: 0,
      timeout: 0,
      notConnected: 1,
    });
    const put = await fetch(`${base}/api/flags`, {
      method: "PUT",
      headers: { ...auth(admin), "content-type": "application/json" },
      body: JSON.stringify({ "call-timeout": 20_000 }),
    });
    assert.equal(put.status, 200, (await put.clone().text()).slice(0, 300));
    const flag = await sv.next((m) => m.data.type === "flag", 5000, "the flag change");
    assert.deepEqual(flag.data.data, { flag: "call-timeout", from: 10_000, to: 20_000, by: "ada" });
    await sv.next((m) => m.data.type === "servers", 5000, "the servers' figures");
    ev.close();
    sv.close();
  });

  it("POST /api/calls streams one outcome per expected agent, an absent one not connected", async () => {
    const res = await fetch(`${base}/api/calls`, {
      method: "POST",
      headers: { ...auth(operator), "content-type": "application/json" },
      body: JSON.stringify({ target: "web-1,web-2,ghost", method: "test.echo", args: { n: 1 } }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    type Line = { type: string; agent: string; status: string; value: unknown; summary: unknown };
    const lines = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Line);
    assert.deepEqual(lines[0], { type: "expected", agents: ["web-1", "web-2", "ghost"] });
    const outcomes = lines.filter((l) => l.type === "outcome");
    assert.equal(outcomes.length, 3);
    const by = new Map(outcomes.map((o) => [o.agent, o]));
    assert.deepEqual(by.get("web-1")?.value, { from: "web-1", req: { n: 1 } });
    assert.equal(by.get("ghost")?.status, "not_connected");
    assert.deepEqual(lines.at(-1)?.summary, { ok: 2, error: 0, timeout: 0, notConnected: 1 });
  });

  it("POST /api/calls: a token's grants hold; bad bodies get precise errors", async () => {
    const call = (t: string, body: unknown, type = "application/json") =>
      fetch(`${base}/api/calls`, {
        method: "POST",
        headers: { ...auth(t), "content-type": type },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
    const denied = await call(narrow, { target: "all", method: "test.slow" });
    assert.equal(denied.status, 403);
    assert.match((await json(denied)).message, /nina may not call "test\.slow"/);
    assert.equal((await call(narrow, { target: "web-1", method: "test.echo" })).status, 200);
    const cases: Array<[unknown, number, RegExp]> = [
      ["{", 400, /not valid JSON/],
      [{ method: "x" }, 400, /target must be a string/],
      [{ target: "all" }, 400, /method must be a non-empty string/],
      [{ target: "all", method: "x", timeoutMs: -1 }, 400, /timeoutMs/],
      [{ target: "=x", method: "x" }, 400, /selector term "=x"/],
      [{ target: "all", method: "muster.ping" }, 403, /built-in/],
    ];
    for (const [body, status, message] of cases) {
      const r = await call(operator, body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.match((await json(r)).message, message);
    }
    assert.equal((await call(operator, "x", "text/plain")).status, 415);
    const big = await call(operator, { target: "all", method: "x", args: "y".repeat(70_000) });
    assert.equal(big.status, 413);
  });

  it("closing a call's request cancels the calls still running on the agents", async () => {
    const controller = new AbortController();
    const res = await fetch(`${base}/api/calls`, {
      method: "POST",
      headers: { ...auth(operator), "content-type": "application/json" },
      body: JSON.stringify({ target: "role=db", method: "test.slow", timeoutMs: 60_000 }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /"expected"/);
    controller.abort();
    await until(() => cancelled.includes("db-1"), 5000, "db-1's call cancelled");
  });

  it("a client that stops reading is cut once its unsent bytes pass the bound; others go on", async () => {
    const stalled = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      const req = request(`${base}/api/live/events`, { headers: auth(operator) }, resolve);
      req.on("error", reject);
      req.end();
    });
    assert.equal(stalled.statusCode, 200);
    stalled.pause();
    const healthy = await openSse(`${base}/api/live/events`, auth(operator));
    await healthy.next((m) => m.data.type === "snapshot");
    // Fan-outs log two events of ~1 KiB each (their targets, clipped): 20,000 of them are
    // ~40 MiB, more than the kernel's socket buffers and the bound together.
    const target = Array.from({ length: 20 }, (_, i) => `ghost-${i}-${"x".repeat(60)}`).join(",");
    for (let i = 0; i < 20_000; i++) {
      await server.call(target, "test.echo").done;
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    // Read now: a stream the server cut ends once its buffered bytes are read; one it did not
    // cut never ends.
    const ended = new Promise<boolean>((resolve) => {
      stalled.on("end", () => resolve(true));
      stalled.on("error", () => resolve(true));
      setTimeout(() => resolve(false), 10_000);
    });
    stalled.resume();
    assert.ok(await ended, "the stalled stream was cut");
    await healthy.next((m) => m.data.type === "call-done", 5000, "the healthy stream going on");
    healthy.close();
  });

  it("live streams are bounded in number: one more is refused with 429", async () => {
    const open = [];
    for (let i = 0; i < 6; i++) open.push(await openSse(`${base}/api/live/events`, auth(operator)));
    const refused = await fetch(`${base}/api/live/events`, { headers: auth(operator) });
    assert.equal(refused.status, 429);
    assert.match((await json(refused)).message, /6 live streams are open/);
    for (const s of open) s.close();
    // Their places are given back: a new stream opens.
    for (let i = 0; ; i++) {
      const r = await fetch(`${base}/api/live/events`, { headers: auth(operator) });
      await r.body?.cancel();
      if (r.status === 200) break;
      assert.ok(i < 100, "a stream opens again once the others closed");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  it("/ui/ serves the dashboard with its CSP; nothing outside it; HEAD and 405", async () => {
    const redirect = await fetch(`${base}/ui`, { redirect: "manual" });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get("location"), "/ui/");
    const index = await fetch(`${base}/ui/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get("content-type")!, /^text\/html/);
    const csp = index.headers.get("content-security-policy")!;
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /default-src 'none'/);
    assert.equal(index.headers.get("x-frame-options"), "DENY");
    const html = await index.text();
    assert.match(html, /<script type="module" src="js\/app\.js"><\/script>/);
    assert.doesNotMatch(html, /<script>|<script type="module">|\son[a-z]+=/, "no inline script or handler");
    for (const path of ["js/app.js", "js/live.js", "vendor/preact-htm.js", "vendor/uplot.js", "app.css"]) {
      const r = await fetch(`${base}/ui/${path}`);
      assert.equal(r.status, 200, path);
    }
    for (const path of [
      "/ui/../package.json",
      "/ui/%2e%2e/package.json",
      "/ui/js/../../package.json",
      "/ui/nope.js",
    ]) {
      const r = await raw(`${base}${path}`, {});
      assert.equal(r.status, 404, path);
    }
    assert.equal((await fetch(`${base}/ui/`, { method: "POST" })).status, 405);
    const head = await fetch(`${base}/ui/js/app.js`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
  });

  it("/help lists the dashboard's endpoints", async () => {
    const help = await json(fetch(`${base}/help`));
    const paths = (help.endpoints as Array<{ path: string }>).map((e) => e.path);
    for (const p of ["/ui/", "/api/whoami", "/api/live/:page", "/api/calls"]) assert.ok(paths.includes(p), p);
  });
});

describe("the dashboard on a standalone server", () => {
  let server: MusterServer;
  let base: string;
  let port: number;

  before(async () => {
    server = createServer({ listen: ["ws://127.0.0.1:0"], standalone: true });
    await server.start();
    base = server.listeners[0]!.url.replace("ws://", "http://");
    port = Number(new URL(base).port);
  });
  after(() => server.close());

  it("answers its own pages reached at a loopback name, and no other site's", async () => {
    const own = await raw(`${base}/api/whoami`, {
      host: `127.0.0.1:${port}`,
      "sec-fetch-site": "same-origin",
    });
    assert.equal(own.status, 200);
    assert.equal(JSON.parse(own.body).standalone, true);
    const localhost = await raw(`${base}/api/whoami`, {
      host: `localhost:${port}`,
      "sec-fetch-site": "same-origin",
      origin: `http://localhost:${port}`,
    });
    assert.equal(localhost.status, 200);
    const refusals: Array<Record<string, string>> = [
      // Another site's page.
      { host: `127.0.0.1:${port}`, "sec-fetch-site": "cross-site", origin: "http://evil.example" },
      // DNS rebinding: the browser thinks it is same-origin, but the host is not a loopback name.
      { host: `evil.example:${port}`, "sec-fetch-site": "same-origin" },
      // Same-origin claimed, but the Origin names another site.
      { host: `127.0.0.1:${port}`, "sec-fetch-site": "same-origin", origin: "http://evil.example" },
    ];
    for (const headers of refusals) {
      const r = await raw(`${base}/api/whoami`, headers);
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.match(JSON.parse(r.body).message, /refused in standalone mode/);
    }
  });
});

describe("the dashboard of a server in a cluster", () => {
  const hub = new MemoryBackplane();
  const net = new MemoryNetwork();
  const servers: MusterServer[] = [];
  let agent: MusterAgent | undefined;

  before(async () => {
    for (const name of ["s1", "s2"]) {
      const server = createServer({
        name,
        listen: ["ws://127.0.0.1:0", `memory://${name}`],
        memory: net,
        standalone: true,
        cluster: { bus: hub.connect({ name }), refreshMs: 100 },
      });
      await server.start();
      servers.push(server);
    }
  });
  after(async () => {
    await agent?.close();
    for (const s of servers) await s.close();
  });

  it("one server's streams show the agents and servers of the whole cluster", async () => {
    const base = servers[0]!.listeners[0]!.url.replace("ws://", "http://");
    await until(() => servers[0]!.servers().length === 2, 5000, "s1 to see s2");
    const fleet = await openSse(`${base}/api/live/fleet`);
    await fleet.next((m) => m.data.type === "snapshot");
    // An agent of the other server joins: its row arrives here, naming the server holding it.
    agent = createAgent({ name: "far-1", servers: ["memory://s2"], memory: net, reconnect: quickReconnect });
    agent.start();
    const row = await fleet.next(
      (m) => m.data.type === "agent" && (m.data.data as { agent: { name: string } }).agent.name === "far-1",
      10_000,
      "far-1 listed on s1",
    );
    assert.equal((row.data.data as { agent: { server: string } }).agent.server, "s2");
    fleet.close();
    const sv = await openSse(`${base}/api/live/servers`);
    const snap = await sv.next((m) => m.data.type === "snapshot");
    assert.deepEqual(
      (snap.data.servers as Array<{ name: string }>).map((s) => s.name),
      ["s1", "s2"],
    );
    sv.close();
  });
});
