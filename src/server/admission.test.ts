import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Admission, type AdmissionLimits, ipOf } from "./admission.js";

const open: AdmissionLimits = {
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  handshakesPerSecond: 0,
  handshakeBurst: 1,
  maxRetryAfterMs: 10_000,
};

describe("ipOf", () => {
  it("takes the address part of host:port and [v6]:port", () => {
    assert.equal(ipOf("127.0.0.1:5000"), "127.0.0.1");
    assert.equal(ipOf("[::1]:5000"), "::1");
    assert.equal(ipOf("[::ffff:10.0.0.1]:1"), "::ffff:10.0.0.1");
    assert.equal(ipOf("memory"), "memory");
  });
});

describe("Admission", () => {
  it("admits everything without limits, and counts what is open", () => {
    const a = new Admission(open, 0);
    for (let i = 0; i < 100; i++) assert.equal(a.admit(`10.0.0.${i % 3}:${i}`, 0).ok, true);
    assert.equal(a.open, 100);
    assert.equal(a.openFrom("10.0.0.1"), 33);
    a.release("10.0.0.1");
    assert.equal(a.open, 99);
    assert.equal(a.openFrom("10.0.0.1"), 32);
  });

  it("refuses over the global limit until a connection closes", () => {
    const a = new Admission({ ...open, maxConnections: 2 }, 0);
    assert.equal(a.admit("1.1.1.1:1", 0).ok, true);
    assert.equal(a.admit("2.2.2.2:1", 0).ok, true);
    const r = a.admit("3.3.3.3:1", 0);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.reason === "max_connections" && /limit \(2\)/.test(r.message));
    assert.ok(!r.ok && r.retryAfterMs > 0);
    a.release("1.1.1.1");
    assert.equal(a.admit("3.3.3.3:1", 0).ok, true);
    assert.equal(a.refused.max_connections, 1);
  });

  it("refuses over the per-address limit, other addresses unaffected", () => {
    const a = new Admission({ ...open, maxConnectionsPerIp: 2 }, 0);
    assert.equal(a.admit("[::1]:1", 0).ok, true);
    assert.equal(a.admit("[::1]:2", 0).ok, true);
    const r = a.admit("[::1]:3", 0);
    assert.ok(!r.ok && r.reason === "max_connections_per_ip" && r.message.includes("::1"));
    assert.equal(a.admit("127.0.0.1:4", 0).ok, true);
    a.release("::1");
    assert.equal(a.admit("[::1]:5", 0).ok, true);
  });

  it("admits a burst, then the set rate, and spreads the retry hints at that rate", () => {
    const rate = 100;
    const a = new Admission({ ...open, handshakesPerSecond: rate, handshakeBurst: 10 }, 0, () => 0.5);
    let admitted = 0;
    const hints: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = a.admit(`10.0.0.1:${i}`, 0);
      if (r.ok) admitted++;
      else hints.push(r.retryAfterMs);
    }
    assert.equal(admitted, 10, "the burst");
    assert.equal(hints.length, 40);
    // Each refusal gets the next slot, 1000/rate ms after the last (at least 100 ms; jitter fixed at 0).
    for (let i = 1; i < hints.length; i++) assert.ok(hints[i]! >= hints[i - 1]!, `hint ${i} grows`);
    assert.ok(hints[39]! > hints[0]!);
    assert.equal(hints.at(-1), Math.round((40 * 1000) / rate));
    // 100 ms later, 10 more tokens.
    let later = 0;
    for (let i = 0; i < 20; i++) if (a.admit(`10.0.0.2:${i}`, 100).ok) later++;
    assert.equal(later, 10);
    assert.equal(a.refused.handshake_rate, 50);
  });

  it("caps the hint", () => {
    const a = new Admission(
      { ...open, handshakesPerSecond: 1, handshakeBurst: 1, maxRetryAfterMs: 2000 },
      0,
      () => 1,
    );
    a.admit("1.1.1.1:1", 0);
    let last = 0;
    for (let i = 0; i < 10; i++) {
      const r = a.admit("1.1.1.1:2", 0);
      assert.equal(r.ok, false);
      if (!r.ok) last = r.retryAfterMs;
    }
    assert.equal(last, 2000);
  });

  it("release of an unknown address changes nothing", () => {
    const a = new Admission(open, 0);
    a.admit("1.1.1.1:1", 0);
    a.release("9.9.9.9");
    assert.equal(a.open, 1);
  });
});
