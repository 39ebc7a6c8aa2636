import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeFrame, encodeCall, encodeValue } from "./codec.js";
import { FrameType, PayloadKind } from "./frame.js";
import { SharedCall } from "./shared-call.js";

test("each member's frame has the bytes encodeCall gives for its id", () => {
  for (const payload of [
    encodeValue({ n: 1, text: "héllo" }),
    encodeValue(undefined),
    encodeValue(new Uint8Array([1, 2, 3])),
  ]) {
    const shared = new SharedCall("méthode.x", 1234.6, payload);
    for (const id of [1, 255, 65_536, 0xffffffff]) {
      const f = shared.frame(id);
      assert.deepEqual(f, encodeCall(1, 0, id, 1234.6, "méthode.x", payload));
      assert.equal(f.length, shared.frameBytes);
    }
  }
});

test("frames are independent copies: writing one's header leaves the others alone", () => {
  const shared = new SharedCall("echo", 5000, encodeValue("x"));
  const a = shared.frame(7);
  const b = shared.frame(8);
  a.writeUIntBE(42, 2, 6);
  const fb = decodeFrame(b);
  assert.equal(fb.type, FrameType.CALL);
  assert.equal(fb.seq, 1);
  if (fb.type !== FrameType.CALL) return;
  assert.equal(fb.id, 8);
  assert.equal(fb.method, "echo");
  assert.equal(fb.payload.kind, PayloadKind.JSON);
  assert.equal(decodeFrame(a).seq, 42);
});

test("matches only the same payload object, method and timeout", () => {
  const payload = encodeValue(1);
  const shared = new SharedCall("m", 10, payload);
  assert.equal(shared.matches("m", 10, payload), true);
  assert.equal(shared.matches("m", 10, encodeValue(1)), false);
  assert.equal(shared.matches("n", 10, payload), false);
  assert.equal(shared.matches("m", 11, payload), false);
});
