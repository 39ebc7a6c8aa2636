import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../errors/codes.js";
import type { MusterError } from "../errors/muster-error.js";
import { addressKey, checkIpv6PrefixBits, hostOf } from "./address-key.js";

describe("hostOf", () => {
  it("takes the IP of host:port, [v6]:port and bare addresses", () => {
    assert.equal(hostOf("127.0.0.1:5000"), "127.0.0.1");
    assert.equal(hostOf("[::1]:5000"), "::1");
    assert.equal(hostOf("::1"), "::1");
    assert.equal(hostOf("2001:db8::7"), "2001:db8::7");
    assert.equal(hostOf("10.0.0.1"), "10.0.0.1");
    assert.equal(hostOf("memory"), "memory");
  });
});

describe("addressKey", () => {
  it("keeps IPv4 addresses one by one", () => {
    assert.equal(addressKey("203.0.113.7:4000"), "203.0.113.7");
    assert.equal(addressKey("203.0.113.7"), "203.0.113.7");
    assert.notEqual(addressKey("203.0.113.7"), addressKey("203.0.113.8"));
  });

  it("counts an IPv4-mapped IPv6 address as its IPv4 address, whatever its spelling", () => {
    assert.equal(addressKey("[::ffff:10.0.0.1]:1"), "10.0.0.1");
    assert.equal(addressKey("::FFFF:10.0.0.1"), "10.0.0.1");
    assert.equal(addressKey("::ffff:a00:1"), "10.0.0.1");
    assert.equal(addressKey("0:0:0:0:0:ffff:7f00:1"), "127.0.0.1");
  });

  it("groups IPv6 addresses by /64 by default: rotating the interface id changes nothing", () => {
    const key = addressKey("[2001:db8:1:2::1]:5000");
    assert.equal(key, "2001:db8:1:2::/64");
    for (const a of [
      "2001:db8:1:2:ffff:ffff:ffff:ffff",
      "2001:DB8:1:2:dead:beef:0:1",
      "2001:0db8:0001:0002::9",
    ])
      assert.equal(addressKey(a), key, a);
    assert.notEqual(addressKey("2001:db8:1:3::1"), key, "the next /64 is another client");
  });

  it("takes the prefix length from the options", () => {
    assert.equal(addressKey("2001:db8:1:2:3:4:5:6", { ipv6PrefixBits: 48 }), "2001:db8:1::/48");
    assert.equal(addressKey("2001:db8:1:2:3:4:5:6", { ipv6PrefixBits: 56 }), "2001:db8:1::/56");
    assert.equal(addressKey("2001:db8:1:2ff:3:4:5:6", { ipv6PrefixBits: 56 }), "2001:db8:1:200::/56");
    assert.equal(addressKey("2001:db8:1:2:3:4:5:6", { ipv6PrefixBits: 128 }), "2001:db8:1:2:3:4:5:6");
    assert.equal(addressKey("2001:db8::1:0:0:1", { ipv6PrefixBits: 128 }), "2001:db8::1:0:0:1");
    assert.equal(addressKey("2001:db8:1:2:3:4:5:6", { ipv6PrefixBits: 1 }), "::/1");
    assert.equal(addressKey("ffff::", { ipv6PrefixBits: 1 }), "8000::/1");
  });

  it("loopback ::1 is one address among its /64; a zone is dropped", () => {
    assert.equal(addressKey("[::1]:1"), "::/64");
    assert.equal(addressKey("::1", { ipv6PrefixBits: 128 }), "::1");
    assert.equal(addressKey("fe80::1%eth0"), "fe80::/64");
  });

  it("leaves what is not an IP address as it is", () => {
    assert.equal(addressKey("memory"), "memory");
    assert.equal(addressKey("unknown:0"), "unknown");
  });

  it("checkIpv6PrefixBits takes 1 to 128 and refuses the rest precisely", () => {
    assert.equal(checkIpv6PrefixBits(undefined), 64);
    assert.equal(checkIpv6PrefixBits(48), 48);
    for (const bad of [0, 129, 63.5, Number.NaN]) {
      assert.throws(
        () => checkIpv6PrefixBits(bad),
        (e: MusterError) =>
          e.code === ErrorCode.INVALID_ARGUMENT &&
          /ipv6PrefixBits must be a whole number of bits from 1 to 128/.test(e.message),
      );
    }
  });
});
