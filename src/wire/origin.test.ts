import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeFrame, encodeFrame } from "./codec.js";
import { type Frame, FrameType, HEADER_BYTES } from "./frame.js";
import { ORIGIN_LIMITS, originFrom } from "./origin.js";

/** An ORIGIN frame with `body` after its id, as a hostile peer could write it. */
function rawOrigin(body: string | Buffer, id = 7): Buffer {
  const json = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const buf = Buffer.alloc(HEADER_BYTES + 4 + json.length);
  buf[0] = 1;
  buf[1] = FrameType.ORIGIN;
  buf.writeUIntBE(3, 2, 6);
  buf.writeUInt32BE(id, HEADER_BYTES);
  json.copy(buf, HEADER_BYTES + 4);
  return buf;
}

describe("ORIGIN frames", () => {
  it("round-trip, unknown fields dropped", () => {
    const frame: Frame = {
      type: FrameType.ORIGIN,
      seq: 3,
      ack: 1,
      id: 9,
      origin: { role: "operator", name: "ann-laptop", subject: "ann", server: "s1" },
    };
    assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
    const later = decodeFrame(rawOrigin('{"role":"operator","name":"a","team":"x"}'));
    assert.deepEqual((later as { origin: unknown }).origin, { role: "operator", name: "a" });
  });

  it("the encoder makes what the decoder would refuse fit, instead of failing the call", () => {
    const long = "é".repeat(1000);
    const frame = encodeFrame({
      type: FrameType.ORIGIN,
      seq: 1,
      ack: 0,
      id: 1,
      origin: { role: "Not A Role", name: "", subject: long, server: "" },
    });
    const { origin } = decodeFrame(frame) as unknown as { origin: Record<string, string> };
    assert.equal(origin.role, "unknown");
    assert.equal(origin.name, "-");
    assert.equal(origin.subject!.length, ORIGIN_LIMITS.fieldMaxChars);
    assert.equal(origin.server, undefined, "an empty server is left out");
  });

  it("malformed bodies are refused precisely", () => {
    const cases: Array<[Buffer, RegExp]> = [
      [rawOrigin(""), /ORIGIN body truncated: 4 < 6 bytes/],
      [rawOrigin("{"), /ORIGIN body is not valid JSON|ORIGIN body/],
      [rawOrigin("[1]"), /ORIGIN body must be a JSON object/],
      [rawOrigin('{"name":"a"}'), /ORIGIN\.role must be 1–32 lowercase letters/],
      [rawOrigin('{"role":"operator"}'), /ORIGIN\.name must be a string of 1–256 characters/],
      [rawOrigin('{"role":"operator","name":""}'), /ORIGIN\.name must be a string/],
      [
        rawOrigin(`{"role":"operator","name":"${"a".repeat(257)}"}`),
        /ORIGIN\.name must be a string of 1–256/,
      ],
      [rawOrigin('{"role":"operator","name":"a","subject":5}'), /ORIGIN\.subject must be a string/],
      [
        rawOrigin(Buffer.alloc(ORIGIN_LIMITS.maxJsonBytes + 1, 0x20)),
        /ORIGIN body of 8193 bytes is over the limit of 8192 bytes/,
      ],
      [rawOrigin('{"role":{"a":{"b":1}},"name":"a"}'), /ORIGIN body is nested deeper than 2 levels/],
    ];
    for (const [buf, message] of cases)
      assert.throws(() => decodeFrame(buf), message, buf.toString("utf8", 18, 60));
  });

  it("originFrom (between servers) drops a malformed origin instead of failing", () => {
    assert.equal(originFrom(undefined), undefined);
    assert.equal(originFrom("operator"), undefined);
    assert.equal(originFrom({ role: "operator" }), undefined);
    assert.deepEqual(originFrom({ role: "text", name: "127.0.0.1:5000" }), {
      role: "text",
      name: "127.0.0.1:5000",
    });
  });
});
