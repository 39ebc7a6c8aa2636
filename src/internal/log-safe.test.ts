import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { truncateForLog } from "./log-safe.js";

describe("truncateForLog", () => {
  it("keeps a short value whole and cuts a long one, saying how much is left out", () => {
    assert.equal(truncateForLog("STOP"), "STOP");
    assert.equal(truncateForLog("x".repeat(200)), "x".repeat(200));
    assert.equal(truncateForLog("x".repeat(1_000_000)), `${"x".repeat(200)}…(+999800 chars)`);
    assert.equal(truncateForLog("abcdef", 3), "abc…(+3 chars)");
  });

  it("never splits a surrogate pair", () => {
    const s = `${"a".repeat(9)}😀${"b".repeat(10)}`;
    assert.equal(truncateForLog(s, 10), `${"a".repeat(9)}…(+12 chars)`);
  });
});
