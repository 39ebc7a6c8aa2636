import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type AgentEvent, createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKeyFile } from "../src/auth/keys.js";
import { appendRevocation, RevocationList } from "../src/auth/revocations.js";
import { decodeTokenUnverified, type IssueOptions, issueToken } from "../src/auth/tokens.js";
import { startChaosProxy } from "../src/chaos/chaos-proxy.js";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { connectOperator } from "../src/operator/create-operator.js";
import type { ServerAuthOptions } from "../src/server/auth-gate.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import type { ServerOptions } from "../src/server/options.js";
import { createMemoryPair } from "../src/transport/memory.js";
import type { Transport } from "../src/transport/types.js";
import { decodeFrame, encodeFrame } from "../src/wire/codec.js";
import { FrameType } from "../src/wire/frame.js";
import { quickReconnect, until } from "./support/fleet.js";

const dir = mkdtempSync(join(tmpdir(), "muster-auth-"));
const key = generateKeyFile(join(dir, "auth.key"), "EdDSA");
const otherKey = generateKeyFile(join(dir, "other.key"), "EdDSA");
const hmacKey = generateKeyFile(join(dir, "hmac.key"), "HS256");
after(() => rmSync(dir, { recursive: true, force: true }));

const token = (o: IssueOptions, k = key): Promise<string> => issueToken(k, o);

interface Running {
  server: MusterServer;
  url: string;
  agents: MusterAgent[];
  close(): Promise<void>;
}

async function serve(
  auth: Partial<ServerAuthOptions> = {},
  extra: Partial<ServerOptions> = {},
): Promise<Running> {
  const server = createServer({ listen: ["tcp://127.0.0.1:0"], auth: { key, ...auth }, ...extra });
  await server.start();
  const agents: MusterAgent[] = [];
  return {
    server,
    url: server.listeners[0]!.url,
    agents,
    async close() {
      await Promise.all(agents.map((a) => a.close()));
      await server.close();
    },
  };
}

/** Starts an agent and resolves with its first retry (a refusal) or its connection. */
function dial(
  r: Running,
  name: string,
  t: string | undefined,
  labels: Record<string, string> = {},
): { agent: MusterAgent; first: Promise<AgentEvent> } {
  const agent = createAgent({
    name,
    labels,
    servers: [r.url],
    reconnect: quickReconnect,
    ...(t !== undefined ? { token: t } : {}),
  });
  r.agents.push(agent);
  const first = new Promise<AgentEvent>((resolve) => {
    const stop = agent.onEvent((e) => {
      if (e.type === "retry" || e.type === "connected" || e.type === "pending") {
        stop();
        resolve(e);
      }
    });
  });
  agent.start();
  return { agent, first };
}

function refusal(e: AgentEvent): string {
  assert.equal(e.type, "retry", `expected a refusal, got ${JSON.stringify(e)}`);
  return (e as { error: string }).error;
}

describe("authentication at the handshake", () => {
  let r: Running;
  before(async () => {
    r = await serve();
  });
  after(() => r.close());

  it("admits an agent whose token names it and its labels; the fan-out reaches it", async () => {
    const t = await token({ role: "agent", subject: "web-1", labels: { role: "web" } });
    const { first } = dial(r, "web-1", t, { role: "web" });
    assert.equal((await first).type, "connected");
    const fan = r.server.call("role=web", "sys.ping");
    for await (const o of fan) assert.equal(o.status, "ok");
    assert.deepEqual(fan.summary(), { ok: 1, error: 0, timeout: 0, notConnected: 0 });
  });

  it("refuses, each with its own precise reason: no token, another name, other labels, another key, expired, wrong role", async () => {
    const cases: Array<[string, string | undefined, Record<string, string>, RegExp]> = [
      ["a1", undefined, {}, /\(unauthenticated\): no credential: present a token/],
      [
        "a2",
        await token({ role: "agent", subject: "someone-else" }),
        {},
        /\(rejected\): the token is for agent someone-else, not a2/,
      ],
      [
        "a3",
        await token({ role: "agent", subject: "a3", labels: { role: "web" } }),
        { role: "db" },
        /\(rejected\): agent a3 presents labels role=db, but its token binds role=web/,
      ],
      [
        "a4",
        await token({ role: "agent", subject: "a4" }, otherKey),
        {},
        /\(unauthenticated\): token signature does not match this server's key/,
      ],
      [
        "a4b",
        await token({ role: "agent", subject: "a4b" }, hmacKey),
        {},
        /\(unauthenticated\): token is signed with "HS256", but this server's key is EdDSA/,
      ],
      [
        "a5",
        await token({ role: "agent", subject: "a5", ttlMs: 1000, now: Date.now() - 120_000 }),
        {},
        /\(unauthenticated\): token expired at \d{4}-/,
      ],
      [
        "a6",
        await token({ role: "operator", subject: "a6" }),
        {},
        /\(rejected\): a operator token cannot open an agent session/,
      ],
    ];
    for (const [name, t, labels, expected] of cases) {
      const { agent, first } = dial(r, name, t, labels);
      assert.match(refusal(await first), expected, name);
      await agent.close();
      assert.equal(r.server.agent(name), undefined, `${name} is not listed`);
    }
    const metrics = (await r.server.metrics.scrape()).body;
    for (const reason of ["missing", "name", "labels", "bad_signature", "expired", "role"])
      assert.match(metrics, new RegExp(`muster_auth_failures_total\\{reason="${reason}"\\} [1-9]`), reason);
  });

  it("the token is presented again on every resume; a revocation ends the live session and refuses the next resume", async () => {
    const file = join(dir, "revoked.txt");
    const revocations = new RevocationList({ path: file, pollMs: 20 });
    revocations.load();
    const s = await serve({ revocations });
    const target = s.url.replace("tcp://", "").split(":");
    const proxy = await startChaosProxy({ target: { host: target[0]!, port: Number(target[1]) } });
    try {
      const t = await token({ role: "agent", subject: "r1" });
      const agent = createAgent({
        name: "r1",
        servers: [`tcp://127.0.0.1:${proxy.address.port}`],
        reconnect: quickReconnect,
        token: t,
      });
      s.agents.push(agent);
      const events: AgentEvent[] = [];
      agent.onEvent((e) => events.push(e));
      agent.start();
      await agent.connected();
      // A cut link resumes: the HELLO that resumes carries the token again and is verified.
      assert.equal(proxy.cutAll(), 1);
      await until(() => events.some((e) => e.type === "resumed"), 5000, "the resume");
      assert.equal(await s.server.callAgent("r1", "sys.ping").then(() => "ok"), "ok");
      const metrics = (await s.server.metrics.scrape()).body;
      assert.match(metrics, /muster_handshakes_total\{result="resumed"\} 1/);
      // Revoked as `muster token revoke` does, in the file the server watches: the session ends…
      appendRevocation(file, decodeTokenUnverified(t).id, "test");
      await until(() => s.server.agent("r1")?.state === "offline", 5000, "the revoked session to end");
      assert.match(s.server.agent("r1")!.disconnectReason ?? "", /its token .* was revoked/);
      // …and every attempt after it is refused, saying why.
      await until(
        () =>
          events.some((e) => e.type === "retry" && /\(unauthenticated\): token .* was revoked/.test(e.error)),
        5000,
        `a refused reconnect; events: ${JSON.stringify(events.slice(-5))}`,
      );
      assert.notEqual(agent.state, "connected");
    } finally {
      await proxy.close();
      await s.close();
    }
  });

  it("rate-limits failed authentications per address, with a retry hint", async () => {
    const s = await serve({ failuresPerMinute: 1, failureBurst: 3 });
    try {
      const errors: string[] = [];
      for (let i = 0; i < 5; i++) {
        const { agent, first } = dial(s, `bad-${i}`, undefined);
        errors.push(refusal(await first));
        await agent.close();
      }
      assert.match(errors[0]!, /no credential/);
      assert.match(errors[4]!, /\(busy\): too many failed authentications from 127\.0\.0\.1: retry in \d+ s/);
      // A good token is refused too while the address waits: nothing is verified meanwhile.
      const { agent, first } = dial(s, "good", await token({ role: "agent", subject: "good" }));
      assert.match(refusal(await first), /too many failed authentications/);
      await agent.close();
    } finally {
      await s.close();
    }
  });

  it("a credential that expires ends its live session", async () => {
    const s = await serve();
    try {
      const t = await token({ role: "agent", subject: "short", ttlMs: 1500 });
      const { first } = dial(s, "short", t);
      assert.equal((await first).type, "connected");
      await until(() => s.server.agent("short")?.state === "offline", 5000, "the expired session to end");
      assert.match(s.server.agent("short")!.disconnectReason ?? "", /credential expired at/);
    } finally {
      await s.close();
    }
  });

  it("a frame sent before the WELCOME (while the token is checked) closes the link", async () => {
    const s = await serve();
    try {
      const [client, serverEnd] = createMemoryPair();
      const got: number[] = [];
      client.setHandler({
        onFrame: (b) => got.push(decodeFrame(b).type),
        onClose: () => {},
        onDrain: () => {},
      });
      s.server.accept(serverEnd);
      const hello = {
        role: "agent" as const,
        name: "eager",
        labels: {},
        version: "1",
        auth: await token({ role: "agent", subject: "eager" }),
      };
      client.send(encodeFrame({ type: FrameType.HELLO, seq: 0, ack: 0, hello }));
      client.send(encodeFrame({ type: FrameType.PING, seq: 0, ack: 0, time: 1 }));
      await until(() => got.length > 0, 2000, "an answer");
      assert.equal(got[0], FrameType.CLOSE);
    } finally {
      await s.close();
    }
  });
});

describe("roles and grants", () => {
  let r: Running;
  before(async () => {
    r = await serve({ agentMethods: ["report.*"] });
    r.server.handle("report.load", () => "noted");
    r.server.handle("secret.rotate", () => "rotated");
    r.server.handle("deploy.start", () => "started");
    const t = await token({ role: "agent", subject: "w1" });
    const { first } = dial(r, "w1", t);
    assert.equal((await first).type, "connected");
    const g = await token({ role: "agent", subject: "w2", methods: ["deploy.*"] });
    const second = dial(r, "w2", g);
    assert.equal((await second.first).type, "connected");
  });
  after(() => r.close());

  it("an agent calls only the server methods granted: the server's default, or its token's own", async () => {
    const [w1, w2] = r.agents as [MusterAgent, MusterAgent];
    assert.equal(await w1.call("report.load"), "noted");
    await assert.rejects(w1.call("secret.rotate"), (e: MusterError) => {
      assert.equal(e.code, ErrorCode.PERMISSION_DENIED);
      assert.match(e.message, /agent w1 may not call "secret\.rotate": the server grants agents report\.\*/);
      return true;
    });
    assert.equal(await w2.call("deploy.start"), "started");
    await assert.rejects(w2.call("report.load"), /its token grants deploy\.\*/);
    // Not granted and not registered: still PERMISSION_DENIED, so nothing tells what exists.
    await assert.rejects(w1.call("no.such"), (e: MusterError) => e.code === ErrorCode.PERMISSION_DENIED);
  });

  it("operators need an operator token; its grants bound what it relays; enrolment decisions need admin", async () => {
    const url = r.url;
    await assert.rejects(
      connectOperator({ server: url }),
      (e: MusterError) => e.code === ErrorCode.UNAUTHENTICATED && /no credential/.test(e.message),
    );
    await assert.rejects(
      connectOperator({ server: url, token: await token({ role: "agent", subject: "op" }) }),
      (e: MusterError) => e.code === ErrorCode.PERMISSION_DENIED,
    );
    const op = await connectOperator({
      server: url,
      token: await token({ role: "operator", subject: "ann", methods: ["sys.ping"] }),
    });
    try {
      assert.equal((await op.agents()).length, 2);
      const ok = await op.call("all", "sys.ping").done;
      assert.equal(ok.summary.ok, 2);
      await assert.rejects(op.call("all", "sys.info").done, /ann may not call "sys\.info" on agents/);
      await assert.rejects(op.enrol("accept", "x"), /muster\.enrol needs the admin role; ann has operator/);
    } finally {
      await op.close();
    }
    const admin = await connectOperator({
      server: url,
      token: await token({ role: "admin", subject: "root" }),
    });
    try {
      await assert.rejects(admin.enrol("accept", "x"), /does not take enrolment requests/);
      assert.equal((await admin.call("all", "sys.info").done).summary.ok, 2);
    } finally {
      await admin.close();
    }
    const metrics = (await r.server.metrics.scrape()).body;
    assert.match(metrics, /muster_permission_denied_total\{role="agent"\} [1-9]/);
    assert.match(metrics, /muster_permission_denied_total\{role="operator"\} [1-9]/);
  });
});

describe("enrolment (--approve)", () => {
  it("an agent with an enrol token waits as pending until accepted, then receives a token of its own", async () => {
    const r = await serve({ approve: true });
    try {
      const enrol = await token({ role: "enrol", subject: "edge-*", labels: { zone: "eu" } });
      const { agent, first } = dial(r, "edge-7", enrol, { zone: "eu" });
      const e = await first;
      assert.equal(e.type, "pending");
      assert.match(
        (e as { message: string }).message,
        /waiting for an operator to accept edge-7 \(fingerprint [0-9a-f]{16}\)/,
      );
      const listed = r.server.agents().find((a) => a.name === "edge-7");
      assert.equal(listed?.state, "pending");
      assert.equal(
        r.server.call("all", "sys.ping").expectedNames.length,
        0,
        "a pending agent is never called",
      );
      const credential = new Promise<string>((res) =>
        agent.onEvent((ev) => ev.type === "credential" && res(ev.token)),
      );
      const admin = await connectOperator({
        server: r.url,
        token: await token({ role: "admin", subject: "root" }),
      });
      const accepted = await admin.enrol("accept", "edge-7");
      await admin.close();
      assert.match(accepted.fingerprint, /^[0-9a-f]{16}$/);
      assert.equal(r.server.pendingEnrolments().length, 0, "no longer waiting");
      await agent.connected();
      const issued = await credential;
      const claims = decodeTokenUnverified(issued);
      assert.equal(claims.role, "agent");
      assert.equal(claims.subject, "edge-7");
      assert.deepEqual(claims.labels, { zone: "eu" });
      assert.equal(await r.server.callAgent("edge-7", "sys.ping").then(() => "ok"), "ok");
      await agent.close();
      // The issued token works on its own: a restarted agent connects with it at once.
      const again = dial(r, "edge-7", issued, { zone: "eu" });
      assert.equal((await again.first).type, "connected");
      // An enrol token for another name pattern is refused; a rejected agent is told.
      const wrong = dial(r, "core-1", enrol, { zone: "eu" });
      assert.match(
        refusal(await wrong.first),
        /this enrolment token is for agents named edge-\*, not core-1/,
      );
      const other = dial(r, "edge-8", enrol, { zone: "eu" });
      assert.equal((await other.first).type, "pending");
      r.server.decideEnrolment("reject", "edge-8", "test");
      const rejected = new Promise<string>((res) =>
        other.agent.onEvent((ev) => ev.type === "retry" && /rejected/.test(ev.error) && res(ev.error)),
      );
      assert.match(await rejected, /enrolment of edge-8 was rejected by test/);
    } finally {
      await r.close();
    }
  });
});

describe("standalone", () => {
  it("needs no token on loopback, refuses anything else, and a server must choose auth or standalone", async () => {
    assert.throws(
      () => createServer({ listen: ["tcp://127.0.0.1:0"] }),
      /needs auth: \{ key \}.*or standalone: true/,
    );
    assert.throws(
      () => createServer({ listen: ["tcp://127.0.0.1:0"], standalone: true, auth: { key } }),
      /exclude each other/,
    );
    const server = createServer({ listen: ["tcp://127.0.0.1:0"], standalone: true });
    await server.start();
    try {
      const [client, serverEnd] = createMemoryPair();
      // The server end of a link, as a transport from a non-loopback address reports it.
      const remote: Transport = {
        kind: "memory",
        remoteAddress: "192.0.2.7:4000",
        isLoopback: false,
        get bufferedBytes() {
          return serverEnd.bufferedBytes;
        },
        get open() {
          return serverEnd.open;
        },
        setHandler: (h) => serverEnd.setHandler(h),
        send: (f) => serverEnd.send(f),
        sendMany: (f) => serverEnd.sendMany(f),
        close: (code, message) => serverEnd.close(code, message),
      };
      const got: Array<{ type: number; message?: string }> = [];
      client.setHandler({
        onFrame: (b) => {
          const f = decodeFrame(b);
          got.push({ type: f.type, ...(f.type === FrameType.CLOSE ? { message: f.close.message } : {}) });
        },
        onClose: () => {},
        onDrain: () => {},
      });
      server.accept(remote);
      const hello = { role: "agent" as const, name: "far", labels: {}, version: "1" };
      client.send(encodeFrame({ type: FrameType.HELLO, seq: 0, ack: 0, hello }));
      await until(() => got.length > 0, 2000, "an answer");
      assert.equal(got[0]!.type, FrameType.CLOSE);
      assert.match(got[0]!.message ?? "", /standalone .* loopback connections only/);
    } finally {
      await server.close();
    }
  });
});
