import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../errors/codes.js";
import type { MusterError } from "../errors/muster-error.js";
import { CLUSTER_PROTOCOL, decodeEnvelope, encodeEnvelope } from "./envelope.js";

const bytes = (s: string) => new TextEncoder().encode(s);

function raw(head: unknown, ...blobs: Uint8Array[]): Uint8Array {
  const json = bytes(typeof head === "string" ? head : JSON.stringify(head));
  const out = new Uint8Array(4 + json.length + blobs.reduce((n, b) => n + b.length, 0));
  new DataView(out.buffer).setUint32(0, json.length);
  out.set(json, 4);
  let at = 4 + json.length;
  for (const b of blobs) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

const refused = (data: Uint8Array, why: RegExp) =>
  assert.throws(
    () => decodeEnvelope(data),
    (e: MusterError) => e.code === ErrorCode.PROTOCOL_ERROR && why.test(e.rawMessage),
  );

describe("cluster envelope", () => {
  it("round-trips a head and its blobs, bytes untouched", () => {
    const blobs = [bytes("one"), new Uint8Array([0, 255, 7]), new Uint8Array(0)];
    const env = decodeEnvelope(encodeEnvelope({ t: "part", id: "x.1", names: ["a", "b"] }, blobs));
    assert.equal(env.head.v, CLUSTER_PROTOCOL);
    assert.equal(env.head.t, "part");
    assert.deepEqual(env.head.names, ["a", "b"]);
    assert.deepEqual(
      env.blobs.map((b) => [...b]),
      blobs.map((b) => [...b]),
    );
  });

  it("reads the next protocol version (a rolling upgrade) and refuses others", () => {
    assert.equal(
      decodeEnvelope(raw({ v: CLUSTER_PROTOCOL + 1, t: "part", extra: true })).head.v,
      CLUSTER_PROTOCOL + 1,
    );
    refused(raw({ v: CLUSTER_PROTOCOL + 2, t: "part" }), /protocol version 3/);
    refused(raw({ v: 0, t: "part" }), /protocol version 0/);
    refused(raw({ t: "part" }), /protocol version undefined/);
  });

  it("refuses truncated, malformed and lying bodies with a precise reason", () => {
    refused(new Uint8Array([0, 0]), /shorter than its header/);
    refused(raw("{").subarray(0, 4), /head of 1 bytes in a body of 4/);
    refused(raw("{not json"), /head is not JSON/);
    refused(raw("[1]"), /head is not an object/);
    refused(raw({ v: 1 }), /no message type/);
    refused(raw({ v: 1, t: "x", b: "3" }), /blob lengths are not a list/);
    refused(raw({ v: 1, t: "x", b: [5] }, bytes("abc")), /a blob runs past the end/);
    refused(raw({ v: 1, t: "x", b: [-1] }), /a blob runs past the end/);
    refused(raw({ v: 1, t: "x", b: [1] }, bytes("ab")), /1 bytes after the last blob/);
    refused(raw(new Array(10).fill("x").join("")), /head is not JSON/);
  });

  it("survives random bytes: every body either decodes or is refused with PROTOCOL_ERROR", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const good = encodeEnvelope({ t: "outcomes", id: "a.1", o: [{ n: "x", k: 1 }] }, [bytes('"ok"')]);
    for (let i = 0; i < 2000; i++) {
      const data = Uint8Array.from(good);
      const flips = 1 + (rnd() % 4);
      for (let f = 0; f < flips; f++) data[rnd() % data.length] = rnd() & 0xff;
      const cut = rnd() % 3 === 0 ? data.subarray(0, rnd() % data.length) : data;
      try {
        decodeEnvelope(cut);
      } catch (err) {
        assert.equal((err as MusterError).code, ErrorCode.PROTOCOL_ERROR);
      }
    }
  });
});
