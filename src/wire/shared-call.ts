import { encodeCall } from "./codec.js";
import { HEADER_BYTES, type Payload } from "./frame.js";

/**
 * One fan-out's CALL, encoded once. Every member's frame is a copy of it with the member's call
 * id written in (seq and ack are the session's, written when it is sent), so the method name
 * and the payload are encoded once per fan-out instead of once per agent. The bytes are those
 * `encodeCall` would give.
 */
export class SharedCall {
  readonly #template: Buffer;

  constructor(
    readonly method: string,
    readonly timeoutMs: number,
    readonly payload: Payload,
  ) {
    this.#template = encodeCall(1, 0, 0, timeoutMs, method, payload);
  }

  /** Size in bytes of each member's frame. */
  get frameBytes(): number {
    return this.#template.length;
  }

  /** True when this was encoded from exactly these arguments (the same payload object). */
  matches(method: string, timeoutMs: number, payload: Payload): boolean {
    return this.payload === payload && this.method === method && this.timeoutMs === timeoutMs;
  }

  /** A new frame for call `id` (a u32, as the endpoint allocates them). */
  frame(id: number): Buffer {
    const t = this.#template;
    const f = Buffer.allocUnsafe(t.length);
    t.copy(f);
    f.writeUInt32BE(id, HEADER_BYTES);
    return f;
  }
}
