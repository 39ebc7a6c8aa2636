// The admin HTTP layer over a fake AdminHost, with real HTTP requests: routing, authentication
// and roles, every endpoint, malformed input, debug profiles, and clients that go away.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type FakeAdminHost,
  fakeAdminHost,
  fakeAgent,
  serveAdmin,
  TOKENS,
} from "../../test/support/fake-admin-host.js";
import { generateKeyFile } from "../auth/keys.js";
import { decodeTokenUnverified, issueToken } from "../auth/tokens.js";
import { ADMIN_ENDPOINTS } from "./admin.js";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

interface Req {
  method?: string;
  token?: string;
  headers?: Record<string, string>;
  /** The body, or chunks written one by one (chunked, no content-length). */
  body?: string | string[];
}

/** One HTTP request with node:http (full control of headers and body). */
function call(base: string, path: string, r: Req = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...r.headers };
    if (r.token !== undefined) headers.authorization = `Bearer ${r.token}`;
    if (typeof r.body === "string" && !("content-type" in headers))
      headers["content-type"] = "application/json";
    const req = httpRequest(`${base}${path}`, { method: r.method ?? "GET", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    if (Array.isArray(r.body)) for (const chunk of r.body) req.write(chunk);
    else if (r.body !== undefined) req.write(r.body);
    req.end();
  });
}

/** A signing key in a fresh temporary folder (removed at exit). */
async function makeKey() {
  const dir = mkdtempSync(join(tmpdir(), "muster-admin-key-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return generateKeyFile(join(dir, "k"), "EdDSA");
}

const parse = (r: Reply): Record<string, unknown> => JSON.parse(r.body) as Record<string, unknown>;

/** Endpoints that need a token, with a method that reaches them and the role they need. */
const PROTECTED = ADMIN_ENDPOINTS.filter((e) => e.role !== "none").map((e) => ({
  method: e.methods[0]!,
  path: e.path.replace(":name", "offline-agents"),
  role: e.role,
}));

describe("the admin API over an AdminHost", () => {
  let host: FakeAdminHost;
  let base: string;
  let stop: () => Promise<void>;

  before(async () => {
    host = fakeAdminHost({
      agents: [
        fakeAgent("web-3", "connected"),
        fakeAgent("db:1", "suspect"),
        fakeAgent("web-1", "connected"),
        fakeAgent("new-1", "pending"),
        fakeAgent("web-2", "offline"),
      ],
    });
    ({ url: base, close: stop } = await serveAdmin(host));
  });
  after(async () => {
    await stop();
    host.close();
  });

  it("/healthz, /readyz and /help answer anyone, never cached", async () => {
    const h = await call(base, "/healthz");
    assert.equal(h.status, 200);
    assert.equal(h.body, "ok\n");
    assert.equal(h.headers["cache-control"], "no-store");
    const r = await call(base, "/readyz");
    assert.deepEqual([r.status, r.body], [200, "ready\n"]);
    host.setReadiness("starting");
    const s = await call(base, "/readyz");
    host.setReadiness("ready");
    assert.deepEqual([s.status, s.body], [503, "starting\n"]);
    const head = await call(base, "/healthz", { method: "HEAD" });
    assert.deepEqual([head.status, head.body], [200, ""]);
  });

  it("/help lists every endpoint with its methods and the role it needs", async () => {
    const help = parse(await call(base, "/help")) as {
      standalone: boolean;
      endpoints: Array<{ path: string; methods: string[]; role: string }>;
    };
    assert.equal(help.standalone, false);
    assert.deepEqual(
      help.endpoints.map((e) => `${e.methods.join(",")} ${e.path} ${e.role}`),
      [
        "GET,HEAD /healthz none",
        "GET,HEAD /readyz none",
        "GET,HEAD /help none",
        "GET,HEAD /ui/ none",
        "GET /api/whoami operator",
        "GET,HEAD /version operator",
        "GET,HEAD /metrics operator",
        "GET /api/agents operator",
        "GET /api/servers operator",
        "GET /api/agents/:name operator",
        "GET /api/live/:page operator",
        "POST /api/calls operator",
        "GET /api/enrolments operator",
        "POST /api/enrolments/:name admin",
        "GET /api/revocations operator",
        "POST /api/revocations admin",
        "GET /api/flags operator",
        "PUT,PATCH /api/flags admin",
        "GET /api/caches operator",
        "DELETE,POST /api/caches admin",
        "DELETE,POST /api/caches/:name admin",
        "POST /api/shutdown admin",
        "GET /api/debug/heap admin",
        "GET /api/debug/cpu admin",
      ],
    );
  });

  it("every other endpoint is 401 without a token (www-authenticate) or with a bad one, 403 for an agent's token; each refusal is logged without the token", async () => {
    for (const e of PROTECTED) {
      const none = await call(base, e.path, { method: e.method });
      assert.equal(none.status, 401, `${e.method} ${e.path}`);
      assert.equal(none.headers["www-authenticate"], 'Bearer realm="muster"');
      assert.equal(parse(none).error, "unauthenticated");
      const bad = await call(base, e.path, { method: e.method, token: "forged" });
      assert.equal(bad.status, 401);
      assert.equal(
        parse(bad).message,
        e.path === "/metrics"
          ? `the token is not valid (or start the server with --metrics-public to serve /metrics to anyone)`
          : "the token is not valid",
      );
      const agent = await call(base, e.path, { method: e.method, token: TOKENS.agent });
      assert.equal(agent.status, 403);
      assert.equal(parse(agent).error, "permission_denied");
    }
    const refusals = host.logs.filter((l) => l.msg === "admin API: request refused");
    assert.equal(refusals.length, PROTECTED.length * 3);
    for (const l of refusals) {
      assert.equal(l.level, "warn");
      assert.equal(l.obj.who, "127.0.0.1");
      assert.match(String(l.obj.request), /^[A-Z]+ \/\S+$/);
      assert.equal(typeof l.obj.why, "string");
    }
    const logged = JSON.stringify(host.logs);
    assert.ok(!logged.includes("forged") && !logged.includes(TOKENS.agent), "a token was logged");
  });

  it("an operator's token is 403 on admin endpoints, saying which role is needed; logged with the subject", async () => {
    for (const e of PROTECTED.filter((p) => p.role === "admin")) {
      const r = await call(base, e.path, { method: e.method, token: TOKENS.operator });
      assert.equal(r.status, 403, `${e.method} ${e.path}`);
      assert.deepEqual(parse(r), {
        error: "permission_denied",
        message: `${e.method} ${ADMIN_ENDPOINTS.find((x) => x.path.replace(":name", "offline-agents") === e.path)!.path} needs the admin role; olga has the operator role`,
      });
    }
    assert.equal(
      host.logs.filter((l) => l.level === "warn" && l.obj.who === "olga").length,
      PROTECTED.filter((p) => p.role === "admin").length,
    );
    assert.deepEqual(host.shutdowns, []);
    assert.deepEqual(host.cleared, []);
  });

  it("/version and /metrics for an operator", async () => {
    const v = await call(base, "/version", { token: TOKENS.operator });
    assert.equal(v.status, 200);
    assert.equal(parse(v).node, process.versions.node);
    const m = await call(base, "/metrics", { token: TOKENS.operator });
    assert.equal(m.status, 200);
    assert.match(String(m.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    assert.match(m.body, /^muster_agents\{state="connected"\} 2$/m);
  });

  it("an unknown path is 404 naming /help; a wrong method is 405 with allow", async () => {
    const r = await call(base, "/api/nope", { token: TOKENS.admin });
    assert.equal(r.status, 404);
    assert.deepEqual(parse(r), {
      error: "not_found",
      message: "no endpoint /api/nope; GET /help lists them",
    });
    const p = await call(base, "/healthz", { method: "POST" });
    assert.equal(p.status, 405);
    assert.equal(p.headers.allow, "GET, HEAD");
    const f = await call(base, "/api/flags", { method: "DELETE" });
    assert.equal(f.status, 405);
    assert.equal(f.headers.allow, "GET, PUT, PATCH");
    assert.deepEqual(parse(f), { error: "method_not_allowed", message: "/api/flags takes GET, PUT, PATCH" });
    assert.equal((await call(base, "/api/shutdown")).headers.allow, "POST");
  });

  describe("/api/agents", () => {
    const names = (r: Reply): string[] => (parse(r).agents as Array<{ name: string }>).map((a) => a.name);

    it("pages by name with limit, after and next; counts by state", async () => {
      const first = await call(base, "/api/agents?limit=2", { token: TOKENS.operator });
      assert.equal(first.status, 200);
      assert.deepEqual(names(first), ["db:1", "new-1"]);
      assert.equal(parse(first).total, 5);
      assert.equal(parse(first).next, "new-1");
      assert.deepEqual(parse(first).counts, {
        connected: 2,
        suspect: 1,
        resuming: 0,
        pending: 1,
        offline: 1,
      });
      const second = await call(base, "/api/agents?limit=2&after=new-1", { token: TOKENS.operator });
      assert.deepEqual(names(second), ["web-1", "web-2"]);
      assert.equal(parse(second).next, "web-2");
      const last = await call(base, `/api/agents?limit=2&after=${parse(second).next}`, {
        token: TOKENS.operator,
      });
      assert.deepEqual(names(last), ["web-3"]);
      assert.equal("next" in parse(last), false);
      const all = await call(base, "/api/agents", { token: TOKENS.operator });
      assert.deepEqual(names(all), ["db:1", "new-1", "web-1", "web-2", "web-3"]);
      assert.equal("next" in parse(all), false);
    });

    it("filters by state", async () => {
      const c = await call(base, "/api/agents?state=connected", { token: TOKENS.operator });
      assert.deepEqual(names(c), ["web-1", "web-3"]);
      assert.equal(parse(c).total, 2);
      const two = await call(base, "/api/agents?state=pending,offline&limit=1", { token: TOKENS.operator });
      assert.deepEqual(names(two), ["new-1"]);
      assert.deepEqual([parse(two).total, parse(two).next], [2, "new-1"]);
    });

    it("bad query values are 400 with a precise message", async () => {
      const cases: Array<[string, string]> = [
        ["limit=0", 'limit must be a whole number from 1 to 1000; got "0"'],
        ["limit=1001", 'limit must be a whole number from 1 to 1000; got "1001"'],
        ["limit=2.5", 'limit must be a whole number from 1 to 1000; got "2.5"'],
        ["limit=", 'limit must be a whole number from 1 to 1000; got ""'],
        ["state=sleeping", 'state "sleeping" is not one of connected, suspect, resuming, pending, offline'],
        ["after=", "after must be an agent name (the next of the previous page)"],
        ["sort=name", 'GET /api/agents: unknown query parameter "sort"; it takes limit, after, state'],
        ["limit=1&limit=2", "GET /api/agents: query parameter limit is given more than once"],
      ];
      for (const [query, message] of cases) {
        const r = await call(base, `/api/agents?${query}`, { token: TOKENS.operator });
        assert.equal(r.status, 400, query);
        assert.deepEqual(parse(r), { error: "invalid_argument", message }, query);
      }
    });

    it("/api/agents/:name: details, URL-decoded; 404 when unknown; 400 for a bad escape", async () => {
      const d = await call(base, "/api/agents/db%3A1", { token: TOKENS.operator });
      assert.equal(d.status, 200);
      assert.equal(parse(d).name, "db:1");
      assert.deepEqual(parse(d).session, { state: "connected" });
      const n = await call(base, "/api/agents/ghost", { token: TOKENS.operator });
      assert.equal(n.status, 404);
      assert.deepEqual(parse(n), { error: "not_found", message: 'no agent named "ghost" is known' });
      const b = await call(base, "/api/agents/%E0%A4%A", { token: TOKENS.operator });
      assert.equal(b.status, 400);
      assert.match(String(parse(b).message), /^the path segment "%E0%A4%A" is not valid percent-encoding$/);
    });
  });

  describe("/api/revocations", () => {
    const post = (body: string, token: string = TOKENS.admin) =>
      call(base, "/api/revocations", { method: "POST", token, body });

    it("POST revokes an id or a whole token (its id, unverified), with a reason; GET lists them", async () => {
      const key = await makeKey();
      const token = await issueToken(key, { role: "agent", subject: "web-9", ttlMs: 60_000 });
      const id = decodeTokenUnverified(token).id;
      const byToken = await post(JSON.stringify({ token, reason: "laptop lost" }));
      assert.equal(byToken.status, 200, byToken.body);
      const answer = parse(byToken);
      assert.deepEqual(
        { ...answer, token: { ...(answer.token as object), expiresAt: "?" } },
        { id, fresh: true, reach: "server", token: { role: "agent", subject: "web-9", expiresAt: "?" } },
      );
      assert.ok(!byToken.body.includes(token), "the token is not answered back");
      const byId = await post('{"id":"Qm9vYmFyYmF6cXV4MTIz"}');
      assert.equal(byId.status, 200);
      assert.deepEqual(parse(byId), { id: "Qm9vYmFyYmF6cXV4MTIz", fresh: true, reach: "server" });
      const again = await post('{"id":"Qm9vYmFyYmF6cXV4MTIz"}');
      assert.equal(parse(again).fresh, false);
      const list = await call(base, "/api/revocations", { token: TOKENS.operator });
      assert.equal(list.status, 200);
      assert.deepEqual(
        (parse(list).revocations as Array<{ id: string; reason?: string; by: string }>).map((r) => [
          r.id,
          r.reason,
          r.by,
        ]),
        [
          [id, "laptop lost", "ada"],
          ["Qm9vYmFyYmF6cXV4MTIz", undefined, "ada"],
        ],
      );
    });

    it("refuses malformed bodies with 400, an operator with 403", async () => {
      const usage = /^the body must be \{"token":"<a whole token>"\} or \{"id":"<token id>"\}/;
      for (const body of ["{}", '{"id":"a","token":"b"}', '{"id":1}', '{"id":"a","why":"x"}', "[]", '"a"']) {
        const r = await post(body);
        assert.equal(r.status, 400, body);
        assert.match(String(parse(r).message), usage, body);
      }
      const long = await post(JSON.stringify({ id: "abc", reason: "x".repeat(501) }));
      assert.equal(parse(long).message, "reason must be a string of at most 500 characters");
      const notToken = await post('{"token":"a.b"}');
      assert.equal(notToken.status, 400);
      assert.match(String(parse(notToken).message), /^not a muster token/);
      const operator = await post('{"id":"abc"}', TOKENS.operator);
      assert.equal(operator.status, 403);
      assert.match(String(parse(operator).message), /POST \/api\/revocations needs the admin role/);
    });
  });

  describe("/api/flags", () => {
    const put = (body: string | string[], r: Req = {}) =>
      call(base, "/api/flags", { method: "PUT", token: TOKENS.admin, body, ...r });

    it("GET lists them for an operator", async () => {
      const r = await call(base, "/api/flags", { token: TOKENS.operator });
      assert.equal(r.status, 200);
      assert.deepEqual(
        (parse(r).flags as Array<{ name: string }>).map((f) => f.name),
        ["log-level", "heartbeat-interval"],
      );
    });

    it("PUT and PATCH change them and answer the new list; each change is logged with who", async () => {
      const r = await put('{"log-level":"debug","heartbeat-interval":"2s"}');
      assert.equal(r.status, 200);
      assert.deepEqual(host.state, { logLevel: "debug", heartbeatMs: 2000 });
      const flags = parse(r).flags as Array<{ name: string; value: unknown; source: string }>;
      assert.deepEqual(
        flags.map((f) => [f.name, f.value, f.source]),
        [
          ["log-level", "debug", "api"],
          ["heartbeat-interval", 2000, "api"],
        ],
      );
      const p = await call(base, "/api/flags", {
        method: "PATCH",
        token: TOKENS.admin,
        body: '{"heartbeat-interval":5000}',
        headers: { "content-type": "application/json; charset=utf-8" },
      });
      assert.equal(p.status, 200);
      assert.equal(host.state.heartbeatMs, 5000);
      const changes = host.logs.filter((l) => l.msg === "runtime flag changed");
      assert.deepEqual(changes.at(-1)?.obj, { flag: "heartbeat-interval", from: 2000, to: 5000, by: "ada" });
      assert.equal(changes.at(-1)?.level, "info");
    });

    it("refuses invalid and unknown flags with 400 and applies nothing", async () => {
      const before = { ...host.state };
      const bad = await put('{"log-level":"warn","heartbeat-interval":"2 seconds"}');
      assert.equal(bad.status, 400);
      assert.equal(parse(bad).error, "invalid_argument");
      assert.match(String(parse(bad).message), /^heartbeat-interval: "2 seconds" is not a duration/);
      const range = await put('{"heartbeat-interval":"10m"}');
      assert.equal(parse(range).message, 'heartbeat-interval: "10m" is out of range; give 100ms to 5m');
      const unknown = await put('{"log-levle":"warn"}');
      assert.equal(unknown.status, 400);
      assert.equal(
        parse(unknown).message,
        'unknown flag "log-levle"; the flags are log-level, heartbeat-interval',
      );
      assert.deepEqual(host.state, before);
    });

    it("malformed bodies: 400 bad JSON, non-object, empty; 415 not JSON; 413 over 64 KiB, declared or chunked", async () => {
      const cases: Array<[Reply, number, string | RegExp]> = [
        [await put("{nope"), 400, /^the body is not valid JSON: /],
        [
          await put('["log-level"]'),
          400,
          'the body must be a JSON object of flags, e.g. {"log-level":"debug"}',
        ],
        [await put("null"), 400, 'the body must be a JSON object of flags, e.g. {"log-level":"debug"}'],
        [await put(""), 400, "the body is empty; send a JSON object"],
        [
          await put("log-level=debug", { headers: { "content-type": "application/x-www-form-urlencoded" } }),
          415,
          'the body must be JSON (content-type: application/json), not "application/x-www-form-urlencoded"',
        ],
        [await put(`{"log-level":"${"x".repeat(70_000)}"}`), 413, "the body is larger than 65536 bytes"],
        [
          await put(Array.from({ length: 40 }, () => "x".repeat(4096))),
          413,
          "the body is larger than 65536 bytes",
        ],
      ];
      for (const [r, status, message] of cases) {
        assert.equal(r.status, status, r.body);
        const m = String(parse(r).message);
        if (typeof message === "string") assert.equal(m, message);
        else assert.match(m, message);
      }
    });

    it("authenticates before reading the body: a large body without a token is 401, not 413", async () => {
      const r = await call(base, "/api/flags", { method: "PUT", body: "x".repeat(200_000) });
      assert.equal(r.status, 401);
    });
  });

  it("caches: listed for an operator, cleared by an admin (all or one), 404 for an unknown one", async () => {
    const list = await call(base, "/api/caches", { token: TOKENS.operator });
    assert.deepEqual(
      (parse(list).caches as Array<{ name: string; entries: number }>).map((c) => [c.name, c.entries]),
      [
        ["offline-agents", 3],
        ["verified-tokens", 7],
      ],
    );
    const one = await call(base, "/api/caches/verified-tokens", { method: "DELETE", token: TOKENS.admin });
    assert.deepEqual([one.status, parse(one)], [200, { cleared: [{ name: "verified-tokens", cleared: 7 }] }]);
    const all = await call(base, "/api/caches", { method: "POST", token: TOKENS.admin });
    assert.deepEqual(parse(all), {
      cleared: [
        { name: "offline-agents", cleared: 3 },
        { name: "verified-tokens", cleared: 0 },
      ],
    });
    const unknown = await call(base, "/api/caches/nope", { method: "DELETE", token: TOKENS.admin });
    assert.equal(unknown.status, 404);
    assert.deepEqual(parse(unknown), {
      error: "not_found",
      message: "no cache named nope; caches: offline-agents, verified-tokens",
    });
    assert.deepEqual(host.cleared, [
      { name: "verified-tokens", who: { subject: "ada", role: "admin" } },
      { name: undefined, who: { subject: "ada", role: "admin" } },
    ]);
  });

  it("an internal error is a 500 without a stack or details, logged at error", async () => {
    host.breakAgents = true;
    const r = await call(base, "/api/agents", { token: TOKENS.operator });
    host.breakAgents = false;
    assert.equal(r.status, 500);
    assert.deepEqual(parse(r), { error: "internal", message: "internal error; the server logged it" });
    const logged = host.logs.find((l) => l.level === "error");
    assert.match(JSON.stringify(logged), /presence is broken/);
  });

  it("a client that goes away mid-body or mid-answer does not break the server", async () => {
    const port = Number(new URL(base).port);
    await new Promise<void>((resolve) => {
      const s = connect(port, "127.0.0.1", () => {
        s.write(
          `PUT /api/flags HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKENS.admin}\r\n` +
            'content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"log-level":',
        );
        setImmediate(() => {
          s.destroy();
          resolve();
        });
      });
    });
    const ac = new AbortController();
    const gone = fetch(`${base}/api/agents`, {
      headers: { authorization: `Bearer ${TOKENS.operator}` },
      signal: ac.signal,
    }).catch(() => undefined);
    ac.abort();
    await gone;
    assert.equal((await call(base, "/healthz")).status, 200);
  });

  describe("debug profiles", () => {
    it("/api/debug/cpu?seconds=1 answers a .cpuprofile with nodes and samples; bad seconds are 400", async () => {
      const r = await call(base, "/api/debug/cpu?seconds=1", { token: TOKENS.admin });
      assert.equal(r.status, 200);
      assert.match(
        String(r.headers["content-disposition"]),
        /^attachment; filename="muster-\d{8}T\d{6}Z\.cpuprofile"$/,
      );
      const profile = parse(r);
      assert.ok(Array.isArray(profile.nodes) && profile.nodes.length > 0);
      assert.ok(Array.isArray(profile.samples));
      for (const q of ["seconds=0", "seconds=301", "seconds=abc"]) {
        const b = await call(base, `/api/debug/cpu?${q}`, { token: TOKENS.admin });
        assert.equal(b.status, 400, q);
        assert.match(String(parse(b).message), /^seconds must be a whole number from 1 to 300; got /);
      }
    });

    it("one CPU profile at a time: 409 while one runs; it ends when its client goes away", async () => {
      // A 300 s recording, held until its client goes away.
      const startLong = () => {
        const ac = new AbortController();
        const l = { ac, settled: false, done: Promise.resolve() };
        l.done = fetch(`${base}/api/debug/cpu?seconds=300`, {
          headers: { authorization: `Bearer ${TOKENS.admin}` },
          signal: ac.signal,
        })
          .then(
            (res) => res.body?.cancel(),
            () => {},
          )
          .then(() => {
            l.settled = true;
          });
        return l;
      };
      let long = startLong();
      // The probes run one after the other, so a 409 means the long one is recording. Until it
      // starts, a probe may run (200), or make the long one lose (409 to it): start it again.
      let r: Reply;
      for (;;) {
        r = await call(base, "/api/debug/cpu?seconds=1", { token: TOKENS.admin });
        if (r.status === 409) break;
        if (long.settled) long = startLong();
      }
      assert.deepEqual(parse(r), {
        error: "conflict",
        message: "a CPU profile is being recorded; try again when it is done",
      });
      const { ac, done } = long;
      ac.abort();
      await done;
      // The abandoned recording stops, so a new one can start (this would wait 300 s if not).
      do r = await call(base, "/api/debug/cpu?seconds=1", { token: TOKENS.admin });
      while (r.status === 409);
      assert.equal(r.status, 200);
      assert.ok(host.logs.some((l) => l.msg === "admin API: CPU profile abandoned: the client went away"));
    });

    it("/api/debug/heap streams a heap snapshot", async () => {
      const r = await call(base, "/api/debug/heap", { token: TOKENS.admin });
      assert.equal(r.status, 200);
      assert.match(
        String(r.headers["content-disposition"]),
        /^attachment; filename="muster-\d{8}T\d{6}Z\.heapsnapshot"$/,
      );
      const snapshot = parse(r);
      assert.ok("snapshot" in snapshot && "nodes" in snapshot);
      assert.ok(host.logs.some((l) => l.msg === "admin API: heap snapshot taken" && l.obj.by === "ada"));
    });
  });

  it("/api/shutdown: 202 draining, the host called once with the identity", async () => {
    const r = await call(base, "/api/shutdown", { method: "POST", token: TOKENS.admin });
    assert.equal(r.status, 202);
    assert.deepEqual(parse(r), { status: "draining", drainTimeoutMs: 30_000 });
    assert.deepEqual(host.shutdowns, [{ subject: "ada", role: "admin" }]);
    const ready = await call(base, "/readyz");
    assert.deepEqual([ready.status, ready.body], [503, "draining\n"]);
  });
});

describe("the admin API of a standalone server", () => {
  let host: FakeAdminHost;
  let base: string;
  let stop: () => Promise<void>;

  before(async () => {
    host = fakeAdminHost({ standalone: true, metricsPublic: true });
    ({ url: base, close: stop } = await serveAdmin(host));
  });
  after(async () => {
    await stop();
    host.close();
  });

  it("/readyz says so loudly; /help says so", async () => {
    const r = await call(base, "/readyz");
    assert.equal(r.status, 200);
    assert.equal(r.body, "ready\nWARNING: standalone mode: no authentication, loopback only\n");
    const help = parse(await call(base, "/help"));
    assert.equal(help.standalone, true);
  });

  it("anyone on loopback is admin without a token; /metrics is public", async () => {
    const r = await call(base, "/api/caches", { method: "DELETE" });
    assert.equal(r.status, 200);
    assert.deepEqual(host.cleared.at(-1)?.who, { subject: "standalone", role: "admin" });
    assert.equal((await call(base, "/metrics")).status, 200);
    const help = parse(await call(base, "/help")) as { endpoints: Array<{ path: string; role: string }> };
    assert.equal(help.endpoints.find((e) => e.path === "/metrics")?.role, "none");
  });

  it("refuses requests that come from a web browser (Origin or Sec-Fetch-Site) but for its own pages", async () => {
    const port = new URL(base).port;
    const browsers: Array<Record<string, string>> = [
      { origin: "https://evil.example" },
      { "sec-fetch-site": "cross-site", host: `127.0.0.1:${port}` },
      // A page of another site whose name resolves to 127.0.0.1 (DNS rebinding).
      { "sec-fetch-site": "same-origin", host: `evil.example:${port}` },
      { "sec-fetch-site": "same-origin", host: `127.0.0.1:${port}`, origin: "http://evil.example" },
    ];
    for (const headers of browsers) {
      const r = await call(base, "/api/shutdown", { method: "POST", headers });
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.deepEqual(parse(r), {
        error: "permission_denied",
        message:
          "requests from web browsers are refused in standalone mode, but for the server's own dashboard reached at a loopback name (http://127.0.0.1:<port>/ui/)",
      });
    }
    assert.deepEqual(host.shutdowns, []);
    // The dashboard's own request: same origin, a loopback name.
    const own = await call(base, "/api/caches", {
      headers: { "sec-fetch-site": "same-origin", host: `127.0.0.1:${port}` },
    });
    assert.equal(own.status, 200);
  });
});
