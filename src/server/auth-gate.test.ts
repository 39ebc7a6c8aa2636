import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { captureLogger, type LogLine } from "../../test/support/capture-logger.js";
import { generateKey } from "../auth/keys.js";
import { issueToken } from "../auth/tokens.js";
import type { Transport } from "../transport/types.js";
import { CloseCode, type HelloBody } from "../wire/frame.js";
import { AuthGate, type GateVerdict } from "./auth-gate.js";

const key = generateKey();

/** The server's end of a link from `address`, as far as the gate reads it. */
function from(address: string): Transport {
  return { kind: "tcp", remoteAddress: address, isLoopback: false } as unknown as Transport;
}

/** An admin HTTP request from `address`. */
function request(address: string, token?: string): IncomingMessage {
  const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return { socket: { remoteAddress: address }, headers } as unknown as IncomingMessage;
}

function gate(clock: { t: number }, logs: LogLine[] = []): AuthGate {
  return new AuthGate({ key, failuresPerMinute: 10, failureBurst: 2 }, false, {
    logger: captureLogger(logs),
    onFailure: () => {},
    now: () => clock.t,
  });
}

const hello = (name: string, auth?: string, role: HelloBody["role"] = "agent"): HelloBody => ({
  role,
  name,
  labels: {},
  version: "1",
  ...(auth !== undefined ? { auth } : {}),
});

function refused(v: GateVerdict): Extract<GateVerdict, { ok: false }> {
  assert.equal(v.ok, false, JSON.stringify(v));
  return v as Extract<GateVerdict, { ok: false }>;
}

describe("AuthGate", () => {
  it("counts HTTP and handshake failures on the one clock it is given, and refills on it", async () => {
    const clock = { t: 5_000 }; // a monotonic clock: far from the wall clock's epoch milliseconds
    const g = gate(clock);
    for (let i = 0; i < 2; i++) await assert.rejects(g.checkHttp(request("10.0.0.1")), /no credential/);
    const fresh = await issueToken(key, { role: "agent", subject: "web-1" });
    const busy = refused(await g.checkHello(hello("web-1", fresh), from("10.0.0.1:4000"), clock.t));
    assert.equal(busy.close, CloseCode.BUSY);
    assert.equal(busy.retryAfterMs, 6000);
    clock.t += 6000;
    assert.equal((await g.checkHello(hello("web-1", fresh), from("10.0.0.1:4000"), clock.t)).ok, true);
  });

  it("counts failures per address key: every address of one IPv6 /64 together, mapped IPv4 as IPv4", async () => {
    const clock = { t: 0 };
    const g = gate(clock);
    await assert.rejects(g.checkHttp(request("2001:db8:1:2::a")), /no credential/);
    await assert.rejects(g.checkHttp(request("2001:db8:1:2::b")), /no credential/);
    const fresh = await issueToken(key, { role: "agent", subject: "web-1" });
    const busy = refused(await g.checkHello(hello("web-1", fresh), from("[2001:db8:1:2::c]:4000"), clock.t));
    assert.equal(busy.close, CloseCode.BUSY, "a third address of the same /64 is the same client");
    assert.equal(
      (await g.checkHello(hello("web-1", fresh), from("[2001:db8:1:3::c]:4000"), clock.t)).ok,
      true,
    );
    await assert.rejects(g.checkHttp(request("::ffff:10.9.9.9")), /no credential/);
    await assert.rejects(g.checkHttp(request("10.9.9.9")), /no credential/);
    const other = await issueToken(key, { role: "agent", subject: "web-2" });
    assert.equal(
      refused(await g.checkHello(hello("web-2", other), from("10.9.9.9:1"), clock.t)).close,
      CloseCode.BUSY,
    );
  });

  it("text tokens: failures counted on the same clock, and a token verified before still passes", async () => {
    const clock = { t: 5_000 };
    const g = gate(clock);
    const admin = await issueToken(key, { role: "admin", subject: "ops" });
    assert.equal((await g.checkTextToken(admin, "10.0.0.2")).role, "admin");
    for (let i = 0; i < 2; i++) await assert.rejects(g.checkTextToken("garbage", "10.0.0.2"), /malformed/);
    await assert.rejects(g.checkTextToken("garbage", "10.0.0.2"), /too many failed authentications/);
    assert.equal((await g.checkTextToken(admin, "10.0.0.2")).subject, "ops", "verified before: passes");
    const other = await issueToken(key, { role: "operator", subject: "ann" });
    await assert.rejects(g.checkTextToken(other, "10.0.0.2"), /retry in 6 s/);
    clock.t += 6000; // refilled on the clock it was given, not on the wall clock
    assert.equal((await g.checkTextToken(other, "10.0.0.2")).subject, "ann");
  });

  it("a token verified before, and a resume of a live session, pass an address with no failure left", async () => {
    const clock = { t: 0 };
    const g = gate(clock);
    const known = await issueToken(key, { role: "operator", subject: "olga" });
    assert.equal((await g.checkHello(hello("olga", known, "operator"), from("10.0.0.2:1"), 0)).ok, true);
    for (let i = 0; i < 3; i++) await g.checkHello(hello("x"), from("10.0.0.2:2"), 0);
    const unknown = await issueToken(key, { role: "agent", subject: "web-2" });
    assert.equal(
      refused(await g.checkHello(hello("web-2", unknown), from("10.0.0.2:3"), 0)).close,
      CloseCode.BUSY,
    );
    assert.equal((await g.checkHello(hello("olga", known, "operator"), from("10.0.0.2:4"), 0)).ok, true);
    assert.deepEqual(await g.checkHttp(request("10.0.0.2", known)), { subject: "olga", role: "operator" });
    assert.equal(
      (await g.checkHello(hello("web-2", unknown), from("10.0.0.2:5"), 0, true)).ok,
      true,
      "a resume",
    );
    // A bad credential is still refused for what it is, and counted.
    const forged = await issueToken(generateKey(), { role: "agent", subject: "web-3" });
    assert.equal(
      refused(await g.checkHello(hello("web-3", forged), from("10.0.0.2:6"), 0, true)).reason,
      "bad_signature",
    );
  });

  it("never throws: an unexpected failure is a logged refusal that says nothing of the internals", async () => {
    const logs: LogLine[] = [];
    const g = gate({ t: 0 }, logs);
    const broken = {
      get remoteAddress(): string {
        throw new TypeError("secret internals");
      },
    } as unknown as Transport;
    const v = refused(await g.checkHello(hello("web-1"), broken, 0));
    assert.equal(v.close, CloseCode.REJECTED);
    assert.equal(
      v.message,
      "the server could not check this credential (an internal error, which it logged)",
    );
    assert.ok(logs.some((l) => l.level === "error" && /secret internals/.test(String(l.obj.err))));
  });
});
