/**
 * Sent-but-unacknowledged sequenced frames of one direction of a session, oldest first.
 * Sequence numbers are contiguous, so only the first one is stored: frame i has seq
 * `firstSeq + i`. Bounded by frames and bytes; the owner checks `hasRoom` before `push`.
 */
export class ReplayBuffer {
  #frames: Uint8Array[] = [];
  #head = 0;
  #bytes = 0;
  /** Seq of the frame at #head (or of the next frame pushed, when empty). */
  #firstSeq = 1;
  readonly maxFrames: number;
  readonly maxBytes: number;

  constructor(maxFrames: number, maxBytes: number) {
    this.maxFrames = maxFrames;
    this.maxBytes = maxBytes;
  }

  get frames(): number {
    return this.#frames.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Seq of the oldest frame kept (or of the next frame, when empty). */
  get firstSeq(): number {
    return this.#firstSeq;
  }

  /** True when a frame of `size` bytes fits. An empty buffer always takes one frame. */
  hasRoom(size: number): boolean {
    const n = this.frames;
    if (n === 0) return true;
    return n < this.maxFrames && this.#bytes + size <= this.maxBytes;
  }

  /** Appends the frame with seq `firstSeq + frames`. */
  push(frame: Uint8Array): void {
    this.#frames.push(frame);
    this.#bytes += frame.length;
  }

  /** Drops every frame with seq ≤ `ack`. Returns how many were dropped. */
  ackTo(ack: number): number {
    const n = Math.min(ack - this.#firstSeq + 1, this.frames);
    if (n <= 0) return 0;
    for (let i = 0; i < n; i++) {
      this.#bytes -= this.#frames[this.#head]!.length;
      this.#frames[this.#head] = EMPTY;
      this.#head++;
    }
    this.#firstSeq += n;
    // Compact once the dead prefix dominates, keeping push/shift amortised O(1).
    if (this.#head > 1024 && this.#head * 2 > this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head);
      this.#head = 0;
    } else if (this.#head === this.#frames.length) {
      this.#frames.length = 0; // reuse the array: on a request/reply link it empties on every ack
      this.#head = 0;
    }
    return n;
  }

  /** True when every frame with seq > `ack` is still here (`after(ack)` would not be undefined). */
  covers(ack: number): boolean {
    return ack + 1 >= this.#firstSeq && ack + 1 - this.#firstSeq <= this.frames;
  }

  /** Frames with seq > `ack`, oldest first, or undefined when some of them were already dropped. */
  after(ack: number): Uint8Array[] | undefined {
    if (!this.covers(ack)) return undefined;
    return this.#frames.slice(this.#head + ack + 1 - this.#firstSeq);
  }

  /** Forgets everything; the next frame pushed has seq `nextSeq`. */
  reset(nextSeq = 1): void {
    this.#frames = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#firstSeq = nextSeq;
  }
}

const EMPTY = new Uint8Array(0);
