import assert from "node:assert/strict";
import { it } from "node:test";
import { LogSampler } from "./log-sampler.js";

it("lets a burst through per interval and counts the rest by message", () => {
  const s = new LogSampler(3, 1000);
  const admitted = Array.from({ length: 10 }, (_, i) => s.admit(i, i % 2 === 0 ? "a" : "b"));
  assert.deepEqual(admitted, [true, true, true, false, false, false, false, false, false, false]);
  assert.deepEqual(s.takeSuppressed(20), { suppressed: 7, byMessage: { a: 3, b: 4 }, overMs: 17 });
  assert.equal(s.takeSuppressed(21), undefined, "the count starts again");
  assert.equal(s.admit(500, "a"), false, "still the same interval");
  assert.equal(s.admit(1000, "a"), true, "a new interval");
  assert.deepEqual(s.takeSuppressed(1000), { suppressed: 1, byMessage: { a: 1 }, overMs: 500 });
});

it("counts message names that are Object.prototype members like any other", () => {
  const s = new LogSampler(0, 1000);
  s.admit(0, "constructor");
  s.admit(0, "__proto__");
  const out = s.takeSuppressed(0)!;
  assert.equal(out.suppressed, 2);
  assert.equal(Object.getOwnPropertyDescriptor(out.byMessage, "__proto__")?.value, 1);
  assert.equal(Object.getOwnPropertyDescriptor(out.byMessage, "constructor")?.value, 1);
});
