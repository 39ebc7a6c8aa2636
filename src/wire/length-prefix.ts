import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { HEADER_BYTES } from "./frame.js";

/** Bytes of the length prefix used by stream transports (TCP, TLS): u32 big-endian. */
export const LENGTH_PREFIX_BYTES = 4;

/** Prepends the u32 length prefix to a frame. */
export function lengthPrefix(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + frame.length);
  out.writeUInt32BE(frame.length, 0);
  out.set(frame, LENGTH_PREFIX_BYTES);
  return out;
}

/** Chunks shorter than this are copied together while a frame waits for its end. */
const COALESCE_BELOW = 512;
/** Size of the buffers small chunks are copied into. */
const TAIL_BYTES = 4096;

/** NaN would silently disable a check (every comparison with NaN is false). */
function checkLimit(name: string, value: number): void {
  if (typeof value !== "number" || Number.isNaN(value) || value < HEADER_BYTES) {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `${name} must be a number of at least ${HEADER_BYTES}, got ${String(value)}`,
    );
  }
}

/**
 * Splits a byte stream into frames. Each frame's length is checked against `maxFrameBytes`
 * as soon as its 4-byte prefix has arrived, before any buffer for the frame is allocated.
 * After an error the decoder is poisoned: the connection must be closed.
 */
export class LengthPrefixDecoder {
  readonly #maxFrameBytes: number;
  /** Limit of the next frame: `firstFrameMaxBytes` until one frame has been read. */
  #limit: number;
  #first: boolean;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #need = -1;
  #failed = false;
  /** Where small chunks are gathered: bytes before `#tailUsed` are never written again. */
  #tail: Buffer | undefined;
  #tailUsed = 0;

  /**
   * @param maxFrameBytes largest frame accepted (not counting the prefix), at least the
   * 14-byte header. A prefix announcing more is refused as soon as its 4 bytes are in.
   * @param firstFrameMaxBytes a lower limit for the first frame only (a server's handshake:
   * nobody may make it buffer a megabyte before saying who they are).
   */
  constructor(maxFrameBytes: number, firstFrameMaxBytes?: number) {
    checkLimit("maxFrameBytes", maxFrameBytes);
    this.#maxFrameBytes = maxFrameBytes;
    if (firstFrameMaxBytes !== undefined) checkLimit("firstFrameMaxBytes", firstFrameMaxBytes);
    this.#first = firstFrameMaxBytes !== undefined && firstFrameMaxBytes < maxFrameBytes;
    this.#limit = this.#first ? firstFrameMaxBytes! : maxFrameBytes;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Feeds bytes; calls `onFrame` for every whole frame. Throws on a bad length prefix. */
  push(chunk: Buffer, onFrame: (frame: Buffer) => void): void {
    if (this.#failed) throw new MusterError(ErrorCode.PROTOCOL_ERROR, "decoder used after an error");
    // Fast path: nothing buffered, whole frames in this chunk.
    let offset = 0;
    if (this.#buffered === 0) {
      while (chunk.length - offset >= LENGTH_PREFIX_BYTES) {
        const len = this.#check(chunk.readUInt32BE(offset));
        if (chunk.length - offset - LENGTH_PREFIX_BYTES < len) break;
        onFrame(chunk.subarray(offset + LENGTH_PREFIX_BYTES, offset + LENGTH_PREFIX_BYTES + len));
        offset += LENGTH_PREFIX_BYTES + len;
      }
      if (offset === chunk.length) return;
    }
    this.#hold(offset === 0 ? chunk : chunk.subarray(offset));
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < LENGTH_PREFIX_BYTES) return;
        this.#need = this.#check(this.#peekLength());
      }
      if (this.#buffered < LENGTH_PREFIX_BYTES + this.#need) return;
      const frame = this.#take(LENGTH_PREFIX_BYTES + this.#need).subarray(LENGTH_PREFIX_BYTES);
      this.#need = -1;
      onFrame(frame);
    }
  }

  /**
   * Keeps bytes until their frame is whole. Small chunks are copied into a shared buffer
   * rather than kept one by one: a peer trickling a frame in 1-byte chunks would otherwise
   * make every byte cost a Buffer object (a few hundred bytes of memory each).
   */
  #hold(rest: Buffer): void {
    if (rest.length === 0) return;
    this.#buffered += rest.length;
    const chunks = this.#chunks;
    if (rest.length >= COALESCE_BELOW) {
      chunks.push(rest);
      return;
    }
    let tail = this.#tail;
    if (tail === undefined || this.#tailUsed + rest.length > tail.length) {
      tail = Buffer.allocUnsafeSlow(TAIL_BYTES);
      this.#tail = tail;
      this.#tailUsed = 0;
    }
    const at = this.#tailUsed;
    rest.copy(tail, at);
    this.#tailUsed = at + rest.length;
    const last = chunks[chunks.length - 1];
    if (
      last !== undefined &&
      last.buffer === tail.buffer &&
      last.byteOffset + last.length === tail.byteOffset + at
    ) {
      // The last chunk held ends where these bytes were written: extend it.
      chunks[chunks.length - 1] = tail.subarray(last.byteOffset - tail.byteOffset, this.#tailUsed);
    } else {
      chunks.push(tail.subarray(at, this.#tailUsed));
    }
  }

  #check(len: number): number {
    if (len > this.#limit) {
      this.#failed = true;
      throw new MusterError(
        ErrorCode.FRAME_TOO_LARGE,
        this.#first
          ? `first frame of ${len} bytes announced, limit before the handshake is ${this.#limit} bytes`
          : `frame of ${len} bytes announced, limit is ${this.#limit} bytes`,
      );
    }
    if (len < HEADER_BYTES) {
      this.#failed = true;
      throw new MusterError(
        ErrorCode.PROTOCOL_ERROR,
        `frame of ${len} bytes announced, shorter than the ${HEADER_BYTES}-byte header`,
      );
    }
    if (this.#first) {
      this.#first = false;
      this.#limit = this.#maxFrameBytes;
    }
    return len;
  }

  #peekLength(): number {
    const first = this.#chunks[0]!;
    if (first.length >= LENGTH_PREFIX_BYTES) return first.readUInt32BE(0);
    const head = Buffer.concat(this.#chunks, Math.min(this.#buffered, 16));
    return head.readUInt32BE(0);
  }

  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      // Copy from as many chunks as needed, then drop them with one splice: shifting them one
      // by one costs time in the number of chunks held, per chunk (a frame trickled in 1-byte
      // chunks would take quadratic time).
      out = Buffer.allocUnsafe(n);
      const chunks = this.#chunks;
      let filled = 0;
      let used = 0;
      while (filled < n) {
        const c = chunks[used]!;
        const take = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, take);
        filled += take;
        if (take === c.length) used++;
        else chunks[used] = c.subarray(take);
      }
      chunks.splice(0, used);
    }
    this.#buffered -= n;
    return out;
  }
}
