import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isMusterError } from "../../test/support/errors.js";
import { Enrolment, type EnrolmentVerdict } from "./enrolment.js";

const hello = (name: string, enrolId: string) => ({ name, labels: { zone: "eu" }, version: "1", enrolId });
const T1 = { id: "token1", methods: undefined };
const T2 = { id: "token2", methods: ["report.*"] };
const ID_A = "a".repeat(24);
const ID_B = "b".repeat(24);

function pending(v: EnrolmentVerdict): Extract<EnrolmentVerdict, { state: "pending" }> {
  assert.equal(v.state, "pending", JSON.stringify(v));
  return v as Extract<EnrolmentVerdict, { state: "pending" }>;
}

describe("Enrolment", () => {
  it("a second enrolment id for a waiting name is a conflict, never a replacement; the fingerprint chooses", () => {
    const book = new Enrolment();
    const a = pending(book.attempt(hello("edge-1", ID_A), T1, "10.0.0.1:5000", 1000));
    assert.equal(a.isNew, true);
    assert.equal(a.request.conflict, false);
    const b = pending(book.attempt(hello("edge-1", ID_B), T1, "10.0.0.2:5000", 2000));
    assert.equal(b.request.conflict, true);
    assert.deepEqual(
      b.rivals.map((r) => r.fingerprint),
      [a.request.fingerprint],
    );
    const again = pending(book.attempt(hello("edge-1", ID_A), T1, "10.0.0.1:5001", 3000));
    assert.equal(again.isNew, false);
    assert.equal(again.request.conflict, true);
    assert.equal(again.request.firstSeen, 1000, "the first request is kept, not replaced");
    assert.equal(book.size, 2);
    assert.deepEqual(
      book.pending().map((r) => [r.fingerprint, r.conflict]),
      [
        [a.request.fingerprint, true],
        [b.request.fingerprint, true],
      ],
    );
    const [row] = book.rows();
    assert.match(row!.disconnectReason!, /^conflict: 2 agents ask to enrol as edge-1/);
    assert.throws(
      () => book.find("edge-1"),
      isMusterError("INVALID_ARGUMENT", /^2 agents ask to enrol as edge-1/),
    );
    assert.throws(() => book.find("edge-1", "0123456789abcdef"), isMusterError("NOT_FOUND", /waiting: /));
    assert.throws(
      () => book.find("edge-1", "nope"),
      isMusterError("INVALID_ARGUMENT", /16 hexadecimal digits/),
    );
    // Accepting A rejects B: the name is taken.
    book.accept(book.find("edge-1", a.request.fingerprint), "ada", 4000);
    assert.equal(book.size, 0);
    const bTold = book.attempt(hello("edge-1", ID_B), T1, "10.0.0.2:5000", 5000);
    assert.equal(bTold.state, "rejected");
    assert.match(
      (bTold as { why: string }).why,
      /another agent \(fingerprint [0-9a-f]{16}\) was accepted as edge-1/,
    );
    const c = book.attempt(hello("edge-1", "c".repeat(24)), T1, "10.0.0.3:5000", 5000);
    assert.equal(c.state, "rejected", "a newcomer for an accepted name is refused, not queued");
    const aIn = book.attempt(hello("edge-1", ID_A), T1, "10.0.0.1:5002", 6000);
    assert.equal(aIn.state, "accepted");
    book.collected(aIn.state === "accepted" ? aIn.request : a.request);
    assert.equal(book.attempt(hello("edge-1", ID_A), T1, "10.0.0.1:5003", 7000).state, "pending");
  });

  it("caps requests per token and per address (an IPv6 /64), and in all; decisions free the share", () => {
    const book = new Enrolment({ maxPending: 6, maxPendingPerToken: 3, maxPendingPerAddress: 2 });
    const id = (i: number): string => `id-${String(i).padStart(20, "0")}`;
    assert.equal(book.attempt(hello("n1", id(1)), T1, "10.0.0.1:1", 0).state, "pending");
    assert.equal(book.attempt(hello("n2", id(2)), T1, "10.0.0.1:2", 0).state, "pending");
    const perAddress = book.attempt(hello("n3", id(3)), T2, "10.0.0.1:3", 0);
    assert.deepEqual(perAddress, {
      state: "full",
      message:
        "2 enrolment requests from 10.0.0.1 are waiting already: an admin must accept or reject some first",
    });
    assert.equal(book.attempt(hello("n3", id(3)), T1, "10.0.0.2:1", 0).state, "pending");
    const perToken = book.attempt(hello("n4", id(4)), T1, "10.0.0.3:1", 0);
    assert.equal(perToken.state, "full");
    assert.match((perToken as { message: string }).message, /^3 requests made with enrolment token token1/);
    // IPv6: one /64 is one address.
    assert.equal(book.attempt(hello("v1", id(5)), T2, "[2001:db8:0:1::5]:1", 0).state, "pending");
    assert.equal(book.attempt(hello("v2", id(6)), T2, "[2001:db8:0:1:ffff::9]:1", 0).state, "pending");
    assert.equal(book.attempt(hello("v3", id(7)), T2, "[2001:db8:0:1::7]:1", 0).state, "full");
    assert.equal(book.size, 5);
    // A rejection frees the token's share.
    book.reject(book.find("n1"), "ada", 1);
    assert.equal(book.attempt(hello("n4", id(4)), T1, "10.0.0.3:1", 2).state, "pending");
    const total = book.attempt(hello("z", id(8)), { id: "token3", methods: undefined }, "10.0.0.9:1", 2);
    assert.equal(total.state, "pending");
    assert.deepEqual(
      book.attempt(hello("zz", id(9)), { id: "token4", methods: undefined }, "10.0.0.8:1", 2),
      {
        state: "full",
        message: "too many enrolment requests are waiting (6): retry later",
      },
    );
  });

  it("forgets requests not retried and decisions not collected, and their counts with them", () => {
    const book = new Enrolment({ retentionMs: 1000, maxPendingPerToken: 1 });
    pending(book.attempt(hello("a", ID_A), T1, "10.0.0.1:1", 0));
    assert.equal(book.attempt(hello("b", ID_B), T1, "10.0.0.2:1", 0).state, "full");
    book.prune(500);
    assert.equal(book.size, 1);
    book.prune(1001);
    assert.equal(book.size, 0);
    assert.deepEqual(book.rows(), []);
    assert.equal(book.attempt(hello("b", ID_B), T1, "10.0.0.2:1", 1002).state, "pending");
    book.accept(book.find("b"), "ada", 1003);
    book.prune(2004);
    assert.equal(
      book.attempt(hello("b", ID_B), T1, "10.0.0.2:1", 2005).state,
      "pending",
      "the decision expired",
    );
  });

  it("keeps the enrolment token's grants for the token issued; a failed issue is told as a rejection", () => {
    const book = new Enrolment();
    const v = pending(book.attempt(hello("g", ID_A), T2, "10.0.0.1:1", 0));
    assert.deepEqual(book.methodsOf(v.request), ["report.*"]);
    book.accept(book.find("g"), "ada", 1);
    const accepted = book.attempt(hello("g", ID_A), T2, "10.0.0.1:1", 2);
    assert.equal(accepted.state, "accepted");
    assert.deepEqual((accepted as { methods: string[] }).methods, ["report.*"]);
    book.failed(v.request, "ada", "it was accepted, but its token could not be issued", 3);
    assert.deepEqual(book.attempt(hello("g", ID_A), T2, "10.0.0.1:1", 4), {
      state: "rejected",
      request: { ...v.request, address: "10.0.0.1:1", lastSeen: 4 },
      by: "ada",
      why: "it was accepted, but its token could not be issued",
    });
  });
});
