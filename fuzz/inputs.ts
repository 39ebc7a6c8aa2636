// Input generators: seed frames (the golden vectors and frames built with the encoder),
// byte-level mutations, and structured mutations of the JSON bodies and payloads.

import { readFileSync } from "node:fs";
import { ErrorCode } from "../src/errors/codes.js";
import type { ErrorBody } from "../src/errors/muster-error.js";
import { encodeFrame, encodeValue } from "../src/wire/codec.js";
import {
  CloseCode,
  type Frame,
  FrameType,
  HEADER_BYTES,
  type HelloBody,
  MAX_SEQ,
} from "../src/wire/frame.js";
import type { Rng } from "./rng.js";

// ---------------------------------------------------------------------------------------
// Seeds

interface GoldenVector {
  name: string;
  hex: string;
}

const GOLDEN_URL = new URL("../../test/fixtures/golden-frames.json", import.meta.url);

/** The golden frames of test/fixtures/golden-frames.json. */
export function goldenFrames(): Buffer[] {
  const vectors = JSON.parse(readFileSync(GOLDEN_URL, "utf8")) as GoldenVector[];
  return vectors.map((v) => Buffer.from(v.hex, "hex"));
}

const HELLO: HelloBody = {
  role: "agent",
  name: "edge-01",
  labels: { zone: "eu", "app.example/tier": "web" },
  version: "0.1.0",
};

function manyLabels(n: number, keyLength: number, valueLength: number): Record<string, string> {
  const labels: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const key = `k${i}`.padEnd(keyLength, "x");
    labels[key] = "v".repeat(valueLength);
  }
  return labels;
}

/** Frames built with the encoder: every type, at and around the documented limits. */
export function builtFrames(): Buffer[] {
  const frames: Frame[] = [
    { type: FrameType.HELLO, seq: 0, ack: 0, hello: HELLO },
    {
      type: FrameType.HELLO,
      seq: 0,
      ack: 17,
      hello: {
        role: "operator",
        name: "ops@host",
        labels: {},
        version: "9.9.9-rc.1",
        token: "t".repeat(128),
      },
    },
    {
      type: FrameType.HELLO,
      seq: 0,
      ack: MAX_SEQ,
      hello: {
        role: "agent",
        name: "a".repeat(128),
        labels: manyLabels(64, 63, 256),
        version: "v".repeat(64),
      },
    },
    {
      type: FrameType.WELCOME,
      seq: 0,
      ack: 3,
      welcome: {
        sessionId: "s-1",
        token: "tok",
        resumed: true,
        expired: false,
        replaying: 2 ** 53 - 1,
        heartbeatIntervalMs: 5000,
        resumeWindowMs: 30000,
        server: { name: "srv", version: "0.1.0" },
      },
    },
    { type: FrameType.PING, seq: 0, ack: 0, time: Number.NaN },
    { type: FrameType.PING, seq: 0, ack: 1, time: -0 },
    { type: FrameType.PONG, seq: 0, ack: 2, time: Number.POSITIVE_INFINITY },
    { type: FrameType.PONG, seq: 0, ack: 2, time: Number.MAX_VALUE },
    { type: FrameType.ACK, seq: 0, ack: MAX_SEQ },
    { type: FrameType.CLOSE, seq: 0, ack: 0, close: { code: CloseCode.PROTOCOL_ERROR, message: "bad" } },
    {
      type: FrameType.CLOSE,
      seq: 0,
      ack: 0,
      close: { code: CloseCode.SHUTDOWN, message: "bye\u2028", retryAfterMs: 0 },
    },
    {
      type: FrameType.CALL,
      seq: 1,
      ack: 0,
      id: 1,
      timeoutMs: 10_000,
      method: "sys.ping",
      payload: encodeValue({ a: [1, 2, { b: "ü" }], n: null, t: true }),
    },
    {
      type: FrameType.CALL,
      seq: 2,
      ack: 1,
      id: 0xffffffff,
      timeoutMs: 0xffffffff,
      method: "m".repeat(255),
      payload: encodeValue(new Uint8Array([0, 1, 0xfe, 0xff])),
    },
    {
      type: FrameType.CALL,
      seq: MAX_SEQ,
      ack: MAX_SEQ,
      id: 0,
      timeoutMs: 0,
      method: "\ufeffmé∂.𝄞",
      payload: encodeValue(undefined),
    },
    { type: FrameType.ITEM, seq: 3, ack: 0, id: 7, payload: encodeValue("\u2028\u0000\ud83d\ude00") },
    { type: FrameType.ITEM, seq: 4, ack: 0, id: 7, payload: encodeValue([[[[1.5e300, -0.25]]]]) },
    { type: FrameType.RESULT, seq: 5, ack: 2, id: 7, payload: encodeValue(new Uint8Array(0)) },
    { type: FrameType.RESULT, seq: 6, ack: 2, id: 8, payload: encodeValue(12345) },
    {
      type: FrameType.RESULT,
      seq: 7,
      ack: 2,
      id: 9,
      error: { code: ErrorCode.DEADLINE_EXCEEDED, message: "late", details: { after: [1, { ms: 3000 }] } },
    },
    {
      type: FrameType.RESULT,
      seq: 8,
      ack: 2,
      id: 10,
      error: { code: "FUTURE_CODE", message: "" } as unknown as ErrorBody,
    },
    { type: FrameType.CANCEL, seq: 9, ack: 0, id: 0 },
    {
      type: FrameType.OPEN,
      seq: 10,
      ack: 3,
      id: 11,
      timeoutMs: 0,
      window: 262_144,
      method: "logs.tail",
      payload: encodeValue({ from: 42 }),
    },
    {
      type: FrameType.OPEN,
      seq: 11,
      ack: 3,
      id: 0xffffffff,
      timeoutMs: 0xffffffff,
      window: 1,
      method: "s".repeat(255),
      payload: encodeValue(undefined),
    },
    { type: FrameType.CREDIT, seq: 12, ack: 4, id: 11, bytes: 131_072 },
    { type: FrameType.CREDIT, seq: 13, ack: 4, id: 0, bytes: 0xffffffff },
    { type: FrameType.ORIGIN, seq: 14, ack: 4, id: 12, origin: { role: "operator", name: "ann" } },
    {
      type: FrameType.ORIGIN,
      seq: 15,
      ack: 4,
      id: 13,
      origin: { role: "operator", name: "op-1", subject: "ann", server: "s1" },
    },
  ];
  return frames.map(encodeFrame);
}

/** Every seed frame: golden vectors first, then the encoder-built ones. */
export function seedFrames(): Buffer[] {
  return [...goldenFrames(), ...builtFrames()];
}

// ---------------------------------------------------------------------------------------
// Raw frames

/** A frame built byte by byte, without the encoder. */
export function rawFrame(type: number, seq: number, ack: number, body: Uint8Array, version = 1): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  out[0] = version;
  out[1] = type;
  out.writeUIntBE(seq, 2, 6);
  out.writeUIntBE(ack, 8, 6);
  out.set(body, HEADER_BYTES);
  return out;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

// ---------------------------------------------------------------------------------------
// Byte-level mutations

/** Bytes that matter to the format: types, kinds, JSON punctuation, UTF-8 lead bytes. */
const INTERESTING_BYTES = [
  0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x20, 0x22, 0x2c, 0x3a, 0x5b,
  0x5c, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xfe, 0xff,
];

/** Byte sequences that are not valid UTF-8, and a byte order mark. */
export const BAD_UTF8: readonly number[][] = [
  [0x80], // lone continuation byte
  [0xc0, 0x80], // overlong NUL
  [0xe0, 0x80, 0x80], // overlong
  [0xed, 0xa0, 0x80], // UTF-16 surrogate
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xf5],
  [0xff, 0xfe],
  [0xe2, 0x82], // truncated sequence
  [0xef, 0xbb, 0xbf], // BOM (valid UTF-8, but not JSON)
];

/** Extreme values for integer fields of 1, 4 and 6 bytes. */
function extremeInt(rng: Rng, width: number): number {
  const max = 2 ** (8 * width) - 1;
  return rng.pick(
    [0, 1, 2, 13, 14, 15, 127, 128, 255, 256, max, max - 1, Math.floor(max / 2), Math.ceil(max / 2)].filter(
      (n) => n <= max,
    ),
  );
}

/** Where the integer fields are, for every layout: [offset, width]. */
const INT_FIELDS: readonly (readonly [number, number])[] = [
  [0, 1], // version
  [1, 1], // type
  [2, 6], // seq
  [8, 6], // ack
  [14, 4], // id
  [18, 4], // CALL timeoutMs, or RESULT status + kind
  [18, 1], // ITEM kind, RESULT status
  [19, 1], // RESULT ok kind
  [22, 1], // CALL methodLength
];

function writeInt(buf: Buffer, at: number, width: number, value: number): void {
  if (at + width > buf.length) return;
  buf.writeUIntBE(value, at, width);
}

/** Applies one random byte-level mutation; returns a new buffer (the input is not changed). */
export function mutateBytes(rng: Rng, input: Uint8Array, others: readonly Uint8Array[]): Buffer {
  const buf = Buffer.from(input);
  const n = buf.length;
  switch (rng.int(12)) {
    case 0: // bit flip
      if (n > 0) buf[rng.int(n)]! ^= 1 << rng.int(8);
      return buf;
    case 1: // random byte
      if (n > 0) buf[rng.int(n)] = rng.int(256);
      return buf;
    case 2: // interesting byte
      if (n > 0) buf[rng.int(n)] = rng.pick(INTERESTING_BYTES);
      return buf;
    case 3: {
      // insert bytes
      const at = rng.int(n + 1);
      return Buffer.concat([buf.subarray(0, at), rng.bytes(rng.range(1, 16)), buf.subarray(at)]);
    }
    case 4: {
      // delete a range
      if (n === 0) return buf;
      const at = rng.int(n);
      const len = rng.range(1, Math.min(16, n - at));
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + len)]);
    }
    case 5: // truncate
      return buf.subarray(0, rng.int(n + 1));
    case 6: // extend with random or repeated bytes
      return Buffer.concat([buf, rng.chance(0.5) ? rng.bytes(rng.size(64)) : buf.subarray(rng.int(n + 1))]);
    case 7: {
      // integer field tampering
      const [at, width] = rng.pick(INT_FIELDS);
      writeInt(buf, at, width, extremeInt(rng, width));
      return buf;
    }
    case 8: {
      // splice: a head of this input with a tail of another
      const other = rng.pick(others);
      return Buffer.concat([buf.subarray(0, rng.int(n + 1)), other.subarray(rng.int(other.length + 1))]);
    }
    case 9: {
      // invalid UTF-8 (or a BOM) at a random place
      const at = rng.int(n + 1);
      return Buffer.concat([buf.subarray(0, at), Buffer.from(rng.pick(BAD_UTF8)), buf.subarray(at)]);
    }
    case 10: {
      // duplicate a range in place
      if (n === 0) return buf;
      const from = rng.int(n);
      const len = rng.range(1, Math.min(32, n - from));
      const at = rng.int(n + 1);
      return Buffer.concat([buf.subarray(0, at), buf.subarray(from, from + len), buf.subarray(at)]);
    }
    default: {
      // overwrite a 4-byte window with an extreme u32 (a count or length anywhere)
      if (n < 4) return buf;
      buf.writeUInt32BE(extremeInt(rng, 4), rng.int(n - 3));
      return buf;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Structured JSON

/** JSON text written as is (numbers JSON.stringify cannot write, broken escapes, ...). */
class Raw {
  constructor(readonly text: string) {}
}

/** An object as key/value pairs: allows duplicate keys and `__proto__`. */
class Obj {
  constructor(readonly pairs: [string, unknown][]) {}
}

/** `inner` wrapped in `depth` arrays or objects; written without recursion. */
class Nest {
  constructor(
    readonly depth: number,
    readonly shape: "array" | "object" | "mixed",
    readonly inner: unknown,
  ) {}
}

/** Writes a generated value as JSON text. */
export function emit(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Nest) {
    const [open, close] =
      v.shape === "array" ? ["[", "]"] : v.shape === "object" ? ['{"k":', "}"] : ['[{"k":', "}]"];
    const d = v.shape === "mixed" ? Math.ceil(v.depth / 2) : v.depth;
    return open.repeat(d) + emit(v.inner) + close.repeat(d);
  }
  if (v instanceof Obj) return `{${v.pairs.map(([k, x]) => `${JSON.stringify(k)}:${emit(x)}`).join(",")}}`;
  if (Array.isArray(v)) return `[${v.map(emit).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${emit(x)}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

const RAW_NUMBERS = [
  "-0",
  "-1",
  "0.5",
  "1e999",
  "-1e999",
  "1e-999",
  "9007199254740991",
  "9007199254740992",
  "9007199254740993",
  "18446744073709551616",
  "1E2",
  "100e-2",
  "4294967295",
  "4294967296",
  "281474976710655",
  "-9007199254740993",
];
const BAD_TOKENS = ["NaN", "Infinity", "-", "01", "0x10", "1.", ".5", "+1", "tru", "nul", "'x'", "undefined"];

/** Lengths around the documented limits (UTF-16 units). */
const LIMIT_LENGTHS = [0, 1, 62, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000];

function text(rng: Rng, length: number): string {
  switch (rng.int(6)) {
    case 0:
      return "a".repeat(length);
    case 1: // two UTF-16 units per character: the length limits count units
      return "𝄞".repeat(Math.ceil(length / 2)).slice(0, length);
    case 2:
      return "é".repeat(length);
    case 3: {
      let s = "";
      for (let i = 0; i < length; i++) s += String.fromCharCode(rng.int(0x80));
      return s;
    }
    case 4: {
      let s = "";
      for (let i = 0; i < length; i++) s += String.fromCharCode(rng.int(0x10000));
      return s;
    }
    default:
      return "x-1.y_z:@/".repeat(Math.ceil(length / 10)).slice(0, length);
  }
}

/** Depths around the decoder's nesting limit, and far beyond it. */
function depth(rng: Rng): number {
  return rng.weighted([
    [20, rng.range(1, 10)],
    [10, 63],
    [10, 64],
    [10, 65],
    [10, 127],
    [10, 128],
    [10, 129],
    [6, 1000],
    [2, 10_000],
    [0.5, 100_000],
  ]);
}

/** A value to put where a field is expected: wrong types, extreme numbers, long strings, nesting. */
function evil(rng: Rng, level = 0): unknown {
  switch (rng.int(level > 1 ? 9 : 12)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return new Raw(rng.pick(RAW_NUMBERS));
    case 3:
      return rng.pick([0, 1, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 1.5, Number.MAX_VALUE, Number.MIN_VALUE]);
    case 4:
      return text(rng, rng.pick(LIMIT_LENGTHS));
    case 5:
      return "";
    case 6:
      return new Raw(rng.pick(['"\\ud800"', '"\\udc00x"', '"\\u0000"', '"\\u2028"', '"\\x"', '"\\u12"']));
    case 7:
      return rng.pick(["agent", "operator", "normal", "UNKNOWN", "__proto__", "constructor", "toString"]);
    case 8:
      return new Raw(rng.pick(BAD_TOKENS));
    case 9:
      return Array.from({ length: rng.size(8) }, () => evil(rng, level + 1));
    case 10:
      return new Obj(
        Array.from({ length: rng.size(8) }, () => [text(rng, rng.size(8)), evil(rng, level + 1)]),
      );
    default:
      return new Nest(depth(rng), rng.pick(["array", "object", "mixed"] as const), evil(rng, 2));
  }
}

function labelKey(rng: Rng, i: number): string {
  return rng.weighted([
    [10, `k${i}`],
    [3, `k${i}`.padEnd(63, "x")],
    [3, `k${i}`.padEnd(64, "x")],
    [1, "__proto__"],
    [1, "constructor"],
    [1, ""],
    [1, "a b"],
    [1, "é"],
    [1, "_x"],
    [1, `k${i}/a.b-c_d`],
    [1, text(rng, rng.size(80))],
  ]);
}

/** A label set: counts around 64, keys and values around their limits, wrong types. */
function labels(rng: Rng): unknown {
  const n = rng.weighted([
    [10, rng.size(8)],
    [4, 63],
    [4, 64],
    [4, 65],
    [2, 300],
    [0.2, 20_000],
  ]);
  const pairs: [string, unknown][] = [];
  const near = n <= 65; // long values only in sets near the count limit: inputs stay small
  for (let i = 0; i < n; i++) {
    const length = near && rng.chance(0.3) ? rng.pick(LIMIT_LENGTHS) : rng.size(16);
    const value = rng.chance(0.9) ? text(rng, length) : near ? evil(rng, 1) : null;
    pairs.push([labelKey(rng, i), value]);
  }
  return new Obj(pairs);
}

/** Field names with a plausible value each, for the four JSON bodies. */
type Template = () => [string, unknown][];

const TEMPLATES: Record<"hello" | "welcome" | "close" | "error", Template> = {
  hello: () => [
    ["role", "agent"],
    ["name", "edge-01"],
    ["labels", { zone: "eu" }],
    ["version", "0.1.0"],
  ],
  welcome: () => [
    ["sessionId", "s-1"],
    ["token", "tok"],
    ["resumed", false],
    ["expired", false],
    ["replaying", 0],
    ["heartbeatIntervalMs", 5000],
    ["resumeWindowMs", 30000],
    ["server", { name: "muster", version: "0.1.0" }],
  ],
  close: () => [
    ["code", "protocol_error"],
    ["message", "bad"],
    ["retryAfterMs", 1000],
  ],
  error: () => [
    ["code", "INTERNAL"],
    ["message", "boom"],
    ["details", { at: [1, 2] }],
  ],
};

const HELLO_FIELD_VALUES: Record<string, (rng: Rng) => unknown> = {
  role: (rng) => rng.pick(["agent", "operator", "Agent", "", "admin"]),
  name: (rng) => text(rng, rng.pick(LIMIT_LENGTHS)),
  labels,
  version: (rng) => text(rng, rng.pick(LIMIT_LENGTHS)),
  token: (rng) => text(rng, rng.pick(LIMIT_LENGTHS)),
};

/** Mutates the fields of a JSON body: replace, delete, add unknown, duplicate, reorder. */
function mutateFields(rng: Rng, pairs: [string, unknown][], hello: boolean): [string, unknown][] {
  const out = pairs.slice();
  const rounds = rng.range(1, 3);
  for (let r = 0; r < rounds; r++) {
    const op = rng.int(7);
    if (op <= 2 && out.length > 0) {
      const i = rng.int(out.length);
      const key = out[i]![0];
      const special = hello && Object.hasOwn(HELLO_FIELD_VALUES, key) ? HELLO_FIELD_VALUES[key] : undefined;
      out[i] = [key, special && rng.chance(0.6) ? special(rng) : evil(rng)];
    } else if (op === 3 && out.length > 0) {
      out.splice(rng.int(out.length), 1);
    } else if (op === 4) {
      out.push([rng.pick(["future", "token", "__proto__", "x".repeat(rng.size(300)), "labels"]), evil(rng)]);
    } else if (op === 5 && out.length > 0) {
      out.push(out[rng.int(out.length)]!); // a duplicate key: the last one wins
    } else if (out.length > 1) {
      const i = rng.int(out.length);
      const j = rng.int(out.length);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
  }
  return out;
}

/** JSON text as bytes, sometimes damaged: invalid UTF-8, a BOM, truncation, trailing bytes. */
function damage(rng: Rng, json: string): Buffer {
  let bytes = Buffer.from(json, "utf8");
  if (rng.chance(0.1)) {
    switch (rng.int(5)) {
      case 0: {
        const at = rng.int(bytes.length + 1);
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(rng.pick(BAD_UTF8)), bytes.subarray(at)]);
        break;
      }
      case 1:
        bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]);
        break;
      case 2:
        bytes = bytes.subarray(0, rng.int(bytes.length + 1));
        break;
      case 3:
        bytes = Buffer.concat([bytes, Buffer.from(rng.pick([" ", "\n\t ", "x", "}", ",", "\u0000", "{}"]))]);
        break;
      default:
        bytes = Buffer.from(`  ${json}\r\n`, "utf8");
    }
  }
  return bytes;
}

/** A HELLO body, mutated at the JSON level (most results are invalid, some valid). */
export function helloBody(rng: Rng, name?: string): Buffer {
  const pairs = TEMPLATES.hello();
  if (name !== undefined) pairs[1] = ["name", name];
  if (rng.chance(0.2)) pairs.push(["token", text(rng, rng.range(1, 128))]);
  if (rng.chance(0.3)) pairs[2] = ["labels", labels(rng)];
  const mutated = rng.chance(0.85) ? mutateFields(rng, pairs, true) : pairs;
  const root: unknown = rng.chance(0.03)
    ? rng.pick([[], "hello", 1, null, new Nest(depth(rng), "array", {})])
    : new Obj(mutated);
  return damage(rng, emit(root));
}

/** A JSON payload value: ordinary values, extreme numbers, long strings, deep nesting. */
function payloadJson(rng: Rng): Buffer {
  const value = rng.chance(0.3) ? { data: "x".repeat(rng.size(200)), list: [1, 2, 3] } : evil(rng);
  return damage(rng, emit(value));
}

/** A frame with a structured JSON body or JSON payload. */
export function structuredFrame(rng: Rng): Buffer {
  const ack = rng.chance(0.8) ? rng.int(100) : extremeInt(rng, 6);
  switch (rng.int(7)) {
    case 0:
    case 1:
      return rawFrame(FrameType.HELLO, 0, ack, helloBody(rng));
    case 2:
      return rawFrame(
        FrameType.WELCOME,
        0,
        ack,
        damage(rng, emit(new Obj(mutateFields(rng, TEMPLATES.welcome(), false)))),
      );
    case 3:
      return rawFrame(
        FrameType.CLOSE,
        0,
        ack,
        damage(rng, emit(new Obj(mutateFields(rng, TEMPLATES.close(), false)))),
      );
    case 4: {
      const body = damage(rng, emit(new Obj(mutateFields(rng, TEMPLATES.error(), false))));
      return rawFrame(
        FrameType.RESULT,
        rng.range(1, 100),
        ack,
        Buffer.concat([u32(rng.u32()), Buffer.from([1]), body]),
      );
    }
    default: {
      const payload = Buffer.concat([
        Buffer.from([rng.chance(0.9) ? 1 : rng.pick([0, 2, 3, 255])]),
        payloadJson(rng),
      ]);
      const seq = rng.range(1, 1000);
      const id = u32(rng.u32());
      switch (rng.int(3)) {
        case 0: {
          const method = Buffer.from(rng.pick(["sys.ping", "x", "métho∂"]), "utf8");
          const head = Buffer.concat([id, u32(rng.u32()), Buffer.from([method.length]), method]);
          return rawFrame(FrameType.CALL, seq, ack, Buffer.concat([head, payload]));
        }
        case 1:
          return rawFrame(FrameType.ITEM, seq, ack, Buffer.concat([id, payload]));
        default:
          return rawFrame(FrameType.RESULT, seq, ack, Buffer.concat([id, Buffer.from([0]), payload]));
      }
    }
  }
}

/** A frame with a random header (mostly version 1) and a random body. */
function randomHeaderFrame(rng: Rng): Buffer {
  const type = rng.chance(0.8) ? rng.pick(Object.values(FrameType)) : rng.int(256);
  const seq =
    type >= 0x10
      ? rng.chance(0.9)
        ? rng.range(1, 1000)
        : extremeInt(rng, 6)
      : rng.chance(0.9)
        ? 0
        : extremeInt(rng, 6);
  const body = rng.bytes(rng.chance(0.5) ? rng.pick([0, 4, 5, 6, 8, 9, 10, 11]) : rng.size(300));
  return rawFrame(type, seq, rng.int(1000), body, rng.chance(0.97) ? 1 : rng.int(256));
}

/** One input for the frame decoder. */
export function decoderInput(rng: Rng, seeds: readonly Buffer[]): Buffer {
  const kind = rng.weighted([
    [5, 0],
    [10, 1],
    [55, 2],
    [8, 3],
    [22, 4],
  ]);
  switch (kind) {
    case 0: // random bytes
      return rng.bytes(rng.chance(0.7) ? rng.size(40) : rng.size(600));
    case 1:
      return randomHeaderFrame(rng);
    case 2: {
      // stacked byte mutations of a seed
      let out: Buffer = rng.pick(seeds);
      const rounds = rng.weighted([
        [50, 1],
        [25, 2],
        [15, 4],
        [10, 8],
      ]);
      for (let r = 0; r < rounds; r++) out = mutateBytes(rng, out, seeds);
      return out;
    }
    case 3: {
      // two seeds spliced, possibly mutated
      const a = rng.pick(seeds);
      const b = rng.pick(seeds);
      const out = Buffer.concat([a.subarray(0, rng.int(a.length + 1)), b.subarray(rng.int(b.length + 1))]);
      return rng.chance(0.5) ? mutateBytes(rng, out, seeds) : out;
    }
    default: {
      const out = structuredFrame(rng);
      return rng.chance(0.15) ? mutateBytes(rng, out, seeds) : out;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Streams (length-prefixed)

/** Decoder limits the stream target is run with. */
export const STREAM_LIMITS = [14, 64, 256, 1024 * 1024, 0xffffffff] as const;

function prefixed(frame: Uint8Array, length = frame.length): Buffer {
  return Buffer.concat([u32(length), frame]);
}

/** A length-prefixed stream around `input`: seeds before and after, tampered prefixes, cut ends. */
export function streamInput(rng: Rng, input: Buffer, seeds: readonly Buffer[]): Buffer {
  if (rng.chance(0.3)) return input; // the input itself, read as a stream
  const parts: Buffer[] = [];
  const before = rng.size(3);
  for (let i = 0; i < before; i++) parts.push(prefixed(rng.pick(seeds)));
  let length = input.length;
  if (rng.chance(0.15)) {
    length = rng.pick([
      0,
      1,
      13,
      14,
      input.length + 1,
      input.length - 1,
      0x7fffffff,
      0x80000000,
      0xffffffff,
      1024 * 1024,
      1024 * 1024 + 1,
      rng.u32(),
    ]);
  }
  parts.push(prefixed(input, Math.max(0, length)));
  const after = rng.size(2);
  for (let i = 0; i < after; i++) parts.push(prefixed(rng.pick(seeds)));
  let out: Buffer = Buffer.concat(parts);
  if (rng.chance(0.2)) out = out.subarray(0, rng.int(out.length + 1));
  if (rng.chance(0.1)) out = mutateBytes(rng, out, seeds);
  return out;
}

/** Random chunk sizes summing to `total`: single bytes, small and large chunks. */
export function chunkSizes(rng: Rng, total: number): number[] {
  const sizes: number[] = [];
  let left = total;
  // Single bytes and tiny chunks only on streams small enough for them to stay fast.
  const style = total <= 4096 ? rng.int(4) : total <= 65536 ? rng.range(2, 3) : 3;
  while (left > 0) {
    const n =
      style === 0
        ? 1
        : style === 1
          ? rng.range(1, 7)
          : style === 2
            ? rng.range(1, 64)
            : rng.range(1, Math.max(1, left));
    const take = Math.min(left, n);
    sizes.push(take);
    left -= take;
    if (rng.chance(0.05)) sizes.push(0); // empty chunks are legal
  }
  return sizes;
}

/**
 * A large frame in 1-byte chunks, as a peer trickling its bytes would send it: the decoder
 * must stay linear in time and memory.
 */
export function trickleStream(rng: Rng): { stream: Buffer; sizes: number[] } {
  const body = Buffer.concat([u32(rng.u32()), Buffer.from([2]), rng.bytes(rng.range(100_000, 300_000))]);
  const stream = prefixed(rawFrame(FrameType.ITEM, rng.range(1, 1000), 0, body));
  return { stream, sizes: new Array<number>(stream.length).fill(1) };
}
