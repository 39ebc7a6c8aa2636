// Enrolment can be neither hijacked nor blocked. The review found that a second holder of the
// same enrolment token, re-sending the name every 200 ms, was accepted in place of the real
// agent (and given a 365-day agent token), and that 1,100 names filled the book so that a
// genuine agent was told `busy` for a minute. Real sockets on 127.0.0.0/8: the attacker dials
// from other loopback addresses than the genuine agent.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type AgentEvent, createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKey } from "../src/auth/keys.js";
import { decodeTokenUnverified, issueToken } from "../src/auth/tokens.js";
import { DEFAULTS } from "../src/internal/defaults.js";
import { connectOperator } from "../src/operator/create-operator.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { CloseCode, type HelloBody } from "../src/wire/frame.js";
import { runCli } from "./support/cli.js";
import { quickReconnect, until } from "./support/fleet.js";
import { type Answer, pool, sendHello } from "./support/hostile-auth-peer.js";

const key = generateKey();
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const heapUsed = (): number => {
  gc();
  return process.memoryUsage().heapUsed;
};

const enrolHello = (
  name: string,
  auth: string,
  enrolId = randomBytes(18).toString("base64url"),
): HelloBody => ({
  role: "agent",
  name,
  labels: {},
  version: "1",
  auth,
  enrolId,
});

describe("hostile peers: enrolment can be neither hijacked nor blocked", () => {
  let server: MusterServer;
  let url: string;
  let port: number;
  let honest: MusterAgent;
  const agents: MusterAgent[] = [];

  before(async () => {
    server = createServer({
      listen: ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"],
      auth: { key, approve: true },
      // The handshake rate is not under test: 1,100 connections in a few seconds are let in.
      handshakesPerSecond: 0,
    });
    await server.start();
    url = server.listeners[0]!.url;
    port = server.listeners[0]!.port;
    honest = createAgent({
      name: "honest-1",
      servers: [url],
      reconnect: quickReconnect,
      token: await issueToken(key, { role: "agent", subject: "honest-1" }),
    });
    agents.push(honest);
    honest.start();
    await honest.connected();
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await server.close();
  });

  /** Starts an enrolling agent; resolves with it and the fingerprint it was told. */
  async function enrolling(
    name: string,
    token: string,
  ): Promise<{ agent: MusterAgent; events: AgentEvent[]; fingerprint: string }> {
    const agent = createAgent({ name, servers: [url], reconnect: quickReconnect, token });
    agents.push(agent);
    const events: AgentEvent[] = [];
    agent.onEvent((e) => events.push(e));
    agent.start();
    await until(() => events.some((e) => e.type === "pending"), 10_000, `${name} pending`);
    const first = events.find((e) => e.type === "pending") as { message: string };
    return { agent, events, fingerprint: /fingerprint ([0-9a-f]{16})/.exec(first.message)![1]! };
  }

  it("a second holder of the token who re-sends the name is never accepted in place of the real agent", async () => {
    const enrol = await issueToken(key, { role: "enrol", subject: "edge-*" });
    const real = await enrolling("edge-1", enrol);
    // The hijacker: the same token and name, a fresh enrolment id, every 200 ms.
    const hijacker: Answer[] = [];
    let stop = false;
    const hijack = (async () => {
      const id = randomBytes(18).toString("base64url");
      while (!stop) {
        hijacker.push(await sendHello(port, enrolHello("edge-1", enrol, id), { from: "127.0.0.9" }));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    try {
      await until(() => server.pendingEnrolments().length === 2, 10_000, "both requests listed");
      const waiting = server.pendingEnrolments();
      assert.deepEqual(
        waiting.map((r) => r.conflict),
        [true, true],
      );
      const hijackerPrint = waiting.find((r) => r.fingerprint !== real.fingerprint)!.fingerprint;
      // The list says so, and neither is admitted meanwhile.
      const row = server.agents().find((a) => a.name === "edge-1")!;
      assert.equal(row.state, "pending");
      assert.match(
        row.disconnectReason!,
        new RegExp(`^conflict: 2 agents ask to enrol as edge-1 .*${hijackerPrint}`),
      );
      await until(
        () =>
          real.events.some((e) => e.type === "pending" && /another agent asks for this name/.test(e.message)),
        10_000,
        "the real agent told of the conflict",
      );
      // An accept by name alone cannot pick one: it names both fingerprints.
      assert.throws(
        () => server.decideEnrolment("accept", "edge-1", "ada"),
        new RegExp(
          `2 agents ask to enrol as edge-1 \\(fingerprints .*${real.fingerprint}.*\\): give the fingerprint`,
        ),
      );
      // The admin compares with the agent's log and accepts by fingerprint (through the operator API).
      const admin = await connectOperator({
        server: url,
        token: await issueToken(key, { role: "admin", subject: "ada" }),
      });
      const listed = await admin.enrolments();
      assert.equal(listed.length, 2);
      const accepted = await admin.enrol("accept", "edge-1", real.fingerprint);
      await admin.close();
      assert.equal(accepted.fingerprint, real.fingerprint);
      await real.agent.connected();
      const issued = real.events.find((e) => e.type === "credential") as { token: string } | undefined;
      assert.equal(decodeTokenUnverified(issued!.token).subject, "edge-1");
      // The hijacker is told, and never welcomed.
      await until(
        () => hijacker.some((a) => a.kind === "close" && a.code === CloseCode.REJECTED),
        10_000,
        "the hijacker refused",
      );
    } finally {
      stop = true;
      await hijack;
    }
    assert.ok(!hijacker.some((a) => a.kind === "welcome"), "the hijacker was never admitted");
    const last = hijacker.at(-1) as Answer & { kind: "close" };
    assert.equal(
      last.message,
      `enrolment of edge-1 was rejected by ada: another agent (fingerprint ${real.fingerprint}) was accepted as edge-1`,
    );
    assert.equal(await server.callAgent("edge-1", "sys.ping").then(() => "ok"), "ok");
  });

  it("1,100 names with one stolen token fill only that token's and those addresses' share; a genuine agent still waits as pending", async () => {
    const stolen = await issueToken(key, { role: "enrol", subject: "*" });
    const before = heapUsed();
    const names = Array.from({ length: 1100 }, (_, i) => `spam-${i}`);
    // From 11 loopback addresses, 100 names each.
    const answers = await pool(names, 16, (name) =>
      sendHello(port, enrolHello(name, stolen), { from: `127.0.1.${1 + (Number(name.slice(5)) % 11)}` }),
    );
    const pending = answers.filter((a) => a.kind === "close" && a.code === CloseCode.PENDING).length;
    const busy = answers.filter(
      (a): a is Answer & { kind: "close" } => a.kind === "close" && a.code === CloseCode.BUSY,
    );
    assert.equal(pending + busy.length, names.length, "every attempt answered, pending or busy");
    assert.equal(pending, DEFAULTS.enrolmentMaxPendingPerToken, "the token's share");
    assert.ok(
      busy.some((a) =>
        /^128 requests made with enrolment token \S+ are waiting already: an admin must accept or reject some first$/.test(
          a.message,
        ),
      ),
    );
    assert.ok(busy.every((a) => a.retryAfterMs !== undefined && a.retryAfterMs > 0));
    // One address alone gets its share only.
    const more = await pool(
      ["solo-0", ...Array.from({ length: 40 }, (_, i) => `solo-${i + 1}`)],
      8,
      async (name) =>
        sendHello(port, enrolHello(name, await issueToken(key, { role: "enrol", subject: "solo-*" })), {
          from: "127.0.2.1",
        }),
    );
    const soloPending = more.filter((a) => a.kind === "close" && a.code === CloseCode.PENDING).length;
    assert.equal(soloPending, DEFAULTS.enrolmentMaxPendingPerAddress);
    assert.ok(
      more.some(
        (a) =>
          a.kind === "close" &&
          /^32 enrolment requests from 127\.0\.2\.1 are waiting already/.test(a.message),
      ),
    );
    // A genuine agent, with its own enrolment token, from its own address: pending, not busy.
    const genuine = await enrolling(
      "edge-genuine",
      await issueToken(key, { role: "enrol", subject: "edge-*" }),
    );
    assert.ok(!genuine.events.some((e) => e.type === "retry" && /busy/.test(e.error)));
    assert.equal(server.pendingEnrolments().length, 128 + 32 + 1);
    const grown = heapUsed() - before;
    console.log(
      `book: ${server.pendingEnrolments().length} requests waiting; heap +${(grown / 1024).toFixed(0)} KiB`,
    );
    assert.ok(grown < 4 * 1024 * 1024, `heap grew ${grown} bytes`);
    // The honest agent kept answering throughout.
    assert.equal(await server.callAgent("honest-1", "sys.ping").then(() => "ok"), "ok");
  });

  it("the CLI and the admin API list both fingerprints of a conflict, refuse to guess, and accept by fingerprint", async () => {
    const enrol = await issueToken(key, { role: "enrol", subject: "cli-*" });
    const a = await sendHello(port, enrolHello("cli-1", enrol), { from: "127.0.3.1" });
    const b = await sendHello(port, enrolHello("cli-1", enrol), { from: "127.0.3.2" });
    assert.equal(a.kind === "close" && a.code, CloseCode.PENDING);
    assert.equal(b.kind === "close" && b.code, CloseCode.PENDING);
    assert.match(
      (b as { message: string }).message,
      /another agent asks for this name \(fingerprint [0-9a-f]{16}\)/,
    );
    const [fa, fb] = server
      .pendingEnrolments()
      .filter((r) => r.name === "cli-1")
      .map((r) => r.fingerprint);
    const admin = await issueToken(key, { role: "admin", subject: "ada" });
    const ws = server.listeners.find((l) => l.url.startsWith("ws:"))!.url;
    const list = await runCli(["agents", "--server", ws, "--token", admin]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /enrolment requests \(muster agents accept NAME --fingerprint F\):/);
    for (const f of [fa, fb])
      assert.match(list.out, new RegExp(`cli-1 +${f} +127\\.0\\.3\\.\\d:\\d+ .*conflict`));
    const guess = await runCli(["agents", "accept", "cli-1", "--server", ws, "--token", admin]);
    assert.equal(guess.code, 2);
    assert.match(guess.err, /2 agents ask to enrol as cli-1 \(fingerprints .*: give the fingerprint/);
    // The admin API: the list, then a decision bound to a fingerprint.
    const http = ws.replace("ws:", "http:");
    const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
    const listed = (await (await fetch(`${http}/api/enrolments`, { headers })).json()) as {
      enrolments: Array<{ name: string; conflict: boolean }>;
    };
    assert.deepEqual(
      listed.enrolments.filter((r) => r.name === "cli-1").map((r) => r.conflict),
      [true, true],
    );
    const noPrint = await fetch(`${http}/api/enrolments/cli-1`, {
      method: "POST",
      headers,
      body: '{"action":"accept"}',
    });
    assert.equal(noPrint.status, 400);
    assert.match(((await noPrint.json()) as { message: string }).message, /give the fingerprint/);
    const rejected = await fetch(`${http}/api/enrolments/cli-1`, {
      method: "POST",
      headers,
      body: JSON.stringify({ action: "reject", fingerprint: fb }),
    });
    assert.equal(rejected.status, 200);
    const accept = await runCli([
      "agents",
      "accept",
      "cli-1",
      "--fingerprint",
      fa!,
      "--server",
      ws,
      "--token",
      admin,
    ]);
    assert.equal(accept.code, 0, accept.err);
    assert.match(
      accept.out,
      new RegExp(`^accepted cli-1 \\(fingerprint ${fa}, from 127\\.0\\.3\\.1:\\d+\\)$`, "m"),
    );
  });
});
