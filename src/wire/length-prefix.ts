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

/**
 * Splits a byte stream into frames. Each frame's length is checked against `maxFrameBytes`
 * as soon as its 4-byte prefix has arrived, before any buffer for the frame is allocated.
 * After an error the decoder is poisoned: the connection must be closed.
 */
export class LengthPrefixDecoder {
  readonly #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #need = -1;
  #failed = false;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
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
    const rest = offset === 0 ? chunk : chunk.subarray(offset);
    this.#chunks.push(rest);
    this.#buffered += rest.length;
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

  #check(len: number): number {
    if (len > this.#maxFrameBytes) {
      this.#failed = true;
      throw new MusterError(
        ErrorCode.FRAME_TOO_LARGE,
        `frame of ${len} bytes announced, limit is ${this.#maxFrameBytes} bytes`,
      );
    }
    if (len < HEADER_BYTES) {
      this.#failed = true;
      throw new MusterError(
        ErrorCode.PROTOCOL_ERROR,
        `frame of ${len} bytes announced, shorter than the header`,
      );
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
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.#chunks[0]!;
        const take = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, take);
        filled += take;
        if (take === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(take);
      }
    }
    this.#buffered -= n;
    return out;
  }
}
