import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";

/**
 * The body of every message between servers: a JSON head (what the message is) followed by
 * opaque byte blobs (payloads, results) that the head refers to by index. Layout:
 *
 *     u32 big-endian  head length H
 *     H bytes         head, UTF-8 JSON object with `v` (the cluster protocol version) and `t` (type)
 *     rest            the blobs, back to back; head.b lists their lengths
 *
 * Payloads stay bytes end to end (no base64, no re-encoding of an agent's result).
 */
export const CLUSTER_PROTOCOL = 1;

/** The versions this server reads: its own and the next (a rolling upgrade runs both). */
export function readableVersion(v: unknown): boolean {
  return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= CLUSTER_PROTOCOL + 1;
}

export interface Envelope {
  /** The decoded head; `v` and `t` are checked, the rest is the caller's to validate. */
  readonly head: Record<string, unknown> & { v: number; t: string };
  readonly blobs: Uint8Array[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeEnvelope(
  head: Record<string, unknown> & { t: string },
  blobs: readonly Uint8Array[] = [],
): Uint8Array {
  const full = { v: CLUSTER_PROTOCOL, ...head, b: blobs.map((b) => b.byteLength) };
  const json = encoder.encode(JSON.stringify(full));
  let size = 4 + json.byteLength;
  for (const b of blobs) size += b.byteLength;
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, json.byteLength);
  out.set(json, 4);
  let at = 4 + json.byteLength;
  for (const b of blobs) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

/** Decodes a body; a malformed one is a PROTOCOL_ERROR naming what is wrong. */
export function decodeEnvelope(data: Uint8Array): Envelope {
  const bad = (why: string) => new MusterError(ErrorCode.PROTOCOL_ERROR, `malformed cluster message: ${why}`);
  if (data.byteLength < 4) throw bad(`${data.byteLength} bytes, shorter than its header`);
  const headLength = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
  if (headLength > data.byteLength - 4)
    throw bad(`head of ${headLength} bytes in a body of ${data.byteLength}`);
  let head: unknown;
  try {
    head = JSON.parse(decoder.decode(data.subarray(4, 4 + headLength)));
  } catch (err) {
    throw bad(`head is not JSON (${(err as Error).message})`);
  }
  if (typeof head !== "object" || head === null || Array.isArray(head)) throw bad("head is not an object");
  const h = head as Record<string, unknown>;
  if (!readableVersion(h.v))
    throw bad(`cluster protocol version ${String(h.v)} (this server reads 1 to ${CLUSTER_PROTOCOL + 1})`);
  if (typeof h.t !== "string") throw bad("no message type");
  const lengths = h.b ?? [];
  if (!Array.isArray(lengths)) throw bad("blob lengths are not a list");
  const blobs: Uint8Array[] = [];
  let at = 4 + headLength;
  for (const n of lengths) {
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || at + n > data.byteLength)
      throw bad("a blob runs past the end of the body");
    blobs.push(data.subarray(at, at + n));
    at += n;
  }
  if (at !== data.byteLength) throw bad(`${data.byteLength - at} bytes after the last blob`);
  return { head: h as Envelope["head"], blobs };
}

/** An error as carried between servers. */
export interface WireError {
  code: string;
  message: string;
}

export function toWireError(err: MusterError): WireError {
  return { code: err.code, message: err.rawMessage };
}

export function fromWireError(e: unknown): MusterError {
  return MusterError.fromBody(e);
}
