import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../errors/codes.js";
import { encodeValue } from "./codec.js";
import { describeFrame } from "./describe.js";
import { CloseCode, type Frame, FrameType, PayloadKind } from "./frame.js";

const SECRET = "s3cr3t-r3sum3-t0k3n";

/** Every line must be one line: no line breaks of any kind. */
function line(frame: Frame, max?: number): string {
  const text = describeFrame(frame, max);
  assert.doesNotMatch(text, /[\r\n\u2028\u2029]/, "a description must be a single line");
  return text;
}

describe("describeFrame", () => {
  it("HELLO without a token", () => {
    assert.equal(
      line({
        type: FrameType.HELLO,
        seq: 0,
        ack: 0,
        hello: { role: "agent", name: "edge-01", labels: { zone: "eu" }, version: "0.1.0" },
      }),
      `HELLO seq=0 ack=0 {"role":"agent","name":"edge-01","labels":{"zone":"eu"},"version":"0.1.0"}`,
    );
  });

  it("HELLO with a token: the token is redacted", () => {
    const text = line({
      type: FrameType.HELLO,
      seq: 0,
      ack: 12,
      hello: { role: "operator", name: "alice", labels: {}, version: "0.1.0", token: SECRET },
    });
    assert.equal(
      text,
      `HELLO seq=0 ack=12 {"role":"operator","name":"alice","labels":{},"version":"0.1.0","token":"<redacted>"}`,
    );
    assert.ok(!text.includes(SECRET));
  });

  it("WELCOME: the token is redacted, the rest shown", () => {
    const text = line({
      type: FrameType.WELCOME,
      seq: 0,
      ack: 4,
      welcome: {
        sessionId: "s-7",
        token: SECRET,
        resumed: true,
        expired: false,
        replaying: 1,
        heartbeatIntervalMs: 5000,
        resumeWindowMs: 30000,
        server: { name: "muster", version: "0.1.0" },
      },
    });
    assert.equal(
      text,
      `WELCOME seq=0 ack=4 {"sessionId":"s-7","token":"<redacted>","resumed":true,"expired":false,` +
        `"replaying":1,"heartbeatIntervalMs":5000,"resumeWindowMs":30000,"server":{"name":"muster","version":"0.1.0"}}`,
    );
    assert.ok(!text.includes(SECRET));
  });

  it("PING and PONG show the time", () => {
    assert.equal(
      line({ type: FrameType.PING, seq: 0, ack: 7, time: 1234.5 }),
      "PING seq=0 ack=7 time=1234.5",
    );
    assert.equal(line({ type: FrameType.PONG, seq: 0, ack: 7, time: 99.25 }), "PONG seq=0 ack=7 time=99.3");
  });

  it("ACK is the header alone", () => {
    assert.equal(line({ type: FrameType.ACK, seq: 0, ack: 300 }), "ACK seq=0 ack=300");
  });

  it("CLOSE shows its body", () => {
    assert.equal(
      line({ type: FrameType.CLOSE, seq: 0, ack: 0, close: { code: "replaced", message: "new\nsession" } }),
      `CLOSE seq=0 ack=0 {"code":"replaced","message":"new\\nsession"}`,
    );
  });

  it("CALL shows id, method, timeout and payload", () => {
    assert.equal(
      line({
        type: FrameType.CALL,
        seq: 1,
        ack: 0,
        id: 1,
        timeoutMs: 10000,
        method: "sys.ping",
        payload: encodeValue({ n: 1 }),
      }),
      `CALL seq=1 ack=0 id=1 method=sys.ping timeout=10000ms {"n":1}`,
    );
  });

  it("ITEM with bytes shows only their count", () => {
    assert.equal(
      line({ type: FrameType.ITEM, seq: 2, ack: 1, id: 1, payload: encodeValue(new Uint8Array(4)) }),
      "ITEM seq=2 ack=1 id=1 bytes(4)",
    );
  });

  it("RESULT ok, with and without a value", () => {
    assert.equal(
      line({ type: FrameType.RESULT, seq: 3, ack: 1, id: 1, payload: encodeValue({ pong: true }) }),
      `RESULT seq=3 ack=1 id=1 ok {"pong":true}`,
    );
    assert.equal(
      line({ type: FrameType.RESULT, seq: 4, ack: 1, id: 2, payload: encodeValue(undefined) }),
      "RESULT seq=4 ack=1 id=2 ok none",
    );
  });

  it("RESULT error shows the code and the quoted message", () => {
    assert.equal(
      line({
        type: FrameType.RESULT,
        seq: 5,
        ack: 2,
        id: 2,
        error: { code: ErrorCode.UNIMPLEMENTED, message: `no handler for "x.y"` },
      }),
      `RESULT seq=5 ack=2 id=2 error=UNIMPLEMENTED "no handler for \\"x.y\\""`,
    );
  });

  it("CANCEL shows the id", () => {
    assert.equal(line({ type: FrameType.CANCEL, seq: 6, ack: 2, id: 3 }), "CANCEL seq=6 ack=2 id=3");
  });

  it("long payloads are cut at `max` characters (200 by default), with the byte count", () => {
    const long = "x".repeat(1000);
    const payload = encodeValue(long); // 1002 bytes: the quotes count
    const text = line({ type: FrameType.ITEM, seq: 1, ack: 0, id: 1, payload });
    assert.equal(text, `ITEM seq=1 ack=0 id=1 "${"x".repeat(199)}…(1002B)`);
    assert.ok(text.length < 250);

    const short = line({ type: FrameType.ITEM, seq: 1, ack: 0, id: 1, payload }, 10);
    assert.equal(short, `ITEM seq=1 ack=0 id=1 "xxxxxxxxx…(1002B)`);

    const call = line({
      type: FrameType.CALL,
      seq: 1,
      ack: 0,
      id: 1,
      timeoutMs: 5,
      method: "m",
      payload: encodeValue({ a: "y".repeat(500) }),
    });
    assert.ok(call.endsWith("…(508B)"), call);
    assert.ok(call.length < 260);
  });

  it("payloads of exactly `max` characters are not cut", () => {
    const payload = encodeValue("z".repeat(8)); // 10 characters with the quotes
    assert.equal(
      line({ type: FrameType.RESULT, seq: 1, ack: 0, id: 1, payload }, 10),
      `RESULT seq=1 ack=0 id=1 ok "zzzzzzzz"`,
    );
  });

  it("line breaks from the peer cannot split the line (payload text and method names)", () => {
    const payload = { kind: PayloadKind.JSON, bytes: Buffer.from('{\n"a":\r\n1}\u2028') };
    assert.equal(
      line({ type: FrameType.ITEM, seq: 1, ack: 0, id: 1, payload }),
      `ITEM seq=1 ack=0 id=1 {\\u000a"a":\\u000d\\u000a1}\\u2028`,
    );
    assert.equal(
      line({
        type: FrameType.CALL,
        seq: 1,
        ack: 0,
        id: 1,
        timeoutMs: 5,
        method: "evil\nRESULT seq=9",
        payload: encodeValue(undefined),
      }),
      "CALL seq=1 ack=0 id=1 method=evil\\u000aRESULT seq=9 timeout=5ms none",
    );
  });

  it("nor can text in JSON bodies: labels, CLOSE and error messages, WELCOME fields", () => {
    // JSON.stringify escapes C0 controls but keeps DEL, C1 controls and U+2028/U+2029 as they are.
    const evil = "a\u2028b\u2029c\u0085d\u009b31me\u007f";
    const escaped = "a\\u2028b\\u2029c\\u0085d\\u009b31me\\u007f";
    const lines = [
      line({
        type: FrameType.HELLO,
        seq: 0,
        ack: 0,
        hello: { role: "agent", name: "a", labels: { zone: evil }, version: evil },
      }),
      line({ type: FrameType.CLOSE, seq: 0, ack: 0, close: { code: CloseCode.NORMAL, message: evil } }),
      line({
        type: FrameType.RESULT,
        seq: 1,
        ack: 0,
        id: 1,
        error: { code: ErrorCode.INTERNAL, message: evil },
      }),
      line({
        type: FrameType.WELCOME,
        seq: 0,
        ack: 0,
        welcome: {
          sessionId: evil,
          token: "t",
          resumed: false,
          expired: false,
          replaying: 0,
          heartbeatIntervalMs: 1,
          resumeWindowMs: 1,
          server: { name: evil, version: "1" },
        },
      }),
    ];
    for (const l of lines) {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
      assert.doesNotMatch(l, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/, l);
      assert.ok(l.includes(escaped), l);
    }
  });
});
