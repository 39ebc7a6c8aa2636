import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";

/**
 * The one message of `muster.v1.Link` (proto/muster/v1/link.proto), `Frame { bytes data = 1; }`,
 * encoded and decoded by hand: a tag byte, a varint length and the frame. A general protobuf
 * library would build an object per frame on the hot path for what is one prefix; the decoder
 * returns a view of the message, with no copy.
 */

/** Bytes the Frame message adds to a frame: the tag and a length of up to 5 bytes. */
export const FRAME_MESSAGE_OVERHEAD = 6;

const TAG_DATA = 0x0a; // field 1, wire type 2 (length-delimited)

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** The Frame message carrying `frame`. */
export function encodeFrameMessage(frame: Uint8Array): Buffer {
  const n = frame.length;
  const out = Buffer.allocUnsafe(1 + varintSize(n) + n);
  out[0] = TAG_DATA;
  let i = 1;
  let v = n;
  while (v >= 0x80) {
    out[i++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[i++] = v;
  out.set(frame, i);
  return out;
}

function malformed(why: string): MusterError {
  return new MusterError(ErrorCode.PROTOCOL_ERROR, `malformed muster.v1.Frame message: ${why}`);
}

/** Reads a varint at `at`; returns [value, next offset]. At most 5 bytes (values < 2^35). */
function readVarint(b: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 5; i++) {
    if (at + i >= b.length) throw malformed("truncated varint");
    const byte = b[at + i]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at + i + 1];
    scale *= 128;
  }
  throw malformed("varint longer than 5 bytes");
}

/** The offset after the varint at `at`, of up to 10 bytes (a 64-bit value), whatever its value. */
function skipVarint(b: Uint8Array, at: number): number {
  for (let i = 0; i < 10; i++) {
    if (at + i >= b.length) throw malformed("truncated varint");
    if (b[at + i]! < 0x80) return at + i + 1;
  }
  throw malformed("varint longer than 10 bytes");
}

/**
 * The frame in a Frame message (a view of `message`). Unknown fields are skipped, as protobuf
 * requires; a repeated `data` field keeps the last, as protobuf does for scalars; no `data` field
 * is an empty frame. Throws PROTOCOL_ERROR on a malformed message.
 */
export function decodeFrameMessage(message: Uint8Array): Uint8Array {
  let data: Uint8Array = message.subarray(0, 0);
  let at = 0;
  while (at < message.length) {
    const [key, afterKey] = readVarint(message, at);
    const field = Math.floor(key / 8);
    const wireType = key & 7;
    if (field === 0) throw malformed("field number 0");
    at = afterKey;
    switch (wireType) {
      case 0:
        at = skipVarint(message, at);
        break;
      case 1:
        at += 8;
        break;
      case 2: {
        const [length, start] = readVarint(message, at);
        at = start + length;
        if (at > message.length) throw malformed(`field ${field} runs past the end of the message`);
        if (field === 1) data = message.subarray(start, at);
        break;
      }
      case 5:
        at += 4;
        break;
      default:
        throw malformed(`wire type ${wireType}`);
    }
    if (at > message.length) throw malformed("truncated field");
  }
  return data;
}
