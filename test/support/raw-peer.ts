// A hand-driven peer over real TCP: it speaks frames directly, so a test can break the rules
// the library keeps (ignore credit, never acknowledge, send what no honest peer sends).
import { connect, type Socket } from "node:net";
import { VERSION } from "../../src/internal/version.js";
import { decodeFrame, encodeFrame, encodeValue } from "../../src/wire/codec.js";
import { type CloseBody, type Frame, FrameType, type PeerRole } from "../../src/wire/frame.js";
import { LengthPrefixDecoder, lengthPrefix } from "../../src/wire/length-prefix.js";
import { until } from "./fleet.js";

/** A frame as this test peer sends it: seq and ack are filled in. */
type Outgoing = Frame extends infer F ? (F extends Frame ? Omit<F, "seq" | "ack"> : never) : never;

export class RawPeer {
  readonly frames: Frame[] = [];
  closed = false;
  /** Bytes of frames received (without length prefixes). */
  bytesIn = 0;
  /** When true (the default), sequenced frames received are acknowledged at once. */
  autoAck = true;
  #seq = 0;
  #lastRecv = 0;
  readonly #decoder = new LengthPrefixDecoder(64 * 1024 * 1024);

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk) =>
      this.#decoder.push(chunk, (f) => {
        this.bytesIn += f.length;
        const frame = decodeFrame(f, { maxJsonDepth: 10_000 });
        if (frame.seq > 0) this.#lastRecv = frame.seq;
        // Items are counted, not kept: a flood must not fill the test's own memory.
        if (frame.type === FrameType.ITEM) this.items++;
        else this.frames.push(frame);
        if (this.autoAck && frame.seq > 0)
          this.#write({ type: FrameType.ACK, seq: 0, ack: this.#lastRecv } as Frame);
      }),
    );
    socket.on("close", () => {
      this.closed = true;
    });
    socket.on("error", () => {});
  }
  /** ITEM frames received. */
  items = 0;

  static open(url: string): Promise<RawPeer> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const s = connect(Number(port), hostname, () => resolve(new RawPeer(s)));
      s.once("error", reject);
    });
  }

  /** Opens a connection and completes the handshake as `role` `name`. */
  static async join(
    url: string,
    role: PeerRole,
    name: string,
    extra: { auth?: string; labels?: Record<string, string>; features?: string[] } = {},
  ): Promise<RawPeer> {
    const p = await RawPeer.open(url);
    p.#write({
      type: FrameType.HELLO,
      seq: 0,
      ack: 0,
      hello: {
        role,
        name,
        labels: extra.labels ?? {},
        version: VERSION,
        ...(extra.auth !== undefined ? { auth: extra.auth } : {}),
        ...(extra.features !== undefined ? { features: extra.features } : {}),
      },
    });
    await p.waitFor((f) => f.type === FrameType.WELCOME || f.type === FrameType.CLOSE, "WELCOME");
    const close = p.closeFrame();
    if (close) throw new Error(`refused: ${close.code} ${close.message}`);
    return p;
  }

  #write(frame: Frame): void {
    if (!this.socket.destroyed) this.socket.write(lengthPrefix(encodeFrame(frame)));
  }

  /** Sends a frame; sequenced ones get the next seq, every one the current ack. */
  send(frame: Outgoing): void {
    const seq = frame.type >= 0x10 ? ++this.#seq : 0;
    this.#write({ ...frame, seq, ack: this.#lastRecv } as Frame);
  }

  /** Sends many frames in one write (a flood without a system call per frame). */
  sendMany(frames: Outgoing[]): void {
    const bufs = frames.map((frame) => {
      const seq = frame.type >= 0x10 ? ++this.#seq : 0;
      return lengthPrefix(encodeFrame({ ...frame, seq, ack: this.#lastRecv } as Frame));
    });
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(bufs));
  }

  /** A CALL with a JSON request. */
  call(id: number, method: string, request: unknown, timeoutMs = 10_000): void {
    this.send({ type: FrameType.CALL, id, timeoutMs, method, payload: encodeValue(request) });
  }

  /** The RESULT of call `id`, once it arrives. */
  async result(id: number, ms = 10_000): Promise<Frame & { type: typeof FrameType.RESULT }> {
    const f = await this.waitFor((x) => x.type === FrameType.RESULT && x.id === id, `RESULT ${id}`, ms);
    return f as Frame & { type: typeof FrameType.RESULT };
  }

  async waitFor(pred: (f: Frame) => boolean, what: string, ms = 10_000): Promise<Frame> {
    let found: Frame | undefined;
    await until(
      () => {
        found = this.frames.find(pred);
        return found !== undefined || this.closed;
      },
      ms,
      what,
    );
    if (found === undefined) found = this.frames.find(pred);
    if (found === undefined) throw new Error(`connection closed before ${what}`);
    return found;
  }

  closeFrame(): CloseBody | undefined {
    const f = this.frames.find((x) => x.type === FrameType.CLOSE);
    return f?.type === FrameType.CLOSE ? f.close : undefined;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
