// The decoder targets and their oracles. Each check returns undefined when the input was
// handled correctly, or a one-line description of what went wrong.

import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import { decodeFrame, decodeValue, encodeFrame, encodeValue } from "../src/wire/codec.js";
import { describeFrame } from "../src/wire/describe.js";
import { type Frame, FrameType, HEADER_BYTES, type Payload, PayloadKind } from "../src/wire/frame.js";
import { LENGTH_PREFIX_BYTES, LengthPrefixDecoder } from "../src/wire/length-prefix.js";

/** The fuzz targets; also the prefix of a fixture's file name. */
export type Target = "decode" | "stream" | "handshake" | "auth";
export const TARGETS: readonly Target[] = ["decode", "stream", "handshake", "auth"];

/** Counters showing what the inputs exercised. */
export interface DecodeStats {
  /** Decoded frames, by type name. */
  decoded: Record<string, number>;
  /** Inputs rejected by decodeFrame (PROTOCOL_ERROR). */
  rejected: number;
  /** Payloads decodeValue turned into a value, and payloads it rejected (INVALID_ARGUMENT). */
  values: number;
  valuesRejected: number;
}

export interface StreamStats {
  streams: number;
  frames: number;
  tooLarge: number;
  tooShort: number;
  /** Streams that ended inside a frame or a prefix. */
  partial: number;
}

export function newDecodeStats(): DecodeStats {
  const decoded: Record<string, number> = {};
  for (const name of Object.keys(FrameType)) decoded[name] = 0;
  return { decoded, rejected: 0, values: 0, valuesRejected: 0 };
}

export function newStreamStats(): StreamStats {
  return { streams: 0, frames: 0, tooLarge: 0, tooShort: 0, partial: 0 };
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(FrameType).map(([k, v]) => [v, k]),
);

/** One line about anything thrown. */
export function describeThrown(err: unknown): string {
  if (err instanceof MusterError) return `MusterError ${err.code}: ${oneLine(err.rawMessage)}`;
  if (err instanceof Error) return `${err.constructor.name}: ${oneLine(err.message)}`;
  return `a thrown ${typeof err}: ${oneLine(String(err))}`;
}

export function oneLine(text: string, max = 200): string {
  const line = JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text).slice(1, -1);
  return line;
}

/** A message on one line: line breaks and other control characters become spaces. */
export function flat(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is replaced
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, " ");
}

/** Messages sent to peers and written to logs: one line, bounded, without object dumps. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
const NOT_ONE_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const MAX_MESSAGE_CHARS = 512;

/** Checks that `err` is a MusterError with one of `codes` and a precise, bounded message. */
export function checkError(err: unknown, codes: readonly ErrorCode[], what: string): string | undefined {
  if (!(err instanceof MusterError)) return `${what} threw ${describeThrown(err)}`;
  if (!codes.includes(err.code))
    return `${what} threw ${err.code} (expected ${codes.join(" or ")}): ${oneLine(err.rawMessage)}`;
  const m = err.rawMessage;
  if (m.length === 0) return `${what} threw ${err.code} with an empty message`;
  if (m.length > MAX_MESSAGE_CHARS)
    return `${what}: message of ${m.length} characters (> ${MAX_MESSAGE_CHARS}): ${oneLine(m, 80)}`;
  if (NOT_ONE_LINE.test(m)) return `${what}: message is not one line: ${oneLine(m, 120)}`;
  if (m.includes("[object ")) return `${what}: message shows an object: ${oneLine(m, 120)}`;
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

function samePayload(a: Payload, b: Payload): boolean {
  return a.kind === b.kind && sameBytes(a.bytes, b.bytes);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "undefined";
  } catch (err) {
    return `<JSON.stringify threw ${describeThrown(err)}>`;
  }
}

/** What differs between a decoded frame and the decoding of its re-encoding; undefined if nothing. */
function frameDiff(a: Frame, b: Frame): string | undefined {
  if (a.type !== b.type || a.seq !== b.seq || a.ack !== b.ack) {
    return `header ${a.type}/${a.seq}/${a.ack} became ${b.type}/${b.seq}/${b.ack}`;
  }
  switch (a.type) {
    case FrameType.HELLO:
    case FrameType.WELCOME:
    case FrameType.CLOSE: {
      const x = safeJson(a);
      const y = safeJson(b);
      return x === y ? undefined : `body ${oneLine(x, 100)} became ${oneLine(y, 100)}`;
    }
    case FrameType.PING:
    case FrameType.PONG: {
      const t = (b as { time: number }).time;
      return Object.is(a.time, t) || (Number.isNaN(a.time) && Number.isNaN(t))
        ? undefined
        : `time ${a.time} became ${t}`;
    }
    case FrameType.ACK:
      return undefined;
    case FrameType.CALL: {
      const c = b as typeof a;
      if (a.id !== c.id || a.timeoutMs !== c.timeoutMs || a.method !== c.method) return "CALL fields changed";
      return samePayload(a.payload, c.payload) ? undefined : "CALL payload changed";
    }
    case FrameType.ITEM:
      return a.id === (b as typeof a).id && samePayload(a.payload, (b as typeof a).payload)
        ? undefined
        : "ITEM changed";
    case FrameType.RESULT: {
      if (a.id !== (b as { id: number }).id) return "RESULT id changed";
      if ("error" in a) {
        if (!("error" in b)) return "RESULT error became ok";
        const x = safeJson(a.error);
        const y = safeJson(b.error);
        return x === y ? undefined : `RESULT error ${oneLine(x, 100)} became ${oneLine(y, 100)}`;
      }
      if (!("payload" in b)) return "RESULT ok became error";
      return samePayload(a.payload, b.payload) ? undefined : "RESULT payload changed";
    }
    case FrameType.CANCEL:
      return a.id === (b as typeof a).id ? undefined : "CANCEL id changed";
    case FrameType.OPEN: {
      const c = b as typeof a;
      if (a.id !== c.id || a.timeoutMs !== c.timeoutMs || a.window !== c.window || a.method !== c.method)
        return "OPEN fields changed";
      return samePayload(a.payload, c.payload) ? undefined : "OPEN payload changed";
    }
    case FrameType.CREDIT: {
      const c = b as typeof a;
      return a.id === c.id && a.bytes === c.bytes ? undefined : "CREDIT changed";
    }
    case FrameType.ORIGIN: {
      const c = b as typeof a;
      return a.id === c.id && safeJson(a.origin) === safeJson(c.origin) ? undefined : "ORIGIN changed";
    }
  }
}

/** True for frames whose body has exactly one encoding (no JSON, no NaN). */
function isCanonical(frame: Frame): boolean {
  switch (frame.type) {
    case FrameType.HELLO:
    case FrameType.WELCOME:
    case FrameType.CLOSE:
    case FrameType.ORIGIN: // JSON: key order, spacing and unknown fields are not kept
      return false;
    case FrameType.PING:
    case FrameType.PONG:
      return !Number.isNaN(frame.time);
    case FrameType.RESULT:
      return !("error" in frame);
    default:
      return true;
  }
}

/**
 * decodeValue on a payload: a value or INVALID_ARGUMENT; a value must re-encode with
 * encodeValue, and re-encoding is stable after one round (JSON normalises -0, 1e999, ...).
 */
export function checkPayload(payload: Payload, stats?: DecodeStats): string | undefined {
  let value: unknown;
  try {
    value = decodeValue(payload);
  } catch (err) {
    if (stats) stats.valuesRejected++;
    return checkError(err, [ErrorCode.INVALID_ARGUMENT], "decodeValue");
  }
  if (stats) stats.values++;
  let again: Payload;
  try {
    again = encodeValue(value);
  } catch (err) {
    return `encodeValue of a decoded value threw ${describeThrown(err)}`;
  }
  if (payload.kind === PayloadKind.NONE || payload.kind === PayloadKind.BYTES) {
    return samePayload(payload, again) ? undefined : `payload of kind ${payload.kind} changed on re-encoding`;
  }
  if (again.kind !== PayloadKind.JSON) return `JSON payload re-encoded as kind ${again.kind}`;
  let third: Payload;
  try {
    third = encodeValue(decodeValue(again));
  } catch (err) {
    return `a re-encoded payload does not decode: ${describeThrown(err)}`;
  }
  return samePayload(again, third) ? undefined : "a JSON payload does not re-encode stably";
}

/**
 * decodeFrame on any bytes: a frame or PROTOCOL_ERROR with a precise message. A frame must
 * re-encode, the re-encoding must decode to the same frame, frames without JSON must
 * re-encode to the very input bytes, and payloads go through checkPayload.
 */
export function checkDecode(bytes: Uint8Array, stats?: DecodeStats): string | undefined {
  let frame: Frame;
  try {
    frame = decodeFrame(bytes);
  } catch (err) {
    if (stats) stats.rejected++;
    return checkError(err, [ErrorCode.PROTOCOL_ERROR], "decodeFrame");
  }
  const name = TYPE_NAMES[frame.type];
  if (name === undefined) return `decodeFrame returned an unknown type ${String(frame.type)}`;
  if (stats) stats.decoded[name]!++;
  // The trace line of a frame (`--trace`) must stay one line whatever the peer sent.
  let line: string;
  try {
    line = describeFrame(frame);
  } catch (err) {
    return `describeFrame of a decoded ${name} threw ${describeThrown(err)}`;
  }
  if (NOT_ONE_LINE.test(line)) return `describeFrame of a ${name} is not one line: ${oneLine(line, 120)}`;
  let again: Buffer;
  try {
    again = encodeFrame(frame);
  } catch (err) {
    return `encodeFrame of a decoded ${name} threw ${describeThrown(err)}`;
  }
  let back: Frame;
  try {
    back = decodeFrame(again);
  } catch (err) {
    return `a re-encoded ${name} does not decode: ${describeThrown(err)}`;
  }
  const diff = frameDiff(frame, back);
  if (diff !== undefined) return `a re-encoded ${name} differs: ${diff}`;
  if (isCanonical(frame) && !sameBytes(bytes, again)) return `a decoded ${name} re-encodes to other bytes`;
  if ("payload" in frame) return checkPayload(frame.payload, stats);
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Length-prefixed streams

interface StreamError {
  code: ErrorCode;
  message: string;
  /** Stream offset just past the offending 4-byte prefix: the decoder must throw on it. */
  at: number;
}

interface Split {
  frames: Uint8Array[];
  error?: StreamError;
  /** Bytes left over (a partial prefix or frame) when there is no error. */
  rest: number;
}

/** The expected split of a stream, written independently of LengthPrefixDecoder. */
export function referenceSplit(stream: Uint8Array, maxFrameBytes: number): Split {
  const view = Buffer.from(stream.buffer, stream.byteOffset, stream.length);
  const frames: Uint8Array[] = [];
  let at = 0;
  while (view.length - at >= LENGTH_PREFIX_BYTES) {
    const len = view.readUInt32BE(at);
    const end = at + LENGTH_PREFIX_BYTES;
    if (len > maxFrameBytes) {
      return {
        frames,
        rest: 0,
        error: {
          code: ErrorCode.FRAME_TOO_LARGE,
          message: `frame of ${len} bytes announced, limit is ${maxFrameBytes} bytes`,
          at: end,
        },
      };
    }
    if (len < HEADER_BYTES) {
      return {
        frames,
        rest: 0,
        error: {
          code: ErrorCode.PROTOCOL_ERROR,
          message: `frame of ${len} bytes announced, shorter than the ${HEADER_BYTES}-byte header`,
          at: end,
        },
      };
    }
    if (view.length - end < len) break;
    frames.push(view.subarray(end, end + len));
    at = end + len;
  }
  return { frames, rest: view.length - at };
}

/**
 * What the decoder may allocate beyond the bytes received: a fixed buffer that small chunks
 * are gathered in. Nothing may be sized from an announced length before the bytes arrive.
 */
const STAGING_BYTES = 4096;

let watcher: ((size: number) => void) | undefined;
let watching = false;

/**
 * Calls `fn` with the size of every Buffer.allocUnsafe / Buffer.alloc until called with
 * undefined. The wrappers are installed once, so that the functions keep one shape.
 */
function watchAllocations(fn: ((size: number) => void) | undefined): void {
  if (!watching) {
    watching = true;
    const allocUnsafe = Buffer.allocUnsafe;
    const alloc = Buffer.alloc;
    Buffer.allocUnsafe = (size: number) => {
      watcher?.(size);
      return allocUnsafe(size);
    };
    const allocUnsafeSlow = Buffer.allocUnsafeSlow;
    Buffer.alloc = ((size: number, fill?: string | Uint8Array | number, encoding?: BufferEncoding) => {
      watcher?.(size);
      return alloc(size, fill, encoding);
    }) as typeof Buffer.alloc;
    Buffer.allocUnsafeSlow = (size: number) => {
      watcher?.(size);
      return allocUnsafeSlow(size);
    };
  }
  watcher = fn;
}

/**
 * Feeds `stream` to a LengthPrefixDecoder in chunks of `sizes` and compares with the
 * reference split: the same frames, the same error thrown by the chunk that completes the
 * offending prefix, nothing allocated beyond the bytes received, refusal after an error.
 */
export function checkChunked(
  stream: Buffer,
  sizes: readonly number[],
  maxFrameBytes: number,
  expected: Split,
): string | undefined {
  const decoder = new LengthPrefixDecoder(maxFrameBytes);
  const frames: Uint8Array[] = [];
  let pushed = 0;
  let thrown: { err: unknown; before: number; after: number } | undefined;
  let allocationOverrun: string | undefined;
  watchAllocations((size) => {
    if (size > pushed + STAGING_BYTES && allocationOverrun === undefined) {
      allocationOverrun = `allocated ${size} bytes after receiving ${pushed}`;
    }
  });
  try {
    let offset = 0;
    for (const size of sizes) {
      const chunk = stream.subarray(offset, offset + size);
      offset += size;
      const before = pushed;
      pushed += size;
      try {
        decoder.push(chunk, (f) => frames.push(f));
      } catch (err) {
        thrown = { err, before, after: pushed };
        break;
      }
    }
  } finally {
    watchAllocations(undefined);
  }
  if (allocationOverrun !== undefined) return `LengthPrefixDecoder ${allocationOverrun}`;
  if (frames.length !== expected.frames.length) {
    return `LengthPrefixDecoder delivered ${frames.length} frames, expected ${expected.frames.length}`;
  }
  for (let i = 0; i < frames.length; i++) {
    if (!sameBytes(frames[i]!, expected.frames[i]!)) return `LengthPrefixDecoder frame ${i} differs`;
  }
  const e = expected.error;
  if (e === undefined) {
    if (thrown) return `LengthPrefixDecoder threw ${describeThrown(thrown.err)} on a good stream`;
    if (decoder.bufferedBytes !== expected.rest) {
      return `LengthPrefixDecoder holds ${decoder.bufferedBytes} bytes, expected ${expected.rest}`;
    }
    return undefined;
  }
  if (!thrown) return `LengthPrefixDecoder did not throw (expected ${e.code}: ${e.message})`;
  const bad = checkError(thrown.err, [e.code], "LengthPrefixDecoder");
  if (bad) return bad;
  const message = (thrown.err as MusterError).rawMessage;
  if (message !== e.message)
    return `LengthPrefixDecoder said ${oneLine(message)}, expected ${oneLine(e.message)}`;
  if (!(thrown.before < e.at && e.at <= thrown.after)) {
    return `LengthPrefixDecoder threw after ${thrown.after} bytes, not on the prefix ending at ${e.at}`;
  }
  try {
    decoder.push(Buffer.alloc(1), () => {});
    return "LengthPrefixDecoder accepted bytes after an error";
  } catch (err) {
    return checkError(err, [ErrorCode.PROTOCOL_ERROR], "LengthPrefixDecoder after an error");
  }
}

/** The stream target: one chunk, then the given chunking, both against the reference. */
export function checkStream(
  stream: Buffer,
  sizes: readonly number[],
  maxFrameBytes: number,
  stats?: StreamStats,
): string | undefined {
  const expected = referenceSplit(stream, maxFrameBytes);
  if (stats) {
    stats.streams++;
    stats.frames += expected.frames.length;
    if (expected.error?.code === ErrorCode.FRAME_TOO_LARGE) stats.tooLarge++;
    else if (expected.error) stats.tooShort++;
    else if (expected.rest > 0) stats.partial++;
  }
  return (
    checkChunked(stream, stream.length === 0 ? [] : [stream.length], maxFrameBytes, expected) ??
    checkChunked(stream, sizes, maxFrameBytes, expected)
  );
}
