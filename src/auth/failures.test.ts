import assert from "node:assert/strict";
import { it } from "node:test";
import { isMusterError } from "../../test/support/errors.js";
import { AuthFailureLimiter } from "./failures.js";

it("allows a burst of failures, then one per 60/perMinute seconds", () => {
  const l = new AuthFailureLimiter({ perMinute: 10, burst: 3 });
  const ip = "203.0.113.7";
  assert.equal(l.check(ip, 0), 0);
  for (let i = 0; i < 3; i++) {
    assert.equal(l.check(ip, 0), 0);
    l.fail(ip, 0);
  }
  assert.equal(l.check(ip, 0), 6000, "one failure is earned back every 6 s");
  assert.equal(l.check(ip, 4500), 1500);
  assert.equal(l.check(ip, 6000), 0);
  l.fail(ip, 6000);
  assert.equal(l.check(ip, 6000), 6000);
  assert.equal(l.check("198.51.100.1", 6000), 0, "other addresses are not affected");
});

it("refills up to the burst, and forgets an address once it is full again", () => {
  const l = new AuthFailureLimiter({ perMinute: 60, burst: 5 });
  l.fail("a", 0);
  l.fail("a", 0);
  assert.equal(l.size, 1);
  assert.equal(l.check("a", 1000), 0);
  assert.equal(l.size, 1, "4 of 5: still tracked");
  assert.equal(l.check("a", 2000), 0);
  assert.equal(l.size, 0, "full again: forgotten");
  // A long pause refills at most to the burst: five failures, then a wait.
  for (let i = 0; i < 5; i++) l.fail("a", 1_000_000);
  assert.equal(l.check("a", 1_000_000), 1000);
});

it("never tracks more than maxAddresses: the address that failed longest ago goes", () => {
  const l = new AuthFailureLimiter({ perMinute: 1, burst: 1, maxAddresses: 3 });
  for (const [i, ip] of ["a", "b", "c"].entries()) l.fail(ip, i);
  l.fail("a", 3); // a is the most recent again
  l.fail("d", 4);
  assert.equal(l.size, 3);
  assert.equal(l.check("b", 5), 0, "b was evicted");
  assert.ok(l.check("a", 5) > 0);
  assert.ok(l.check("c", 5) > 0);
  assert.ok(l.check("d", 5) > 0);
});

it("counts an IPv4-mapped IPv6 address as the IPv4 address", () => {
  const l = new AuthFailureLimiter({ perMinute: 1, burst: 1 });
  l.fail("::ffff:192.0.2.1", 0);
  assert.equal(l.check("192.0.2.1", 0), 60_000);
});

it("has the documented defaults and refuses bad options", () => {
  const l = new AuthFailureLimiter();
  for (let i = 0; i < 20; i++) l.fail("x", 0);
  assert.equal(l.check("x", 0), 6000);
  assert.throws(
    () => new AuthFailureLimiter({ perMinute: 0 }),
    isMusterError("INVALID_ARGUMENT", /perMinute/),
  );
  assert.throws(() => new AuthFailureLimiter({ burst: 0.5 }), isMusterError("INVALID_ARGUMENT", /burst/));
  assert.throws(
    () => new AuthFailureLimiter({ maxAddresses: 0 }),
    isMusterError("INVALID_ARGUMENT", /maxAddresses/),
  );
});

it("a clock that goes back delays the refill by one period at most, never for ever", () => {
  const l = new AuthFailureLimiter({ perMinute: 10, burst: 2 });
  const wall = 1_800_000_000_000; // failures recorded at a wall-clock time…
  l.fail("a", wall);
  l.fail("a", wall);
  const mono = 5_000; // …then checked with a monotonic clock that reads far less
  assert.equal(l.check("a", mono), 6000);
  assert.equal(l.check("a", mono + 6000), 0, "refilled from the first check on");
});
