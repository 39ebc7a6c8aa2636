// Hostile peers at the handshake, with authentication on: nothing a peer sends may take the
// process down. The worst case found: an enrolment whose issued token would exceed the token
// limit (a 4,096-character enrol token with 14 labels, a 128-character name) used to reject a
// promise nobody caught once an admin accepted it, and the process died. The process guard
// below fails the test on any unhandled rejection or uncaught exception.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKey } from "../src/auth/keys.js";
import { issueToken, MAX_TOKEN_CHARS } from "../src/auth/tokens.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { CloseCode, type HelloBody } from "../src/wire/frame.js";
import { quickReconnect } from "./support/fleet.js";
import { type Answer, processGuard, sendHello } from "./support/hostile-auth-peer.js";

const key = generateKey();

/** An enrol token for any name (`*`) with 14 labels, as close to the token limit as it goes. */
async function biggestEnrolToken(): Promise<{ token: string; labels: Record<string, string> }> {
  let best: { token: string; labels: Record<string, string> } | undefined;
  for (let lo = 1, hi = 256; lo <= hi; ) {
    const mid = (lo + hi) >> 1;
    const labels: Record<string, string> = {};
    for (let i = 0; i < 14; i++) labels[`label-${i}`] = "v".repeat(mid);
    try {
      best = { token: await issueToken(key, { role: "enrol", subject: "*", labels }), labels };
      lo = mid + 1;
    } catch {
      hi = mid - 1;
    }
  }
  return best!;
}

const enrolHello = (name: string, auth: string, labels: Record<string, string>): HelloBody => ({
  role: "agent",
  name,
  labels,
  version: "1",
  auth,
  enrolId: randomBytes(18).toString("base64url"),
});

describe("hostile peers at the handshake: nothing crashes the process", () => {
  const guard = processGuard();
  let server: MusterServer;
  let port: number;
  let honest: MusterAgent;

  before(async () => {
    server = createServer({ listen: ["tcp://127.0.0.1:0"], auth: { key, approve: true } });
    await server.start();
    port = server.listeners[0]!.port;
    honest = createAgent({
      name: "honest-1",
      servers: [server.listeners[0]!.url],
      reconnect: quickReconnect,
      token: await issueToken(key, { role: "agent", subject: "honest-1" }),
    });
    honest.start();
    await honest.connected();
  });
  after(async () => {
    guard.remove();
    await honest.close();
    await server.close();
  });

  it("an enrolment whose token would be over the limit is refused at once, precisely; accepting it is impossible", async () => {
    const { token, labels } = await biggestEnrolToken();
    assert.ok(token.length > MAX_TOKEN_CHARS - 40 && token.length <= MAX_TOKEN_CHARS, `${token.length}`);
    const name = "n".repeat(128);
    const hello = enrolHello(name, token, labels);
    const first = await sendHello(port, hello);
    // What an admin could do with whatever waits: accept it (this used to kill the process at
    // the agent's next attempt).
    const decided: string[] = [];
    for (const r of server.pendingEnrolments()) {
      try {
        server.decideEnrolment("accept", r.name, "admin", r.fingerprint);
        decided.push("accepted");
      } catch (err) {
        decided.push((err as Error).message);
      }
    }
    const again = await sendHello(port, hello, { ms: 5000 });
    assert.deepEqual(guard.faults, [], "no unhandled rejection, no uncaught exception");
    for (const a of [first, again]) {
      assert.equal(a.kind, "close", JSON.stringify(a));
      const close = a as Answer & { kind: "close" };
      assert.equal(close.code, CloseCode.REJECTED);
      assert.match(
        close.message,
        /^enrolment of n{128} refused: the token would be \d{4} characters, more than 4096: give fewer or shorter labels or methods$/,
      );
    }
    assert.deepEqual(decided, [], "the request never waited for an admin");
    assert.equal(server.pendingEnrolments().length, 0);
    // The server carries on: the honest agent answers.
    assert.deepEqual(await server.callAgent("honest-1", "sys.ping").then(() => "ok"), "ok");
  });

  it("a battery of hostile credentials gets a CLOSE each, and the process records no fault", async () => {
    const other = generateKey();
    const { token: big, labels } = await biggestEnrolToken();
    const hellos: HelloBody[] = [
      { ...enrolHello("x".repeat(128), big, labels) },
      { ...enrolHello("y", big, labels), enrolId: undefined as unknown as string },
      {
        role: "agent",
        name: "forged",
        labels: {},
        version: "1",
        auth: await issueToken(other, { role: "agent", subject: "forged" }),
      },
      {
        role: "agent",
        name: "expired",
        labels: {},
        version: "1",
        auth: await issueToken(key, {
          role: "agent",
          subject: "expired",
          ttlMs: 1,
          now: Date.now() - 3_600_000,
        }),
      },
      { role: "agent", name: "junk", labels: {}, version: "1", auth: "a.b.c" },
      { role: "operator", name: "ops", labels: {}, version: "1", auth: big },
      { role: "agent", name: "resumer", labels: {}, version: "1", token: "not-a-session", auth: big },
    ];
    for (const h of hellos) {
      if (h.enrolId === undefined) delete h.enrolId;
      const a = await sendHello(port, h, { ms: 5000 });
      assert.equal(a.kind, "close", `${h.name}: ${JSON.stringify(a)}`);
    }
    assert.deepEqual(guard.faults, []);
    assert.deepEqual(await server.callAgent("honest-1", "sys.ping").then(() => "ok"), "ok");
  });
});
