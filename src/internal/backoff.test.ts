import assert from "node:assert/strict";
import { it } from "node:test";
import { Backoff } from "./backoff.js";

it("doubles from 500 ms to the 30 s cap without jitter", () => {
  const b = new Backoff({ jitter: 0 });
  const seq = Array.from({ length: 9 }, () => b.next());
  assert.deepEqual(seq, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  b.reset();
  assert.equal(b.next(), 500);
});

it("applies jitter after the cap, so agents at the cap stay spread out", () => {
  const b = new Backoff({ initialMs: 500, maxMs: 30_000, jitter: 0.5 });
  for (let i = 0; i < 10; i++) b.next();
  const atCap = Array.from({ length: 500 }, () => b.next());
  assert.ok(Math.min(...atCap) >= 15_000 && Math.max(...atCap) <= 45_000, "within ±50 % of the cap");
  assert.ok(
    Math.max(...atCap) - Math.min(...atCap) > 20_000,
    "spread over most of that range, not collapsed",
  );
  assert.ok(
    atCap.some((d) => d > 30_000),
    "jitter is not clipped by the cap",
  );
});

it("uses the injected random source at the extremes", () => {
  assert.equal(new Backoff({ jitter: 0.5, random: () => 0 }).next(), 250);
  assert.equal(new Backoff({ jitter: 0.5, random: () => 1 }).next(), 750);
});
