import type { Duplex } from "node:stream";

/**
 * A chunk costs at least this much: ws's receiver keeps every chunk it reads as a Buffer until
 * its frame is whole, and a 1-byte chunk takes about 500 bytes of memory (measured). The TCP
 * transport copies such chunks together instead (see LengthPrefixDecoder).
 */
const MIN_CHUNK_COST = 512;
/** Room above the first message's limit: its WebSocket header, and a few small reads. */
const SLACK_BYTES = 8 * MIN_CHUNK_COST;
/** The longest WebSocket frame header before its mask: 2 bytes and a 64-bit length. */
const MAX_HEADER_BYTES = 10;

/**
 * Bounds what a WebSocket peer makes the server hold before its first message (a HELLO) is
 * whole, as the TCP transport's first-frame limit does: ws itself only knows `maxPayload`,
 * one limit for the connection's life (`maxFrameBytes`, 1 MiB).
 *
 * It reads the raw socket alongside ws: a first frame announcing more than `limitBytes` is
 * refused from its header, and the reads made before the first message is whole may cost at
 * most `limitBytes` plus a little, each read counting at least 512 bytes. That bounds a slowly
 * dripped message (one byte per read), a message in many small fragments (ws keeps each one),
 * and control frames (pings, answered with as many pongs) sent instead of a HELLO.
 */
export class FirstMessageGuard {
  readonly #socket: Duplex;
  readonly #limit: number;
  readonly #onOver: (message: string) => void;
  #cost = 0;
  #reads = 0;
  #bytes = 0;
  /** The stream's first bytes until the first frame's length is known, then undefined. */
  #head: Buffer | undefined = Buffer.alloc(0);
  #done = false;

  /**
   * Starts counting the reads of `socket`; `onOver` is called once, with a message for the
   * peer, when the first message goes over its limit.
   */
  constructor(socket: Duplex, limitBytes: number, onOver: (message: string) => void) {
    this.#socket = socket;
    this.#limit = limitBytes;
    this.#onOver = onOver;
    socket.on("data", this.#onData);
  }

  /** The first message is whole (or the link is closing): stop counting. */
  stop(): void {
    if (this.#done) return;
    this.#done = true;
    this.#head = undefined;
    this.#socket.off("data", this.#onData);
  }

  readonly #onData = (chunk: Buffer): void => {
    // ws reads the chunk first (its listener came first) and may have completed the message.
    if (this.#done) return;
    this.#reads++;
    this.#bytes += chunk.length;
    this.#cost += Math.max(MIN_CHUNK_COST, chunk.length);
    const announced = this.#announced(chunk);
    if (announced !== undefined && announced > this.#limit) {
      this.#over(
        `first message of ${announced} bytes announced, limit before the handshake is ${this.#limit} bytes`,
      );
    } else if (this.#cost > this.#limit + SLACK_BYTES) {
      this.#over(
        `first message not whole after ${this.#bytes} bytes in ${this.#reads} reads; limit before the handshake is ${this.#limit} bytes`,
      );
    }
  };

  #over(message: string): void {
    this.stop();
    this.#onOver(message);
  }

  /** The payload length of the stream's first frame, once its header is in (data frames only). */
  #announced(chunk: Buffer): number | undefined {
    if (this.#head === undefined) return undefined;
    const head = Buffer.concat([this.#head, chunk.subarray(0, MAX_HEADER_BYTES - this.#head.length)]);
    if (head.length < 2) {
      this.#head = head;
      return undefined;
    }
    const opcode = head[0]! & 0x0f;
    const len7 = head[1]! & 0x7f;
    const need = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
    if (head.length < need) {
      this.#head = head;
      return undefined;
    }
    this.#head = undefined;
    if (opcode !== 0x1 && opcode !== 0x2) return undefined; // a control frame: the budget applies
    if (len7 < 126) return len7;
    if (len7 === 126) return head.readUInt16BE(2);
    return head.readUInt32BE(2) * 2 ** 32 + head.readUInt32BE(6);
  }
}
