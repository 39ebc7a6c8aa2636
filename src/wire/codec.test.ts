import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isMusterError } from "../../test/support/errors.js";
import { ErrorCode } from "../errors/codes.js";
import { type ErrorBody, MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import {
  decodeFrame,
  decodeValue,
  encodeCall,
  encodeFrame,
  encodeValue,
  readWelcomeServers,
  withAck,
} from "./codec.js";
import {
  type CloseBody,
  CloseCode,
  type Frame,
  FrameType,
  HEADER_BYTES,
  type HelloBody,
  LABEL_KEY_PATTERN,
  MAX_SEQ,
  NAME_LIMITS,
  NAME_PATTERN,
  type Payload,
  PayloadKind,
  WELCOME_SERVERS_LIMITS,
  type WelcomeBody,
  type WelcomeServers,
} from "./frame.js";
import type { CallOrigin } from "./origin.js";

// ---------------------------------------------------------------------------------------
// Helpers

/** A frame as written in test/fixtures/golden-frames.json: payload bytes as a hex string. */
type PlainFrame = Record<string, unknown>;

interface GoldenVector {
  name: string;
  hex: string;
  frame: PlainFrame;
}

const golden: GoldenVector[] = JSON.parse(
  readFileSync(new URL("../../../test/fixtures/golden-frames.json", import.meta.url), "utf8"),
);

/** Payload bytes → hex, so that frames compare with deepStrictEqual whatever the byte container. */
function toPlain(frame: Frame): PlainFrame {
  if ("payload" in frame) {
    return {
      ...frame,
      payload: { kind: frame.payload.kind, bytes: Buffer.from(frame.payload.bytes).toString("hex") },
    };
  }
  return { ...frame };
}

/** The inverse of toPlain: a fixture frame → a Frame with real bytes. */
function fromPlain(plain: PlainFrame): Frame {
  const p = plain.payload as { kind: number; bytes: string } | undefined;
  if (p === undefined) return plain as unknown as Frame;
  return { ...plain, payload: { kind: p.kind, bytes: Buffer.from(p.bytes, "hex") } } as unknown as Frame;
}

/** Removes spaces and `|` separators from an annotated hex string. */
function hex(annotated: string): string {
  return annotated.replace(/[\s|]/g, "");
}

/** UTF-8 bytes of `text` as hex (Buffer, not the codec, so the expectation is independent). */
function utf8Hex(text: string): string {
  return Buffer.from(text, "utf8").toString("hex");
}

/** A frame built byte by byte, bypassing the encoder: version 1 unless told otherwise. */
function raw(type: number, seq: number, ack: number, ...body: (Uint8Array | string | number[])[]): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  head[0] = 1;
  head[1] = type;
  head.writeUIntBE(seq, 2, 6);
  head.writeUIntBE(ack, 8, 6);
  const parts = body.map((b) => (typeof b === "string" ? Buffer.from(b, "utf8") : Buffer.from(b)));
  return Buffer.concat([head, ...parts]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A frame whose body is `value` as JSON text. */
function jsonFrame(type: number, value: unknown): Buffer {
  return raw(type, 0, 0, JSON.stringify(value));
}

/** A RESULT error frame whose error body is `value` as JSON text (or raw text). */
function resultError(body: unknown, asText = false): Buffer {
  return raw(FrameType.RESULT, 1, 0, u32(1), [1], asText ? String(body) : JSON.stringify(body));
}

/** decodeFrame must throw PROTOCOL_ERROR with a message matching `message`. */
function rejects(bytes: Uint8Array, message: RegExp): void {
  assert.throws(() => decodeFrame(bytes), isMusterError(ErrorCode.PROTOCOL_ERROR, message));
}

function without<T extends object>(o: T, key: keyof T): Partial<T> {
  const copy: Partial<T> = { ...o };
  delete copy[key];
  return copy;
}

const HELLO_OK: HelloBody = { role: "agent", name: "edge-01", labels: { zone: "eu" }, version: "0.1.0" };
const WELCOME_OK: WelcomeBody = {
  sessionId: "s-1",
  token: "tok",
  resumed: false,
  expired: false,
  replaying: 0,
  heartbeatIntervalMs: 5000,
  resumeWindowMs: 30000,
  server: { name: "muster", version: "0.1.0" },
};
const CLOSE_OK: CloseBody = { code: CloseCode.NORMAL, message: "bye" };

const SEQUENCED = [FrameType.CALL, FrameType.ITEM, FrameType.RESULT, FrameType.CANCEL];
const CONTROL = [
  FrameType.HELLO,
  FrameType.WELCOME,
  FrameType.PING,
  FrameType.PONG,
  FrameType.ACK,
  FrameType.CLOSE,
];

// ---------------------------------------------------------------------------------------
// Golden vectors

/**
 * The expected encodings, derived by hand from docs/protocol.md and written out here a
 * second time so that the fixture file cannot be silently regenerated from the encoder.
 * Layout: version type | seq (u48) | ack (u48) | body fields.
 */
const EXPECTED: Record<string, string> = {
  "HELLO new session":
    hex("01 01 | 000000000000 | 000000000000 |") +
    utf8Hex(`{"role":"agent","name":"edge-01","labels":{"zone":"eu"},"version":"0.1.0"}`),
  "HELLO resume":
    hex("01 01 | 000000000000 | 000000000005 |") +
    utf8Hex(`{"role":"agent","name":"edge-01","labels":{},"version":"0.1.0","token":"r3sum3-t0k3n"}`),
  WELCOME:
    hex("01 02 | 000000000000 | 000000000000 |") +
    utf8Hex(
      `{"sessionId":"s-7","token":"r3sum3-t0k3n","resumed":false,"expired":false,"replaying":0,` +
        `"heartbeatIntervalMs":5000,"resumeWindowMs":30000,"server":{"name":"muster","version":"0.1.0"}}`,
    ),
  // The same, from a server in a cluster: `servers` lists it and one more (draining).
  "WELCOME cluster":
    hex("01 02 | 000000000000 | 000000000000 |") +
    utf8Hex(
      `{"sessionId":"s-8","token":"r3sum3-t0k3n","resumed":false,"expired":false,"replaying":0,` +
        `"heartbeatIntervalMs":5000,"resumeWindowMs":30000,"server":{"name":"muster-a","version":"0.1.0"},` +
        `"servers":[{"name":"muster-a","urls":["tcp://10.0.0.1:33076","wss://a.example:33075"],"load":12,` +
        `"state":"ready"},{"name":"muster-b","urls":["tcp://10.0.0.2:33076"],"load":0.5,"state":"draining"}]}`,
    ),
  // time: 1234.5 = 1.00110100101b × 2^10 → sign 0, exponent 0x409, mantissa 0x34a0000000000
  PING: hex("01 03 | 000000000000 | 000000000007 | 40934a0000000000"),
  PONG: hex("01 04 | 000000000000 | 000000000007 | 40934a0000000000"),
  // ack 300 = 0x12c; no body
  ACK: hex("01 05 | 000000000000 | 00000000012c"),
  CLOSE:
    hex("01 06 | 000000000000 | 000000000000 |") +
    utf8Hex(`{"code":"shutdown","message":"server stopping","retryAfterMs":1000}`),
  // id 1 | timeout 10000 = 0x2710 | method length 8 | "sys.ping" | kind JSON | {"n":1}
  CALL: hex(
    "01 10 | 000000000001 | 000000000000 | 00000001 | 00002710 | 08 | 7379732e70696e67 | 01 | 7b226e223a317d",
  ),
  // id 0xffffffff | timeout 0 | method length 1 | "a" | kind NONE
  "CALL no payload": hex("01 10 | 000000000002 | 000000000003 | ffffffff | 00000000 | 01 | 61 | 00"),
  // id 1 | kind BYTES | de ad be ef
  ITEM: hex("01 11 | 000000000002 | 000000000001 | 00000001 | 02 | deadbeef"),
  // id 1 | status ok | kind JSON | {"pong":true}
  "RESULT ok": hex("01 12 | 000000000003 | 000000000001 | 00000001 | 00 | 01 |") + utf8Hex(`{"pong":true}`),
  // id 2 | status ok | kind NONE
  "RESULT ok no payload": hex("01 12 | 000000000004 | 000000000002 | 00000002 | 00 | 00"),
  // id 2 | status error | error body JSON
  "RESULT error":
    hex("01 12 | 000000000005 | 000000000002 | 00000002 | 01 |") +
    utf8Hex(`{"code":"UNIMPLEMENTED","message":"no handler for x.y"}`),
  CANCEL: hex("01 13 | 000000000006 | 000000000002 | 00000003"),
  // seq = 2^48 − 1 (MAX_SEQ), ack = 0x0123456789ab, id = 0x01020304
  "CANCEL largest seq": hex("01 13 | ffffffffffff | 0123456789ab | 01020304"),
  // id 4 | timeoutMs 0 (no deadline) | window 262144 | method "logs.tail" | kind JSON | {"from":42}
  OPEN: hex(
    "01 14 | 000000000007 | 000000000003 | 00000004 | 00000000 | 00040000 | 09 | 6c6f67732e7461696c | 01 | 7b2266726f6d223a34327d",
  ),
  // id 4 | bytes 131072
  CREDIT: hex("01 15 | 000000000008 | 000000000005 | 00000004 | 00020000"),
  // id 4 | the JSON origin
  ORIGIN: hex(
    `01 16 | 000000000009 | 000000000005 | 00000004 | ${utf8Hex('{"role":"operator","name":"ann","server":"s1"}')}`,
  ),
};

describe("golden vectors (test/fixtures/golden-frames.json)", () => {
  it("the fixture holds exactly the hand-derived encodings", () => {
    assert.deepEqual(
      Object.fromEntries(golden.map((v) => [v.name, v.hex])),
      EXPECTED,
      "fixture and hand-derived hex disagree",
    );
    for (const v of golden)
      assert.match(v.hex, /^([0-9a-f]{2})+$/, `${v.name}: hex must be lower-case pairs`);
  });

  it("cover every frame type, and RESULT both ok and error", () => {
    const types = new Set(golden.map((v) => v.frame.type));
    assert.deepEqual([...types].sort(), Object.values(FrameType).sort());
    assert.ok(golden.some((v) => v.frame.type === FrameType.RESULT && "payload" in v.frame));
    assert.ok(golden.some((v) => v.frame.type === FrameType.RESULT && "error" in v.frame));
    assert.ok(golden.some((v) => v.frame.seq === MAX_SEQ));
  });

  for (const v of golden) {
    it(`${v.name}: encodeFrame produces the vector, decodeFrame reads it back`, () => {
      const encoded = encodeFrame(fromPlain(v.frame));
      assert.equal(encoded.toString("hex"), v.hex);
      assert.deepEqual(toPlain(decodeFrame(Buffer.from(v.hex, "hex"))), v.frame);
    });
  }

  it("decodeFrame reads a plain Uint8Array view at a non-zero offset", () => {
    for (const v of golden) {
      const bytes = Buffer.from(v.hex, "hex");
      const big = new Uint8Array(bytes.length + 10);
      big.set(bytes, 7);
      const view = big.subarray(7, 7 + bytes.length);
      assert.ok(!Buffer.isBuffer(view));
      assert.deepEqual(toPlain(decodeFrame(view)), v.frame, v.name);
    }
  });

  it("decoded payloads are views into the input (no copy)", () => {
    const bytes = Buffer.from(EXPECTED.ITEM!, "hex");
    const frame = decodeFrame(bytes);
    assert.equal(frame.type, FrameType.ITEM);
    if (frame.type !== FrameType.ITEM) return;
    assert.equal(frame.payload.bytes.buffer, bytes.buffer);
    bytes[bytes.length - 1] = 0x00;
    assert.equal(Buffer.from(frame.payload.bytes).toString("hex"), "deadbe00");
  });
});

// ---------------------------------------------------------------------------------------
// Malformed frames

describe("decodeFrame rejects malformed frames with PROTOCOL_ERROR", () => {
  const call = Buffer.from(EXPECTED.CALL!, "hex");
  for (let n = 0; n < HEADER_BYTES; n++) {
    it(`truncated header: ${n} bytes`, () => {
      rejects(call.subarray(0, n), new RegExp(`^frame truncated: ${n} bytes < 14-byte header$`));
    });
  }

  for (const version of [0, 2, 0xff]) {
    it(`wrong version ${version}`, () => {
      const bytes = Buffer.from(call);
      bytes[0] = version;
      rejects(bytes, new RegExp(`^unsupported protocol version ${version} \\(this side speaks 1\\)$`));
    });
  }

  for (const [type, seq] of [
    [0x00, 0],
    [0x07, 0],
    [0x0f, 0],
    [0x17, 1],
    [0x20, 1],
    [0xff, 1],
  ] as const) {
    it(`unknown type 0x${type.toString(16).padStart(2, "0")}`, () => {
      rejects(raw(type, seq, 0), new RegExp(`^unknown frame type 0x${type.toString(16).padStart(2, "0")}$`));
    });
  }

  for (const type of SEQUENCED) {
    it(`sequenced type 0x${type.toString(16)} with seq 0`, () => {
      const bytes = Buffer.from(call);
      bytes[1] = type;
      bytes.fill(0, 2, 8);
      rejects(bytes, new RegExp(`^frame type 0x${type.toString(16)} needs a sequence number$`));
    });
  }

  for (const type of CONTROL) {
    for (const seq of [1, MAX_SEQ]) {
      it(`control type 0x${type.toString(16)} with seq ${seq}`, () => {
        rejects(raw(type, seq, 0), new RegExp(`^control frame type 0x${type.toString(16)} must have seq 0$`));
      });
    }
  }

  for (const [name, type, size, bad] of [
    ["PING", FrameType.PING, 8, [0, 7, 9, 16]],
    ["PONG", FrameType.PONG, 8, [0, 7, 9]],
    ["ACK", FrameType.ACK, 0, [1, 8]],
    ["CANCEL", FrameType.CANCEL, 4, [0, 3, 5, 8]],
  ] as const) {
    for (const got of bad) {
      it(`${name} with a ${got}-byte body (must be ${size})`, () => {
        const seq = type === FrameType.CANCEL ? 1 : 0;
        rejects(
          raw(type, seq, 0, new Uint8Array(got)),
          new RegExp(`^${name} body must be ${size} bytes, got ${got}$`),
        );
      });
    }
  }

  it("CALL truncated before the method length byte", () => {
    for (let n = 0; n < 10; n++) {
      rejects(
        raw(FrameType.CALL, 1, 0, new Uint8Array(n).fill(1)),
        new RegExp(`^CALL body truncated: ${n} < 10 bytes$`),
      );
    }
  });

  it("CALL truncated inside the method name or before the payload kind", () => {
    // method length 8 announced; the body stops after 3 bytes of name, then after the name
    rejects(raw(FrameType.CALL, 1, 0, u32(1), u32(100), [8], "sys"), /^CALL body truncated: 12 < 18 bytes$/);
    rejects(
      raw(FrameType.CALL, 1, 0, u32(1), u32(100), [8], "sys.ping"),
      /^CALL body truncated: 17 < 18 bytes$/,
    );
  });

  it("ITEM truncated", () => {
    for (let n = 0; n < 5; n++) {
      rejects(
        raw(FrameType.ITEM, 1, 0, new Uint8Array(n)),
        new RegExp(`^ITEM body truncated: ${n} < 5 bytes$`),
      );
    }
  });

  it("RESULT truncated, and RESULT ok without a payload kind byte", () => {
    for (let n = 0; n < 5; n++) {
      rejects(
        raw(FrameType.RESULT, 1, 0, new Uint8Array(n)),
        new RegExp(`^RESULT body truncated: ${n} < 5 bytes$`),
      );
    }
    rejects(raw(FrameType.RESULT, 1, 0, u32(1), [0]), /^payload kind byte missing$/);
  });

  it("OPEN truncated, with a zero window, an empty or non-UTF-8 name", () => {
    for (let n = 0; n < 14; n++) {
      rejects(
        raw(FrameType.OPEN, 1, 0, new Uint8Array(n).fill(1)),
        new RegExp(`^OPEN body truncated: ${n} < 14 bytes$`),
      );
    }
    rejects(
      raw(FrameType.OPEN, 1, 0, u32(1), u32(0), u32(0), [1], "s", [0]),
      /^OPEN window is 0: the stream could never send$/,
    );
    rejects(raw(FrameType.OPEN, 1, 0, u32(1), u32(0), u32(64), [0], [0]), /^OPEN method name is empty$/);
    rejects(
      raw(FrameType.OPEN, 1, 0, u32(1), u32(0), u32(64), [4], "logs"),
      /^OPEN body truncated: 17 < 18 bytes$/,
    );
    rejects(
      raw(FrameType.OPEN, 1, 0, u32(1), u32(0), u32(64), [1], [0xff], [0]),
      /^OPEN method name is not valid UTF-8$/,
    );
  });

  for (const got of [0, 4, 7, 9]) {
    it(`CREDIT with a ${got}-byte body (must be 8)`, () => {
      rejects(
        raw(FrameType.CREDIT, 1, 0, new Uint8Array(got)),
        new RegExp(`^CREDIT body must be 8 bytes, got ${got}$`),
      );
    });
  }

  it("OPEN and CREDIT need a sequence number", () => {
    rejects(
      raw(FrameType.OPEN, 0, 0, u32(1), u32(0), u32(64), [1], "s", [0]),
      /^frame type 0x14 needs a sequence number$/,
    );
    rejects(raw(FrameType.CREDIT, 0, 0, u32(1), u32(64)), /^frame type 0x15 needs a sequence number$/);
  });

  it("CALL with an empty method name", () => {
    rejects(raw(FrameType.CALL, 1, 0, u32(1), u32(100), [0], [0]), /^CALL method name is empty$/);
  });

  for (const [label, bytes] of [
    ["lone continuation byte", [0x80]],
    ["0xff", [0x61, 0xff]],
    ["truncated 2-byte sequence", [0x61, 0xc3]],
    ["overlong encoding", [0xc0, 0xaf]],
    ["UTF-16 surrogate", [0xed, 0xa0, 0x80]],
  ] as const) {
    it(`CALL with a method name that is not UTF-8 (${label})`, () => {
      rejects(
        raw(FrameType.CALL, 1, 0, u32(1), u32(100), [bytes.length], [...bytes], [0]),
        /^CALL method name is not valid UTF-8$/,
      );
    });
  }

  for (const kind of [3, 4, 0x7f, 0xff]) {
    it(`bad payload kind ${kind} in CALL, ITEM and RESULT`, () => {
      const re = new RegExp(`^unknown payload kind ${kind}$`);
      rejects(raw(FrameType.CALL, 1, 0, u32(1), u32(100), [1], "m", [kind], "x"), re);
      rejects(raw(FrameType.ITEM, 1, 0, u32(1), [kind]), re);
      rejects(raw(FrameType.RESULT, 1, 0, u32(1), [0], [kind], "x"), re);
    });
  }

  it("payload of kind NONE with bytes in CALL, ITEM and RESULT", () => {
    const re = /^payload of kind NONE has bytes$/;
    rejects(raw(FrameType.CALL, 1, 0, u32(1), u32(100), [1], "m", [0], [0]), re);
    rejects(raw(FrameType.ITEM, 1, 0, u32(1), [0], "null"), re);
    rejects(raw(FrameType.RESULT, 1, 0, u32(1), [0], [0], [1, 2, 3]), re);
  });

  for (const status of [2, 3, 0xff]) {
    it(`RESULT with status ${status}`, () => {
      rejects(
        raw(FrameType.RESULT, 1, 0, u32(1), [status], [0]),
        new RegExp(`^RESULT status must be 0 \\(ok\\) or 1 \\(error\\), got ${status}$`),
      );
    });
  }

  describe("JSON bodies", () => {
    const bodies: [string, number][] = [
      ["HELLO", FrameType.HELLO],
      ["WELCOME", FrameType.WELCOME],
      ["CLOSE", FrameType.CLOSE],
    ];
    for (const [name, type] of bodies) {
      for (const [label, text] of [
        ["empty", ""],
        ["truncated", `{"role":"agent"`],
        ["trailing garbage", "{} x"],
        ["single quotes", "{'a':1}"],
        ["leading BOM", "\ufeff{}"],
      ] as const) {
        it(`${name} body that is not JSON (${label})`, () => {
          rejects(raw(type, 0, 0, text), new RegExp(`^${name} body is not valid UTF-8 JSON: `));
        });
      }
      it(`${name} body that is not UTF-8`, () => {
        rejects(
          raw(type, 0, 0, [0x7b, 0x22, 0xff, 0x22, 0x7d]),
          new RegExp(`^${name} body is not valid UTF-8 JSON: `),
        );
      });
      for (const text of ["[]", "null", "1", `"x"`, "true", `[{"role":"agent"}]`]) {
        it(`${name} body ${text} is not an object`, () => {
          rejects(raw(type, 0, 0, text), new RegExp(`^${name} body must be a JSON object$`));
        });
      }
    }
    it("RESULT error body that is not JSON or not an object", () => {
      rejects(resultError("{", true), /^RESULT\.error body is not valid UTF-8 JSON: /);
      rejects(resultError("", true), /^RESULT\.error body is not valid UTF-8 JSON: /);
      rejects(resultError([]), /^RESULT\.error body must be a JSON object$/);
      rejects(resultError("oops"), /^RESULT\.error body must be a JSON object$/);
    });
  });

  describe("HELLO fields", () => {
    it("accepts the reference body", () => {
      const f = decodeFrame(jsonFrame(FrameType.HELLO, HELLO_OK));
      assert.deepEqual(f, { type: FrameType.HELLO, seq: 0, ack: 0, hello: HELLO_OK });
    });
    for (const role of ["admin", "Agent", "", 1, null, undefined]) {
      it(`role ${JSON.stringify(role) ?? "missing"}`, () => {
        rejects(
          jsonFrame(FrameType.HELLO, { ...HELLO_OK, role }),
          /^HELLO\.role must be "agent" or "operator"$/,
        );
      });
    }
    it("name missing or not a string", () => {
      rejects(jsonFrame(FrameType.HELLO, without(HELLO_OK, "name")), /^HELLO\.name must be a string$/);
      rejects(jsonFrame(FrameType.HELLO, { ...HELLO_OK, name: 42 }), /^HELLO\.name must be a string$/);
    });
    for (const name of ["", "-edge", ".edge", "edge 01", "edge/01", "édge", "a".repeat(129), "edge\n"]) {
      it(`bad name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 10)}…(${name.length})` : name)}`, () => {
        rejects(
          jsonFrame(FrameType.HELLO, { ...HELLO_OK, name }),
          /^HELLO name ".*" is invalid: 1–128 of letters, digits and \. _ - : @, starting with a letter or digit$/,
        );
      });
    }
    it("accepts names at the limits", () => {
      for (const name of ["a", "0", "a".repeat(128), "edge-01.eu_west:3@x"]) {
        const f = decodeFrame(jsonFrame(FrameType.HELLO, { ...HELLO_OK, name }));
        assert.equal(f.type === FrameType.HELLO && f.hello.name, name);
      }
    });
    it("65 labels are too many; 64 are accepted", () => {
      const labels = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
      rejects(
        jsonFrame(FrameType.HELLO, { ...HELLO_OK, labels: labels(65) }),
        /^HELLO too many labels: 65 > 64$/,
      );
      const f = decodeFrame(jsonFrame(FrameType.HELLO, { ...HELLO_OK, labels: labels(64) }));
      assert.equal(f.type === FrameType.HELLO && Object.keys(f.hello.labels).length, 64);
    });
    it("labels that are not an object (null included: only a missing field means {})", () => {
      for (const labels of [[], "zone=eu", 3, true, null]) {
        rejects(jsonFrame(FrameType.HELLO, { ...HELLO_OK, labels }), /^HELLO labels must be an object$/);
      }
    });
    for (const key of ["", "_x", "-x", "a b", "zone=", "é", "k".repeat(64), "__proto__"]) {
      it(`bad label key ${JSON.stringify(key.length > 20 ? `${key.slice(0, 5)}…(${key.length})` : key)}`, () => {
        const body = `{"role":"agent","name":"edge-01","labels":{${JSON.stringify(key)}:"v"},"version":"1"}`;
        rejects(
          raw(FrameType.HELLO, 0, 0, body),
          /^HELLO label key ".*" is invalid: 1–63 of letters, digits and \. _ - \/, starting with a letter or digit$/,
        );
      });
    }
    it("accepts label keys and values at the limits", () => {
      const labels = { ["k".repeat(63)]: "v".repeat(256), "a.b/c_d-e": "" };
      const f = decodeFrame(jsonFrame(FrameType.HELLO, { ...HELLO_OK, labels }));
      assert.deepEqual(f.type === FrameType.HELLO && f.hello.labels, labels);
    });
    it("label values that are not strings", () => {
      for (const v of [1, null, true, ["eu"], { a: "b" }]) {
        rejects(
          jsonFrame(FrameType.HELLO, { ...HELLO_OK, labels: { zone: v } }),
          /^HELLO label zone must have a string value$/,
        );
      }
    });
    it("label value longer than 256 characters", () => {
      rejects(
        jsonFrame(FrameType.HELLO, { ...HELLO_OK, labels: { zone: "v".repeat(257) } }),
        /^HELLO label zone value longer than 256 characters$/,
      );
    });
    it("version missing, not a string, or longer than 64 characters", () => {
      rejects(jsonFrame(FrameType.HELLO, without(HELLO_OK, "version")), /^HELLO\.version must be a string$/);
      rejects(jsonFrame(FrameType.HELLO, { ...HELLO_OK, version: 1 }), /^HELLO\.version must be a string$/);
      rejects(
        jsonFrame(FrameType.HELLO, { ...HELLO_OK, version: "1".repeat(65) }),
        /^HELLO\.version longer than 64 characters$/,
      );
      const f = decodeFrame(jsonFrame(FrameType.HELLO, { ...HELLO_OK, version: "1".repeat(64) }));
      assert.equal(f.type === FrameType.HELLO && f.hello.version.length, 64);
    });
    it("bad token: empty, longer than 128 characters, or not a string", () => {
      for (const token of ["", "t".repeat(129)]) {
        rejects(
          jsonFrame(FrameType.HELLO, { ...HELLO_OK, token }),
          /^HELLO\.token must be 1–128 characters$/,
        );
      }
      for (const token of [5, null, false, {}]) {
        rejects(jsonFrame(FrameType.HELLO, { ...HELLO_OK, token }), /^HELLO\.token must be a string$/);
      }
      const f = decodeFrame(jsonFrame(FrameType.HELLO, { ...HELLO_OK, token: "t".repeat(128) }));
      assert.equal(f.type === FrameType.HELLO && f.hello.token, "t".repeat(128));
    });
    it("ignores unknown fields (forward compatibility)", () => {
      const f = decodeFrame(jsonFrame(FrameType.HELLO, { ...HELLO_OK, future: { x: 1 } }));
      assert.deepEqual(f.type === FrameType.HELLO && f.hello, HELLO_OK);
    });
  });

  describe("WELCOME fields", () => {
    it("accepts the reference body", () => {
      const f = decodeFrame(jsonFrame(FrameType.WELCOME, WELCOME_OK));
      assert.deepEqual(f, { type: FrameType.WELCOME, seq: 0, ack: 0, welcome: WELCOME_OK });
    });
    for (const key of ["sessionId", "token"] as const) {
      it(`${key} missing or not a string`, () => {
        const re = new RegExp(`^WELCOME\\.${key} must be a string$`);
        rejects(jsonFrame(FrameType.WELCOME, without(WELCOME_OK, key)), re);
        rejects(jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, [key]: 7 }), re);
      });
    }
    for (const key of ["resumed", "expired"] as const) {
      it(`${key} missing or not a boolean`, () => {
        const re = new RegExp(`^WELCOME\\.${key} must be a boolean$`);
        rejects(jsonFrame(FrameType.WELCOME, without(WELCOME_OK, key)), re);
        for (const v of ["true", 1, null])
          rejects(jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, [key]: v }), re);
      });
    }
    for (const key of ["replaying", "heartbeatIntervalMs", "resumeWindowMs"] as const) {
      it(`${key} missing, negative, fractional, unsafe or not a number`, () => {
        const re = new RegExp(`^WELCOME\\.${key} must be a non-negative integer$`);
        rejects(jsonFrame(FrameType.WELCOME, without(WELCOME_OK, key)), re);
        for (const v of [-1, 1.5, "3", null, 2 ** 53]) {
          rejects(jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, [key]: v }), re);
        }
      });
    }
    it("server missing, not an object, or with bad fields", () => {
      rejects(
        jsonFrame(FrameType.WELCOME, without(WELCOME_OK, "server")),
        /^WELCOME\.server must be an object$/,
      );
      rejects(
        jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, server: "muster" }),
        /^WELCOME\.server must be an object$/,
      );
      rejects(
        jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, server: null }),
        /^WELCOME\.server must be an object$/,
      );
      rejects(
        jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, server: { version: "1" } }),
        /^WELCOME\.server\.name must be a string$/,
      );
      rejects(
        jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, server: { name: "m", version: 1 } }),
        /^WELCOME\.server\.version must be a string$/,
      );
    });
  });

  describe("WELCOME servers (optional; malformed: dropped, never fatal)", () => {
    const L = WELCOME_SERVERS_LIMITS;
    const CLUSTER: WelcomeServers = [
      { name: "a", urls: ["tcp://10.0.0.1:33076", "ws://10.0.0.1:33075"], load: 3, state: "ready" },
      { name: "b", urls: ["tcp://10.0.0.2:33076"], load: 0, state: "draining" },
      { name: "c", urls: ["wss://c.example:33075/"] },
    ];
    /** Decodes a WELCOME whose `servers` is `servers`; returns it and what onDropped was told. */
    function decodeServers(servers: unknown): { welcome: WelcomeBody; dropped: string[] } {
      const dropped: string[] = [];
      const f = decodeFrame(jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, servers }), {
        onDropped: (m) => dropped.push(m),
      });
      assert.equal(f.type, FrameType.WELCOME);
      return { welcome: (f as Frame & { type: typeof FrameType.WELCOME }).welcome, dropped };
    }
    /** `servers` must be dropped, the rest of the WELCOME kept, with a reason matching `why`. */
    function dropped(servers: unknown, why: RegExp): void {
      const r = decodeServers(servers);
      assert.deepEqual(r.welcome, WELCOME_OK, "the WELCOME without servers");
      assert.equal(r.dropped.length, 1, "one warning");
      assert.match(r.dropped[0]!, /^WELCOME\.servers ignored: /);
      assert.match(r.dropped[0]!, why);
      // Without a hook: the same result, silently.
      const f = decodeFrame(jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, servers }));
      assert.deepEqual(f.type === FrameType.WELCOME && f.welcome, WELCOME_OK);
    }

    it("round trip: encodeFrame → decodeFrame keeps the list, loads and states", () => {
      const frame: Frame = {
        type: FrameType.WELCOME,
        seq: 0,
        ack: 4,
        welcome: { ...WELCOME_OK, servers: CLUSTER },
      };
      assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
      const empty: Frame = {
        type: FrameType.WELCOME,
        seq: 0,
        ack: 0,
        welcome: { ...WELCOME_OK, servers: [] },
      };
      assert.deepEqual(decodeFrame(encodeFrame(empty)), empty, "an empty list is a list");
    });

    it("CLOSE carries the same list under the same rules: kept when valid, dropped (never fatal) when not", () => {
      const close: Frame = {
        type: FrameType.CLOSE,
        seq: 0,
        ack: 2,
        close: { code: "moved", message: "draining", servers: CLUSTER },
      };
      assert.deepEqual(decodeFrame(encodeFrame(close)), close);
      const told: string[] = [];
      const bad = decodeFrame(
        jsonFrame(FrameType.CLOSE, { code: "moved", message: "m", servers: [{ name: "", urls: [] }] }),
        { onDropped: (m) => told.push(m) },
      );
      assert.deepEqual(bad.type === FrameType.CLOSE && bad.close, { code: "moved", message: "m" });
      assert.equal(told.length, 1);
      assert.match(told[0]!, /^CLOSE\.servers ignored: servers\[0\]\.name/);
      const tooMany = decodeFrame(
        jsonFrame(FrameType.CLOSE, {
          code: "shutdown",
          message: "m",
          servers: Array.from({ length: L.serversMax + 1 }, (_, i) => ({
            name: `s${i}`,
            urls: ["tcp://h:1"],
          })),
        }),
      );
      assert.ok(tooMany.type === FrameType.CLOSE && !("servers" in tooMany.close));
    });

    it("absent: the WELCOME of a server outside a cluster has no servers, and none is made up", () => {
      const f = decodeFrame(jsonFrame(FrameType.WELCOME, WELCOME_OK));
      assert.ok(f.type === FrameType.WELCOME && !("servers" in f.welcome));
      assert.ok(
        !encodeFrame({ type: FrameType.WELCOME, seq: 0, ack: 0, welcome: WELCOME_OK }).includes("servers"),
      );
    });

    it("an old peer reads the new WELCOME: servers is only one more field to ignore", () => {
      // What a decoder of before this field did with it: unknown fields are ignored (§6).
      const f = decodeFrame(jsonFrame(FrameType.WELCOME, { ...WELCOME_OK, servers: CLUSTER, future: [1] }));
      assert.ok(f.type === FrameType.WELCOME);
      const { servers, ...rest } = f.welcome;
      assert.deepEqual(rest, WELCOME_OK);
      assert.deepEqual(servers, CLUSTER);
    });

    it("entries: unknown fields ignored; an unknown state skips that entry; the copy holds own fields only", () => {
      const r = decodeServers([
        { name: "a", urls: ["tcp://h:1"], weight: 9, zone: "eu" },
        { name: "x", urls: ["tcp://h:2"], state: "evicting" },
        JSON.parse(`{"name":"p","urls":["tcp://h:3"],"__proto__":{"load":-1,"polluted":true}}`),
      ]);
      assert.deepEqual(r.dropped, []);
      assert.deepEqual(r.welcome.servers, [
        { name: "a", urls: ["tcp://h:1"] },
        { name: "p", urls: ["tcp://h:3"] },
      ]);
      assert.equal(Object.getPrototypeOf(r.welcome.servers![1]), Object.prototype);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it("at the limits: 64 servers of 8 URLs of 512 characters, names of 256", () => {
      const url = `tcp://${"h".repeat(L.urlMaxChars - 11)}:1234`;
      assert.equal(url.length, L.urlMaxChars);
      const big = Array.from({ length: L.serversMax }, (_, i) => ({
        name: `${i}`.padEnd(L.nameMaxChars, "n"),
        urls: Array.from({ length: L.urlsMax }, () => url),
        load: i,
      }));
      const r = decodeServers(big);
      assert.deepEqual(r.dropped, []);
      assert.deepEqual(r.welcome.servers, big);
    });

    it("hostile or broken: the whole field is ignored with a reason", () => {
      const url = "tcp://h:1";
      dropped(null, /servers must be an array$/);
      dropped({ a: { urls: [url] } }, /servers must be an array$/);
      dropped("tcp://h:1", /servers must be an array$/);
      dropped(
        Array.from({ length: L.serversMax + 1 }, (_, i) => ({ name: `s${i}`, urls: [url] })),
        /more than 64 servers \(65\)$/,
      );
      dropped([null], /servers\[0\] must be an object$/);
      dropped([{ name: "a", urls: [url] }, [url]], /servers\[1\] must be an object$/);
      for (const name of [undefined, "", "n".repeat(L.nameMaxChars + 1), 7, null])
        dropped([{ name, urls: [url] }], /servers\[0\]\.name must be a string of 1–256 characters$/);
      for (const urls of [undefined, [], url, Array.from({ length: L.urlsMax + 1 }, () => url), null])
        dropped([{ name: "a", urls }], /servers\[0\]\.urls must be an array of 1–8 URLs$/);
      for (const u of ["", "u".repeat(L.urlMaxChars + 1), 5, null, { href: url }])
        dropped(
          [{ name: "a", urls: [url, u] }],
          /servers\[0\]\.urls\[1\] must be a string of 1–512 characters$/,
        );
      for (const load of [-1, "3", null, true, -0.5])
        dropped([{ name: "a", urls: [url], load }], /servers\[0\]\.load must be a non-negative number$/);
      for (const state of [1, null, ["ready"]])
        dropped([{ name: "a", urls: [url], state }], /servers\[0\]\.state must be a string$/);
    });

    it("a huge load (1e308) is a number like any other; the reasons quote nothing the peer sent", () => {
      assert.deepEqual(readWelcomeServers([{ name: "a", urls: ["x"], load: 1e308 }]), {
        servers: [{ name: "a", urls: ["x"], load: 1e308 }],
      });
      const r = readWelcomeServers([{ name: "\u001b[31mevil\n", urls: ["x"], load: "\n\u2028" }]);
      assert.ok("error" in r);
      for (const bad of ["evil", "\n", "\u2028", "\u001b"]) assert.ok(!r.error.includes(bad), r.error);
    });
  });

  describe("CLOSE fields", () => {
    it("accepts every close code, with and without retryAfterMs", () => {
      for (const code of Object.values(CloseCode)) {
        const body = { code, message: "m" };
        assert.deepEqual(decodeFrame(jsonFrame(FrameType.CLOSE, body)), {
          type: FrameType.CLOSE,
          seq: 0,
          ack: 0,
          close: body,
        });
        const withRetry = decodeFrame(jsonFrame(FrameType.CLOSE, { ...body, retryAfterMs: 250 }));
        assert.equal(withRetry.type === FrameType.CLOSE && withRetry.close.retryAfterMs, 250);
      }
    });
    for (const code of ["bogus", "NORMAL", "", "replaced "]) {
      it(`unknown code ${JSON.stringify(code)}`, () => {
        rejects(
          jsonFrame(FrameType.CLOSE, { ...CLOSE_OK, code }),
          new RegExp(`^CLOSE\\.code ${JSON.stringify(code)} is unknown$`),
        );
      });
    }
    it("code or message missing or not a string; retryAfterMs not a count", () => {
      rejects(jsonFrame(FrameType.CLOSE, without(CLOSE_OK, "code")), /^CLOSE\.code must be a string$/);
      rejects(jsonFrame(FrameType.CLOSE, { ...CLOSE_OK, code: 1 }), /^CLOSE\.code must be a string$/);
      rejects(jsonFrame(FrameType.CLOSE, without(CLOSE_OK, "message")), /^CLOSE\.message must be a string$/);
      rejects(
        jsonFrame(FrameType.CLOSE, { ...CLOSE_OK, message: null }),
        /^CLOSE\.message must be a string$/,
      );
      for (const retryAfterMs of [-1, 0.5, "10", null]) {
        rejects(
          jsonFrame(FrameType.CLOSE, { ...CLOSE_OK, retryAfterMs }),
          /^CLOSE\.retryAfterMs must be a non-negative integer$/,
        );
      }
    });
  });

  describe("RESULT error fields", () => {
    it("code or message missing or not a string", () => {
      rejects(resultError({ message: "m" }), /^RESULT\.error\.code must be a string$/);
      rejects(resultError({ code: 3, message: "m" }), /^RESULT\.error\.code must be a string$/);
      rejects(resultError({ code: "INTERNAL" }), /^RESULT\.error\.message must be a string$/);
      rejects(resultError({ code: "INTERNAL", message: ["m"] }), /^RESULT\.error\.message must be a string$/);
    });
    it("an unknown error code becomes UNKNOWN; details are kept", () => {
      const f = decodeFrame(
        resultError({ code: "TEAPOT", message: "short and stout", details: { cups: 2 } }),
      );
      assert.deepEqual(f, {
        type: FrameType.RESULT,
        seq: 1,
        ack: 0,
        id: 1,
        error: { code: ErrorCode.UNKNOWN, message: "short and stout", details: { cups: 2 } },
      });
    });
  });
});

// ---------------------------------------------------------------------------------------
// Encoder arguments

describe("encodeFrame / encodeCall arguments", () => {
  const invalid = (message: RegExp) => isMusterError(ErrorCode.INVALID_ARGUMENT, message);

  it("seq and ack outside 0..2^48−1 → INVALID_ARGUMENT", () => {
    for (const [seq, ack] of [
      [-1, 0],
      [MAX_SEQ + 1, 0],
      [1.5, 0],
      [Number.NaN, 0],
      [0, -1],
      [0, MAX_SEQ + 1],
      [0, 0.5],
    ]) {
      assert.throws(
        () => encodeFrame({ type: FrameType.ACK, seq: seq!, ack: ack! }),
        invalid(/^seq\/ack out of range: /),
      );
    }
  });

  it("call ids outside u32 → INVALID_ARGUMENT", () => {
    const payload = encodeValue(undefined);
    for (const id of [-1, 2 ** 32, 1.5, Number.NaN]) {
      const re = invalid(new RegExp(`^call id out of range \\(u32\\): ${id}$`));
      assert.throws(() => encodeFrame({ type: FrameType.CANCEL, seq: 1, ack: 0, id }), re);
      assert.throws(() => encodeFrame({ type: FrameType.ITEM, seq: 1, ack: 0, id, payload }), re);
      assert.throws(() => encodeFrame({ type: FrameType.RESULT, seq: 1, ack: 0, id, payload }), re);
      assert.throws(() => encodeCall(1, 0, id, 100, "m", payload), re);
    }
  });

  it("method names of 0 or more than 255 UTF-8 bytes → INVALID_ARGUMENT; 255 is fine", () => {
    const payload = encodeValue(undefined);
    assert.throws(
      () => encodeCall(1, 0, 1, 100, "", payload),
      invalid(/^method name must be 1–255 bytes, got 0$/),
    );
    assert.throws(
      () => encodeCall(1, 0, 1, 100, "a".repeat(256), payload),
      invalid(/^method name must be 1–255 bytes, got 256$/),
    );
    // 128 × "é" is 128 characters but 256 bytes
    assert.throws(
      () => encodeCall(1, 0, 1, 100, "é".repeat(128), payload),
      invalid(/^method name must be 1–255 bytes, got 256$/),
    );
    const method = "é".repeat(127) + "a";
    const f = decodeFrame(encodeCall(1, 0, 1, 100, method, payload));
    assert.equal(f.type === FrameType.CALL && f.method, method);
  });

  it("encodeCall clamps and rounds the timeout into u32", () => {
    const payload = encodeValue(undefined);
    for (const [given, sent] of [
      [-5, 0],
      [0, 0],
      [1.4, 1],
      [1.6, 2],
      [2 ** 32 - 1, 2 ** 32 - 1],
      [2 ** 40, 2 ** 32 - 1],
      [Number.POSITIVE_INFINITY, 2 ** 32 - 1],
    ] as const) {
      const f = decodeFrame(encodeCall(1, 0, 1, given, "m", payload));
      assert.equal(f.type === FrameType.CALL && f.timeoutMs, sent, `timeout ${given}`);
    }
  });

  it("encodeCall and encodeFrame produce the same bytes for a CALL", () => {
    const payload = encodeValue({ n: 1 });
    assert.equal(encodeCall(1, 0, 1, 10000, "sys.ping", payload).toString("hex"), EXPECTED.CALL);
  });

  it("method names keep a leading U+FEFF and other unicode exactly", () => {
    for (const method of ["\ufeffsys.ping", "ping\u0000", "日本.語", "🚀.launch"]) {
      const f = decodeFrame(encodeCall(1, 0, 1, 100, method, encodeValue(undefined)));
      assert.equal(f.type === FrameType.CALL && f.method, method);
    }
  });
});

// ---------------------------------------------------------------------------------------
// withAck

describe("withAck", () => {
  it("returns a copy with only the ack field changed", () => {
    const original = Buffer.from(EXPECTED["RESULT ok"]!, "hex");
    const before = Buffer.from(original);
    for (const ack of [0, 1, 0x123456789a, MAX_SEQ]) {
      const copy = withAck(original, ack);
      assert.deepEqual(original, before, "input must be left unchanged");
      assert.equal(copy.length, original.length);
      assert.equal(copy.readUIntBE(8, 6), ack);
      assert.deepEqual(copy.subarray(0, 8), original.subarray(0, 8));
      assert.deepEqual(copy.subarray(14), original.subarray(14));
      const expected = toPlain(decodeFrame(original));
      assert.deepEqual(toPlain(decodeFrame(copy)), { ...expected, ack });
      copy.fill(0xee);
      assert.deepEqual(original, before, "the copy must not share memory with the input");
    }
  });

  it("works on a plain Uint8Array and on every golden frame", () => {
    for (const v of golden) {
      const bytes = new Uint8Array(Buffer.from(v.hex, "hex"));
      const copy = withAck(bytes, 42);
      assert.ok(Buffer.isBuffer(copy));
      assert.deepEqual(toPlain(decodeFrame(copy)), { ...v.frame, ack: 42 }, v.name);
      assert.equal(Buffer.from(bytes).toString("hex"), v.hex);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Values

describe("encodeValue / decodeValue", () => {
  it("undefined is NONE with no bytes", () => {
    const p = encodeValue(undefined);
    assert.equal(p.kind, PayloadKind.NONE);
    assert.equal(p.bytes.length, 0);
    assert.equal(decodeValue(p), undefined);
  });

  it("values JSON cannot represent at the top level (functions, symbols) become NONE", () => {
    assert.equal(encodeValue(() => 1).kind, PayloadKind.NONE);
    assert.equal(encodeValue(Symbol("s")).kind, PayloadKind.NONE);
  });

  for (const [label, value, text] of [
    ["null", null, "null"],
    ["zero", 0, "0"],
    ["a negative fraction", -1.5, "-1.5"],
    ["a large number", 1e300, "1e+300"],
    ["a largest safe integer", Number.MAX_SAFE_INTEGER, "9007199254740991"],
    ["true", true, "true"],
    ["an empty string", "", `""`],
    ["a unicode string", "héllo 🌍 日本 \u0000\n\u2028", `"héllo 🌍 日本 \\u0000\\n\u2028"`],
    ["an array", [1, "two", [3]], `[1,"two",[3]]`],
    [
      "a nested object",
      { a: { b: { c: [null, { d: "e" }] } }, n: 1 },
      `{"a":{"b":{"c":[null,{"d":"e"}]}},"n":1}`,
    ],
  ] as const) {
    it(`round-trips ${label} as JSON`, () => {
      const p = encodeValue(value);
      assert.equal(p.kind, PayloadKind.JSON);
      assert.equal(Buffer.from(p.bytes).toString("utf8"), text);
      assert.deepEqual(decodeValue(p), value);
    });
  }

  it("JSON loses what JSON loses: -0 → 0, NaN → null, undefined members dropped", () => {
    assert.ok(Object.is(decodeValue(encodeValue(-0)), 0));
    assert.equal(decodeValue(encodeValue(Number.NaN)), null);
    assert.deepEqual(decodeValue(encodeValue({ a: undefined, b: 1 })), { b: 1 });
  });

  it("bytes stay bytes (BYTES), without a copy", () => {
    for (const bytes of [new Uint8Array([0, 1, 2, 255]), new Uint8Array(0), Buffer.from("hi")]) {
      const p = encodeValue(bytes);
      assert.equal(p.kind, PayloadKind.BYTES);
      assert.equal(p.bytes, bytes);
      assert.equal(decodeValue(p), bytes);
    }
  });

  it("a value round-trips through a whole frame", () => {
    const value = { list: [1, 2, 3], text: "ü", nested: { ok: true } };
    const f = decodeFrame(
      encodeFrame({ type: FrameType.ITEM, seq: 9, ack: 0, id: 4, payload: encodeValue(value) }),
    );
    assert.ok(f.type === FrameType.ITEM);
    assert.deepEqual(decodeValue(f.payload), value);
  });

  it("invalid JSON or invalid UTF-8 → INVALID_ARGUMENT", () => {
    const bad = (text: string | number[]) => ({
      kind: PayloadKind.JSON,
      bytes: typeof text === "string" ? Buffer.from(text) : Buffer.from(text),
    });
    const re = isMusterError(ErrorCode.INVALID_ARGUMENT, /^payload is not valid UTF-8 JSON: /);
    for (const p of [bad("{"), bad(""), bad("undefined"), bad("{'a':1}"), bad([0x22, 0xff, 0x22])]) {
      assert.throws(() => decodeValue(p), re);
    }
  });

  it("an unknown payload kind → INVALID_ARGUMENT", () => {
    assert.throws(
      () => decodeValue({ kind: 9, bytes: new Uint8Array(0) } as unknown as Payload),
      isMusterError(ErrorCode.INVALID_ARGUMENT, /^unknown payload kind 9$/),
    );
  });

  it("a BigInt, a circular value or a throwing toJSON → INVALID_ARGUMENT", () => {
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    const throwing = {
      toJSON() {
        throw new Error("nope");
      },
    };
    for (const value of [10n, { n: 1n }, circular, [circular], throwing]) {
      assert.throws(
        () => encodeValue(value),
        (err: unknown) => {
          isMusterError(ErrorCode.INVALID_ARGUMENT, /^value cannot be encoded as JSON: /)(err);
          assert.ok((err as MusterError).cause instanceof Error, "the JSON error is kept as the cause");
          return true;
        },
      );
    }
  });
});

// ---------------------------------------------------------------------------------------
// Hostile input limits

/** JSON text of `inner` wrapped in `depth` arrays (`[[…]]`), or objects (`{"a":{"a":…}}`). */
function nested(depth: number, shape: "array" | "object", inner = "1"): string {
  return shape === "array"
    ? "[".repeat(depth) + inner + "]".repeat(depth)
    : '{"a":'.repeat(depth) + inner + "}".repeat(depth);
}

function jsonPayload(text: string): Payload {
  return { kind: PayloadKind.JSON, bytes: Buffer.from(text, "utf8") };
}

describe("hostile input limits", () => {
  describe(`JSON nesting (DEFAULTS.maxJsonDepth = ${DEFAULTS.maxJsonDepth})`, () => {
    it("a payload nested 100,000 deep is refused with INVALID_ARGUMENT, not a RangeError", () => {
      for (const shape of ["array", "object"] as const) {
        assert.throws(
          () => decodeValue(jsonPayload(nested(100_000, shape))),
          isMusterError(ErrorCode.INVALID_ARGUMENT, /^payload is nested deeper than 1000 levels$/),
        );
      }
    });

    it("exactly maxJsonDepth levels are accepted and re-encode; one more is refused", () => {
      for (const shape of ["array", "object"] as const) {
        const value = decodeValue(jsonPayload(nested(DEFAULTS.maxJsonDepth, shape)));
        assert.equal(Buffer.from(encodeValue(value).bytes).toString(), nested(DEFAULTS.maxJsonDepth, shape));
        assert.throws(
          () => decodeValue(jsonPayload(nested(DEFAULTS.maxJsonDepth + 1, shape))),
          isMusterError(ErrorCode.INVALID_ARGUMENT, /^payload is nested deeper than 1000 levels$/),
        );
      }
    });

    it("deep nesting anywhere in the value counts, not only at the start", () => {
      const text = `{"list":[1,2,{"ok":true}],"deep":${nested(DEFAULTS.maxJsonDepth, "array")}}`;
      assert.throws(
        () => decodeValue(jsonPayload(text)),
        isMusterError(ErrorCode.INVALID_ARGUMENT, /nested deeper/),
      );
      const wide = `[${Array.from({ length: 2000 }, () => "[[1]]").join(",")}]`; // long but 3 deep
      assert.equal((decodeValue(jsonPayload(wide)) as unknown[]).length, 2000);
    });

    it("the limit is configurable per call", () => {
      const p = jsonPayload("[[[1]]]");
      assert.deepEqual(decodeValue(p, { maxJsonDepth: 3 }), [[[1]]]);
      assert.throws(
        () => decodeValue(p, { maxJsonDepth: 2 }),
        isMusterError(ErrorCode.INVALID_ARGUMENT, /^payload is nested deeper than 2 levels$/),
      );
      assert.throws(() => decodeValue(jsonPayload("[]"), { maxJsonDepth: 0 }), /nested deeper than 0 levels/);
      assert.equal(decodeValue(jsonPayload("7"), { maxJsonDepth: 0 }), 7);
    });

    it("a limit too high for the stack still refuses, as INVALID_ARGUMENT", () => {
      assert.throws(
        () => decodeValue(jsonPayload(nested(100_000, "array")), { maxJsonDepth: 90_000 }),
        isMusterError(
          ErrorCode.INVALID_ARGUMENT,
          /^payload is nested too deeply to walk \(limit 90000 levels\)$/,
        ),
      );
    });

    it("JSON bodies: RESULT error details, WELCOME, CLOSE and HELLO fields → PROTOCOL_ERROR", () => {
      const deep = nested(100_000, "object");
      rejects(
        resultError(`{"code":"INTERNAL","message":"m","details":${deep}}`, true),
        /^RESULT\.error body is nested deeper than 1000 levels$/,
      );
      rejects(
        raw(FrameType.WELCOME, 0, 0, `{"sessionId":"s","future":${deep}}`),
        /^WELCOME body is nested deeper than 1000 levels$/,
      );
      rejects(raw(FrameType.CLOSE, 0, 0, `{"code":"normal","x":${deep}}`), /^CLOSE body is nested deeper/);
      // 50,000 deep: 100 KB, under the HELLO size limit.
      const hello = `{"role":"agent","name":"a","version":"1","future":${nested(50_000, "array")}}`;
      rejects(raw(FrameType.HELLO, 0, 0, hello), /^HELLO body is nested deeper than 1000 levels$/);
      // The body object is a level: three arrays inside it make four.
      assert.throws(
        () => decodeFrame(raw(FrameType.HELLO, 0, 0, `{"x":${nested(3, "array")}}`), { maxJsonDepth: 3 }),
        isMusterError(ErrorCode.PROTOCOL_ERROR, /^HELLO body is nested deeper than 3 levels$/),
      );
    });

    it("RESULT error details up to the limit decode and re-encode", () => {
      const details = nested(DEFAULTS.maxJsonDepth - 1, "array");
      const bytes = resultError(`{"code":"INTERNAL","message":"m","details":${details}}`, true);
      const frame = decodeFrame(bytes);
      assert.ok(frame.type === FrameType.RESULT && "error" in frame);
      assert.equal(encodeFrame(frame).toString("hex"), bytes.toString("hex"));
    });
  });

  describe(`HELLO size (DEFAULTS.maxHelloBytes = ${DEFAULTS.maxHelloBytes})`, () => {
    /** The longest HELLO the field rules allow: every character of every field escaped. */
    function largestHello(): HelloBody {
      const esc = (n: number) => "\u0001".repeat(n); // JSON.stringify writes 6 bytes for each
      const labels: Record<string, string> = {};
      for (let i = 0; i < NAME_LIMITS.labelsMax; i++) {
        labels[`k${i}`.padEnd(NAME_LIMITS.labelKeyMaxChars, "x")] = esc(NAME_LIMITS.labelValueMaxChars);
      }
      return {
        role: "operator",
        name: "n".repeat(NAME_LIMITS.nameMaxChars),
        labels,
        version: esc(NAME_LIMITS.versionMaxChars),
        token: esc(NAME_LIMITS.tokenMaxChars),
      };
    }

    it("every valid HELLO fits under the limit", () => {
      const hello = largestHello();
      const bytes = encodeFrame({ type: FrameType.HELLO, seq: 0, ack: 0, hello });
      assert.ok(bytes.length - HEADER_BYTES > 100_000, `the largest HELLO is ${bytes.length} bytes`);
      assert.ok(bytes.length - HEADER_BYTES <= DEFAULTS.maxHelloBytes);
      assert.deepEqual(decodeFrame(bytes), { type: FrameType.HELLO, seq: 0, ack: 0, hello });
    });

    it("a larger HELLO body is refused before it is parsed", () => {
      const body = Buffer.alloc(DEFAULTS.maxHelloBytes + 1, 0x20); // not even JSON: never parsed
      rejects(
        raw(FrameType.HELLO, 0, 0, body),
        /^HELLO body of 131073 bytes is over the limit of 131072 bytes$/,
      );
      const padded = Buffer.concat([
        Buffer.from(JSON.stringify(HELLO_OK)),
        Buffer.alloc(DEFAULTS.maxHelloBytes, 0x20),
      ]);
      rejects(raw(FrameType.HELLO, 0, 0, padded), /^HELLO body of \d+ bytes is over the limit/);
      const small = jsonFrame(FrameType.HELLO, HELLO_OK);
      assert.throws(
        () => decodeFrame(small, { maxHelloBytes: 20 }),
        isMusterError(ErrorCode.PROTOCOL_ERROR, /^HELLO body of \d+ bytes is over the limit of 20 bytes$/),
      );
      assert.equal(decodeFrame(small, { maxHelloBytes: small.length - HEADER_BYTES }).type, FrameType.HELLO);
    });
  });

  describe("HELLO fields: each refusal names the field", () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      [
        "role of the wrong type",
        { ...HELLO_OK, role: ["agent"] },
        /^HELLO\.role must be "agent" or "operator"$/,
      ],
      [
        "name over 128 characters",
        { ...HELLO_OK, name: "n".repeat(129) },
        /^HELLO name "n{40}…" is invalid: 1–128/,
      ],
      [
        "version over 64 characters",
        { ...HELLO_OK, version: "v".repeat(65) },
        /^HELLO\.version longer than 64/,
      ],
      ["version of the wrong type", { ...HELLO_OK, version: null }, /^HELLO\.version must be a string$/],
      ["labels null", { ...HELLO_OK, labels: null }, /^HELLO labels must be an object$/],
      [
        "65 labels",
        { ...HELLO_OK, labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, ""])) },
        /^HELLO too many labels: 65 > 64$/,
      ],
      [
        "100,000 labels",
        { ...HELLO_OK, labels: Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, ""])) },
        /^HELLO body of \d+ bytes is over the limit of 131072 bytes$/,
      ],
      [
        "a 64-character label key",
        { ...HELLO_OK, labels: { ["k".repeat(64)]: "" } },
        /^HELLO label key "k{64}" is invalid: 1–63/,
      ],
      [
        "a 257-character label value",
        { ...HELLO_OK, labels: { zone: "v".repeat(257) } },
        /^HELLO label zone value longer than 256/,
      ],
      [
        "a label value of the wrong type",
        { ...HELLO_OK, labels: { zone: 1 } },
        /^HELLO label zone must have a string value$/,
      ],
      [
        "token over 128 characters",
        { ...HELLO_OK, token: "t".repeat(129) },
        /^HELLO\.token must be 1–128 characters$/,
      ],
    ];
    for (const [what, body, message] of cases) {
      it(what, () => rejects(jsonFrame(FrameType.HELLO, body), message));
    }

    it("labels may be left out: the same as {}", () => {
      const f = decodeFrame(jsonFrame(FrameType.HELLO, without(HELLO_OK, "labels")));
      assert.deepEqual(f.type === FrameType.HELLO && f.hello.labels, {});
    });
  });

  describe("messages quoting the peer's text stay on one line", () => {
    const controls = ["\n", "\r", "\u0000", "\u001b[31m", "\u007f", "\u0085", "\u009b", "\u2028", "\u2029"];
    /** No control character, no line separator: what a log line or a terminal would act on. */
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
    const unsafe = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
    function messageOf(bytes: Buffer): string {
      try {
        decodeFrame(bytes);
      } catch (err) {
        assert.ok(err instanceof MusterError);
        return err.rawMessage;
      }
      assert.fail("expected a PROTOCOL_ERROR");
    }
    for (const c of controls) {
      const label = JSON.stringify(c);
      it(`${label} in a name, a label key, a CLOSE code and JSON that does not parse`, () => {
        const messages = [
          messageOf(jsonFrame(FrameType.HELLO, { ...HELLO_OK, name: `edge${c}01` })),
          messageOf(jsonFrame(FrameType.HELLO, { ...HELLO_OK, labels: { [`k${c}`]: "v" } })),
          messageOf(jsonFrame(FrameType.CLOSE, { code: `normal${c}`, message: "m" })),
          messageOf(raw(FrameType.HELLO, 0, 0, `{"role":${c}"agent"}`)),
          messageOf(raw(FrameType.WELCOME, 0, 0, `${c}{}`)),
        ];
        for (const m of messages) assert.doesNotMatch(m, unsafe, JSON.stringify(m));
        assert.match(messages[0]!, /^HELLO name "edge\\(u[0-9a-f]{4}|[nr])(\[31m)?01" is invalid: /);
      });
    }
    it("a payload's JSON error too (INVALID_ARGUMENT)", () => {
      assert.throws(
        () => decodeValue(jsonPayload('{"a":\u0001}')),
        (err: unknown) => {
          isMusterError(ErrorCode.INVALID_ARGUMENT, /^payload is not valid UTF-8 JSON: /)(err);
          assert.doesNotMatch((err as MusterError).rawMessage, unsafe);
          assert.match((err as MusterError).rawMessage, /\\u0001/);
          return true;
        },
      );
    });
  });

  describe("unknown frame types and protocol versions name the culprit", () => {
    it("unknown types, in hex", () => {
      for (const [type, hex] of [
        [0x00, "00"],
        [0x07, "07"],
        [0x17, "17"],
        [0xff, "ff"],
      ] as const) {
        rejects(raw(type, type >= 0x10 ? 1 : 0, 0), new RegExp(`^unknown frame type 0x${hex}$`));
      }
    });
    it("unsupported versions, with the one spoken here", () => {
      for (const version of [0, 2, 255]) {
        const bytes = encodeFrame({ type: FrameType.ACK, seq: 0, ack: 0 });
        bytes[0] = version;
        rejects(bytes, new RegExp(`^unsupported protocol version ${version} \\(this side speaks 1\\)$`));
      }
    });
  });
});

// ---------------------------------------------------------------------------------------
// Properties

const u32Arb = fc.integer({ min: 0, max: 0xffffffff });
const seqArb = fc.integer({ min: 1, max: MAX_SEQ });
const ackArb = fc.integer({ min: 0, max: MAX_SEQ });
const textArb = (maxLength: number) => fc.string({ unit: "binary", maxLength });
const methodArb = fc.string({
  unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz."),
  minLength: 1,
  maxLength: 60,
});
const payloadArb: fc.Arbitrary<Payload> = fc.oneof(
  fc.constant<Payload>({ kind: PayloadKind.NONE, bytes: new Uint8Array(0) }),
  fc.json().map((t): Payload => ({ kind: PayloadKind.JSON, bytes: Buffer.from(t, "utf8") })),
  fc.uint8Array({ maxLength: 64 }).map((b): Payload => ({ kind: PayloadKind.BYTES, bytes: b })),
);

const helloArb: fc.Arbitrary<HelloBody> = fc
  .tuple(
    fc.constantFrom("agent" as const, "operator" as const),
    fc.stringMatching(NAME_PATTERN),
    fc.array(fc.tuple(fc.stringMatching(LABEL_KEY_PATTERN), textArb(100)), { maxLength: 64 }),
    fc.string({ maxLength: 64 }),
    fc.option(fc.string({ minLength: 1, maxLength: 128 }), { nil: undefined }),
  )
  .map(([role, name, entries, version, token]) => {
    const labels: Record<string, string> = {};
    for (const [k, v] of entries) labels[k] = v;
    const hello: HelloBody = { role, name, labels, version };
    if (token !== undefined) hello.token = token;
    return hello;
  });

const countArb = fc.oneof(fc.nat(100_000), fc.maxSafeNat());
const serversArb: fc.Arbitrary<WelcomeServers> = fc.array(
  fc
    .tuple(
      textArb(20).filter((n) => n.length > 0),
      fc.array(
        textArb(60).filter((u) => u.length > 0),
        { minLength: 1, maxLength: WELCOME_SERVERS_LIMITS.urlsMax },
      ),
      fc.option(fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e9, noNaN: true })), { nil: undefined }),
      fc.option(fc.constantFrom("ready" as const, "draining" as const), { nil: undefined }),
    )
    .map(([name, urls, load, state]) => ({
      name,
      urls,
      ...(load !== undefined ? { load: Object.is(load, -0) ? 0 : load } : {}),
      ...(state !== undefined ? { state } : {}),
    })),
  { maxLength: 5 },
);

const welcomeArb: fc.Arbitrary<WelcomeBody> = fc
  .tuple(
    textArb(40),
    textArb(128),
    fc.boolean(),
    fc.boolean(),
    countArb,
    countArb,
    countArb,
    textArb(20),
    textArb(20),
    fc.option(serversArb, { nil: undefined }),
  )
  .map(
    ([
      sessionId,
      token,
      resumed,
      expired,
      replaying,
      heartbeatIntervalMs,
      resumeWindowMs,
      name,
      version,
      servers,
    ]) => ({
      sessionId,
      token,
      resumed,
      expired,
      replaying,
      heartbeatIntervalMs,
      resumeWindowMs,
      server: { name, version },
      ...(servers !== undefined ? { servers } : {}),
    }),
  );

const closeArb: fc.Arbitrary<CloseBody> = fc
  .tuple(fc.constantFrom(...Object.values(CloseCode)), textArb(80), fc.option(countArb, { nil: undefined }))
  .map(([code, message, retryAfterMs]) => {
    const close: CloseBody = { code, message };
    if (retryAfterMs !== undefined) close.retryAfterMs = retryAfterMs;
    return close;
  });

const errorArb: fc.Arbitrary<ErrorBody> = fc
  .tuple(
    fc.constantFrom(...Object.values(ErrorCode)),
    textArb(80),
    fc.option(
      fc.json().map((t) => JSON.parse(t) as unknown),
      { nil: undefined },
    ),
  )
  .map(([code, message, details]) => {
    const body: ErrorBody = { code, message };
    if (details !== undefined) body.details = details;
    return body;
  });

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.tuple(ackArb, helloArb).map(([ack, hello]): Frame => ({ type: FrameType.HELLO, seq: 0, ack, hello })),
  fc
    .tuple(ackArb, welcomeArb)
    .map(([ack, welcome]): Frame => ({ type: FrameType.WELCOME, seq: 0, ack, welcome })),
  fc.tuple(ackArb, fc.double()).map(([ack, time]): Frame => ({ type: FrameType.PING, seq: 0, ack, time })),
  fc.tuple(ackArb, fc.double()).map(([ack, time]): Frame => ({ type: FrameType.PONG, seq: 0, ack, time })),
  ackArb.map((ack): Frame => ({ type: FrameType.ACK, seq: 0, ack })),
  fc.tuple(ackArb, closeArb).map(([ack, close]): Frame => ({ type: FrameType.CLOSE, seq: 0, ack, close })),
  fc.tuple(seqArb, ackArb, u32Arb, u32Arb, methodArb, payloadArb).map(
    ([seq, ack, id, timeoutMs, method, payload]): Frame => ({
      type: FrameType.CALL,
      seq,
      ack,
      id,
      timeoutMs,
      method,
      payload,
    }),
  ),
  fc
    .tuple(seqArb, ackArb, u32Arb, payloadArb)
    .map(([seq, ack, id, payload]): Frame => ({ type: FrameType.ITEM, seq, ack, id, payload })),
  fc
    .tuple(seqArb, ackArb, u32Arb, payloadArb)
    .map(([seq, ack, id, payload]): Frame => ({ type: FrameType.RESULT, seq, ack, id, payload })),
  fc
    .tuple(seqArb, ackArb, u32Arb, errorArb)
    .map(([seq, ack, id, error]): Frame => ({ type: FrameType.RESULT, seq, ack, id, error })),
  fc.tuple(seqArb, ackArb, u32Arb).map(([seq, ack, id]): Frame => ({ type: FrameType.CANCEL, seq, ack, id })),
  fc.tuple(seqArb, ackArb, u32Arb, u32Arb, u32Arb, methodArb, payloadArb).map(
    ([seq, ack, id, timeoutMs, window, method, payload]): Frame => ({
      type: FrameType.OPEN,
      seq,
      ack,
      id,
      timeoutMs,
      window: Math.max(1, window),
      method,
      payload,
    }),
  ),
  fc
    .tuple(seqArb, ackArb, u32Arb, u32Arb)
    .map(([seq, ack, id, bytes]): Frame => ({ type: FrameType.CREDIT, seq, ack, id, bytes })),
  fc
    .tuple(
      seqArb,
      ackArb,
      u32Arb,
      fc.stringMatching(/^[a-z][a-z0-9-]{0,31}$/),
      fc.string({ minLength: 1, maxLength: 256 }),
      fc.option(fc.string({ minLength: 1, maxLength: 256 }), { nil: undefined }),
      fc.option(fc.string({ minLength: 1, maxLength: 256 }), { nil: undefined }),
    )
    .map(([seq, ack, id, role, name, subject, server]): Frame => {
      const origin: CallOrigin = { role, name };
      if (subject !== undefined) origin.subject = subject;
      if (server !== undefined) origin.server = server;
      return { type: FrameType.ORIGIN, seq, ack, id, origin };
    }),
);

/** decodeFrame either returns a frame or throws a PROTOCOL_ERROR MusterError — nothing else. */
function decodeOrProtocolError(bytes: Uint8Array): Frame | undefined {
  try {
    return decodeFrame(bytes);
  } catch (err) {
    if (!(err instanceof MusterError)) throw err;
    assert.equal(err.code, ErrorCode.PROTOCOL_ERROR, err.message);
    return undefined;
  }
}

describe("properties (fast-check)", () => {
  it("encode → decode round-trips every frame type", () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const bytes = encodeFrame(frame);
        assert.equal(bytes[0], 1);
        assert.equal(bytes[1], frame.type);
        assert.deepEqual(toPlain(decodeFrame(bytes)), toPlain(frame));
      }),
      { numRuns: 2000 },
    );
  });

  it("decode → encode gives back the same bytes (the encoding is canonical)", () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const bytes = encodeFrame(frame);
        assert.equal(encodeFrame(decodeFrame(bytes)).toString("hex"), bytes.toString("hex"));
      }),
      { numRuns: 1000 },
    );
  });

  it("every type is generated by the frame arbitrary", () => {
    const seen = new Set(fc.sample(frameArb, 2000).map((f) => f.type));
    assert.deepEqual([...seen].sort(), Object.values(FrameType).sort());
  });

  it("arbitrary bytes: a frame or a PROTOCOL_ERROR, never another exception", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        decodeOrProtocolError(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it("arbitrary bodies behind a valid header: a frame or a PROTOCOL_ERROR", () => {
    const typeArb = fc.constantFrom(...Object.values(FrameType), 0x00, 0x07, 0x0f, 0x17, 0xff);
    const bodyArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.json().map((t) => Buffer.from(t, "utf8")),
      fc
        .tuple(fc.constantFrom(0, 1), fc.json())
        .map(([status, t]) => Buffer.concat([u32(1), Buffer.from([status]), Buffer.from(t)])),
      fc
        .tuple(u32Arb, u32Arb, fc.nat(255), fc.uint8Array({ maxLength: 40 }))
        .map(([id, t, len, rest]) => Buffer.concat([u32(id), u32(t), Buffer.from([len]), rest])),
    );
    fc.assert(
      fc.property(typeArb, fc.boolean(), ackArb, bodyArb, (type, zeroSeq, ack, body) => {
        const bytes = raw(type, zeroSeq ? 0 : 1, ack, body);
        const frame = decodeOrProtocolError(bytes);
        // Binary bodies have one encoding: whatever decodes re-encodes to the same bytes.
        if (
          frame !== undefined &&
          frame.type !== FrameType.HELLO &&
          frame.type !== FrameType.WELCOME &&
          frame.type !== FrameType.CLOSE &&
          !(frame.type === FrameType.RESULT && "error" in frame) &&
          !((frame.type === FrameType.PING || frame.type === FrameType.PONG) && Number.isNaN(frame.time))
        ) {
          assert.equal(encodeFrame(frame).toString("hex"), bytes.toString("hex"));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("mutated golden frames (flip, insert, delete bytes) throw nothing but MusterError", () => {
    const goldenBytes = golden.map((v) => Buffer.from(v.hex, "hex"));
    const mutationArb = fc.oneof(
      fc.record({ op: fc.constant("flip" as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ op: fc.constant("insert" as const), at: fc.nat(), byte: fc.nat(255) }),
      fc.record({ op: fc.constant("delete" as const), at: fc.nat() }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...goldenBytes),
        fc.array(mutationArb, { minLength: 1, maxLength: 8 }),
        (original, mutations) => {
          const bytes = [...original];
          for (const m of mutations) {
            if (m.op === "flip") {
              if (bytes.length > 0) bytes[m.at % bytes.length] ^= m.mask;
            } else if (m.op === "insert") {
              bytes.splice(m.at % (bytes.length + 1), 0, m.byte);
            } else if (bytes.length > 0) {
              bytes.splice(m.at % bytes.length, 1);
            }
          }
          decodeOrProtocolError(Uint8Array.from(bytes));
        },
      ),
      { numRuns: 3000 },
    );
  });
});
