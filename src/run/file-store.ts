import { createHash } from "node:crypto";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { FileRef } from "./protocol.js";

/** Bytes an instance keeps of complete files, over every run (oldest used dropped first). */
export const DEFAULT_STORE_BYTES = 64 * 1024 * 1024;
/** Bytes of files being received at once. */
export const DEFAULT_PARTIAL_BYTES = 64 * 1024 * 1024;

interface Partial {
  buf: Buffer;
  received: number;
}

/**
 * An instance's files, by content (sha256): each file crosses once per instance, however many
 * runs and stages use it, and is verified before any stage reads it. Bounded in bytes; the
 * least recently used complete files go first.
 */
export class FileStore {
  /** Complete, verified files; insertion order is use order (re-inserted on use). */
  readonly #files = new Map<string, Buffer>();
  readonly #partial = new Map<string, Partial>();
  #bytes = 0;
  #partialBytes = 0;

  constructor(
    readonly maxBytes = DEFAULT_STORE_BYTES,
    readonly maxPartialBytes = DEFAULT_PARTIAL_BYTES,
  ) {}

  /** The sha256 of those of `files` not held (each once). */
  missing(files: FileRef[]): string[] {
    const out = new Set<string>();
    for (const f of files) if (!this.#files.has(f.sha256)) out.add(f.sha256);
    return [...out];
  }

  /** One chunk of a file; the file is verified and kept once its last byte arrives. */
  put(sha256: string, size: number, offset: number, data: Buffer): void {
    if (this.#files.has(sha256)) return;
    let p = this.#partial.get(sha256);
    if (p === undefined) {
      if (size > this.maxBytes)
        throw new MusterError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `a file of ${size} bytes is larger than this instance keeps (${this.maxBytes})`,
        );
      if (this.#partialBytes + size > this.maxPartialBytes)
        throw new MusterError(
          ErrorCode.RESOURCE_EXHAUSTED,
          `more than ${this.maxPartialBytes} bytes of files being received at once`,
        );
      p = { buf: Buffer.alloc(size), received: 0 };
      this.#partial.set(sha256, p);
      this.#partialBytes += size;
    }
    if (p.buf.length !== size)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `file ${sha256.slice(0, 12)}: size changed between chunks`,
      );
    // Chunks come in order on one session: anything else is a confused sender.
    if (offset !== p.received || offset + data.length > size)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `file ${sha256.slice(0, 12)}: chunk at ${offset} (+${data.length}) when ${p.received} of ${size} bytes were received`,
      );
    data.copy(p.buf, offset);
    p.received += data.length;
    if (p.received < size) return;
    this.#partial.delete(sha256);
    this.#partialBytes -= size;
    const got = createHash("sha256").update(p.buf).digest("hex");
    if (got !== sha256)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `file ${sha256.slice(0, 12)}: received bytes hash to ${got.slice(0, 12)}: discarded`,
      );
    this.#keep(sha256, p.buf);
  }

  /** The files of a stage by path, each verified; throws naming the first one not held. */
  take(files: FileRef[]): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>();
    for (const f of files) {
      const b = this.#files.get(f.sha256);
      if (b === undefined)
        throw new MusterError(
          ErrorCode.INVALID_ARGUMENT,
          `file ${f.path} (${f.sha256.slice(0, 12)}) was not received`,
        );
      // Used now: it moves to the end, last to be dropped.
      this.#files.delete(f.sha256);
      this.#files.set(f.sha256, b);
      out.set(f.path, b);
    }
    return out;
  }

  /** Drops a file being received (its sender is gone). */
  abandon(sha256: string): void {
    const p = this.#partial.get(sha256);
    if (p === undefined) return;
    this.#partial.delete(sha256);
    this.#partialBytes -= p.buf.length;
  }

  get bytes(): number {
    return this.#bytes;
  }

  #keep(sha256: string, buf: Buffer): void {
    for (const [k, b] of this.#files) {
      if (this.#bytes + buf.length <= this.maxBytes) break;
      this.#files.delete(k);
      this.#bytes -= b.length;
    }
    this.#files.set(sha256, buf);
    this.#bytes += buf.length;
  }
}

/** The sha256 of `bytes`, hex. */
export function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
