import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Admission, type AdmissionLimits, ipOf } from "./admission.js";

const open: AdmissionLimits = {
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  handshakesPerSecond: 0,
  handshakeBurst: 1,
  maxRetryAfterMs: 10_000,
  ipv6PrefixBits: 64,
};

describe("ipOf", () => {
  it("takes the address part of host:port and [v6]:port", () => {
    assert.equal(ipOf("127.0.0.1:5000"), "127.0.0.1");
    assert.equal(ipOf("[::1]:5000"), "::1");
    assert.equal(ipOf("[::ffff:10.0.0.1]:1"), "::ffff:10.0.0.1");
    assert.equal(ipOf("memory"), "memory");
    assert.equal(ipOf("::1"), "::1");
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
    assert.ok(!r.ok && r.reason === "max_connections_per_ip");
    assert.equal(r.message, "too many connections from ::/64 (limit 2)");
    assert.equal(a.admit("127.0.0.1:4", 0).ok, true);
    a.release(a.keyOf("[::1]:1"));
    assert.equal(a.admit("[::1]:5", 0).ok, true);
  });

  it("counts an IPv6 client by its /64: rotating source addresses does not escape the limit", () => {
    const a = new Admission({ ...open, maxConnectionsPerIp: 3 }, 0);
    const admitted = [1, 2, 3].map((i) => a.admit(`[2001:db8:0:7::${i}]:4000`, 0));
    assert.ok(admitted.every((r) => r.ok && r.key === "2001:db8:0:7::/64"));
    const rotated = a.admit("[2001:db8:0:7:dead:beef:0:99]:4000", 0);
    assert.ok(!rotated.ok && rotated.reason === "max_connections_per_ip");
    assert.equal(rotated.message, "too many connections from 2001:db8:0:7::/64 (limit 3)");
    assert.equal(a.admit("[2001:db8:0:8::1]:4000", 0).ok, true, "the next /64 is another client");
    assert.equal(a.openFrom("2001:db8:0:7::/64"), 3);
    a.release("2001:db8:0:7::/64");
    assert.equal(a.admit("[2001:db8:0:7::1234]:1", 0).ok, true, "a place freed in the /64");
  });

  it("counts an IPv4-mapped IPv6 client as its IPv4 address", () => {
    const a = new Admission({ ...open, maxConnectionsPerIp: 2 }, 0);
    assert.equal(a.admit("[::ffff:198.51.100.4]:1", 0).ok, true);
    assert.equal(a.admit("198.51.100.4:2", 0).ok, true);
    const r = a.admit("[::ffff:198.51.100.4]:3", 0);
    assert.ok(!r.ok && r.message === "too many connections from 198.51.100.4 (limit 2)");
  });

  it("takes the IPv6 prefix length from its limits (128: every address on its own)", () => {
    const a = new Admission({ ...open, maxConnectionsPerIp: 1, ipv6PrefixBits: 128 }, 0);
    assert.equal(a.admit("[2001:db8::1]:1", 0).ok, true);
    assert.equal(a.admit("[2001:db8::2]:1", 0).ok, true);
    assert.equal(a.admit("[2001:db8::1]:2", 0).ok, false);
    const wide = new Admission({ ...open, maxConnectionsPerIp: 1, ipv6PrefixBits: 48 }, 0);
    assert.equal(wide.admit("[2001:db8:5:1::1]:1", 0).ok, true);
    assert.equal(wide.admit("[2001:db8:5:2::1]:1", 0).ok, false, "same /48");
  });

  it("an HTTP connection (rate: false) counts against the connection limits, not the handshake rate", () => {
    const a = new Admission(
      { ...open, maxConnectionsPerIp: 3, handshakesPerSecond: 1, handshakeBurst: 1 },
      0,
    );
    assert.equal(a.admit("10.1.1.1:1", 0, { rate: false }).ok, true);
    assert.equal(a.admit("10.1.1.1:2", 0, { rate: false }).ok, true);
    assert.equal(a.admit("10.1.1.1:3", 0).ok, true, "the handshake's token is still there");
    const r = a.admit("10.1.1.1:4", 0, { rate: false });
    assert.ok(!r.ok && r.reason === "max_connections_per_ip");
    assert.equal(a.refused.handshake_rate, 0);
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
