import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";

/**
 * Splits a byte stream into lines at `\n`. A line longer than `maxBytes` (without its
 * newline) is refused with RESOURCE_EXHAUSTED as soon as it is known to be too long, before
 * the rest of it is buffered: after that the stream cannot be resynchronised and the caller
 * should close it.
 */
export class LineSplitter {
  readonly #max: number;
  #parts: Buffer[] = [];
  #size = 0;
  #failed = false;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** Bytes held of a line not yet ended. */
  get pending(): number {
    return this.#size;
  }

  /**
   * Calls `onLine` with each line that `chunk` completes, without its `\n`, and its length in
   * bytes, in order. Lines before an overlong one are delivered before the error is thrown.
   */
  push(chunk: Buffer, onLine: (line: string, bytes: number) => void): void {
    if (this.#failed) throw new MusterError(ErrorCode.INVALID_ARGUMENT, "the stream already failed");
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const length = this.#size + nl - start;
      if (length > this.#max) this.#overflow(length);
      let line: string;
      if (this.#size === 0) line = chunk.toString("utf8", start, nl);
      else {
        this.#parts.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.#parts, length).toString("utf8");
        this.#parts = [];
        this.#size = 0;
      }
      onLine(line, length);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.length - start;
      if (this.#size + rest > this.#max) this.#overflow(this.#size + rest);
      // Copy: the caller may reuse the chunk's memory.
      this.#parts.push(Buffer.from(chunk.subarray(start)));
      this.#size += rest;
    }
  }

  #overflow(atLeast: number): never {
    this.#failed = true;
    this.#parts = [];
    this.#size = 0;
    throw new MusterError(
      ErrorCode.RESOURCE_EXHAUSTED,
      `line longer than ${this.#max} bytes (at least ${atLeast} without a newline)`,
    );
  }
}
