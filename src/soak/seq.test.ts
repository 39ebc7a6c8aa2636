import assert from "node:assert/strict";
import { it } from "node:test";
import { checkSeq, newSeq, type SeqState } from "./seq.js";

it("tells a repeated number from a late one, and both from a gap", () => {
  const c = newSeq();
  const state: SeqState = new Map();
  for (const n of [1, 2, 4, 3, 3, 5]) checkSeq(c, state, "a", n);
  // 4 after 2: a gap; 3 after 4: late; 3 again: repeated.
  assert.deepEqual(c, { received: 6, duplicated: 1, outOfOrder: 2 });
  for (const n of [1, 2]) checkSeq(c, state, "b", n);
  assert.deepEqual(c, { received: 8, duplicated: 1, outOfOrder: 2 }, "each sender counts on its own");
});

it("stays bounded: numbers far below the highest are forgotten", () => {
  const c = newSeq();
  const state: SeqState = new Map();
  for (let n = 1; n <= 50_000; n++) checkSeq(c, state, "a", n);
  assert.equal(c.duplicated + c.outOfOrder, 0);
  assert.ok(state.get("a")!.got.size <= 20_001, `${state.get("a")!.got.size} numbers kept`);
});
