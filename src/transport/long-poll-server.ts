import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { formatHostPort, isLoopbackAddress } from "../internal/host-port.js";
import { encodeFrame } from "../wire/codec.js";
import { CloseCode, FrameType } from "../wire/frame.js";
import { LENGTH_PREFIX_BYTES, LengthPrefixDecoder } from "../wire/length-prefix.js";
import { LinkState } from "./link-state.js";
import { BATCH_HEADER, CLOSED_HEADER, maxBodyBytes, takeBatch } from "./long-poll-wire.js";
import type { TrafficCounters } from "./traffic.js";
import type { Transport, TransportHandler, TransportOptions } from "./types.js";

/** A link without a GET for this long after its last one ended is closed. */
const POLL_GAP_MS = 15_000;

export function answer(res: ServerResponse, status: number, error: string, message: string): void {
  if (res.headersSent) return void res.destroy();
  const body = `${JSON.stringify({ error, message })}\n`;
  res.writeHead(status, {
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

/** The server's end of a long-polling link (see long-poll-wire.ts). */
export class PollServerTransport implements Transport {
  readonly kind: string;
  readonly remoteAddress: string;
  readonly isLoopback: boolean;
  readonly sid: string;
  readonly #link = new LinkState(this);
  readonly #traffic: TrafficCounters;
  readonly #maxFrame: number;
  readonly #firstLimit: number | undefined;
  readonly #highWater: number;
  readonly #bodyLimit: number;
  readonly #pollMs: number;
  readonly #onGone: () => void;
  #queue: Uint8Array[] = [];
  #queueBytes = 0;
  /** The last batch sent, kept until a GET acknowledges it. */
  #sent = 0;
  #unacked: Buffer | undefined;
  /** The number of the last POST batch received. */
  #received = 0;
  #get: { res: ServerResponse; timer: NodeJS.Timeout } | undefined;
  #posting = false;
  #flushScheduled = false;
  #wantDrain = false;
  #gapTimer: NodeJS.Timeout | undefined;
  #closedCode: CloseCode | undefined;

  constructor(
    kind: string,
    req: IncomingMessage,
    options: TransportOptions & { pollMs: number },
    traffic: TrafficCounters,
    onGone: () => void,
  ) {
    this.kind = kind;
    this.sid = randomBytes(16).toString("base64url");
    const address = req.socket.remoteAddress ?? "";
    this.remoteAddress = formatHostPort(address || "unknown", req.socket.remotePort ?? 0);
    this.isLoopback = isLoopbackAddress(address);
    const maxFrame = options.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
    this.#maxFrame = maxFrame;
    this.#firstLimit = options.firstFrameMaxBytes;
    this.#bodyLimit = maxBodyBytes(maxFrame);
    this.#highWater = options.highWaterMarkBytes ?? DEFAULTS.highWaterMarkBytes;
    this.#pollMs = options.pollMs;
    this.#traffic = traffic;
    this.#onGone = onGone;
    this.#armGap();
  }

  get open(): boolean {
    return this.#link.open;
  }

  get bufferedBytes(): number {
    return this.#queueBytes + (this.#unacked?.length ?? 0);
  }

  setHandler(handler: TransportHandler): void {
    this.#link.setHandler(handler);
  }

  send(frame: Uint8Array): boolean {
    if (!this.#link.open) return false;
    this.#queue.push(frame);
    this.#queueBytes += LENGTH_PREFIX_BYTES + frame.length;
    this.#traffic.framesOut++;
    this.#traffic.bytesOut += frame.length;
    // Frames of one tick go out in one answer.
    if (this.#get && !this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(() => {
        this.#flushScheduled = false;
        this.#answerGet();
      });
    }
    const ok = this.bufferedBytes <= this.#highWater;
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  sendMany(frames: readonly Uint8Array[]): boolean {
    let ok = this.#link.open;
    for (const f of frames) ok = this.send(f);
    return ok;
  }

  close(code: CloseCode = CloseCode.NORMAL, message = "closed"): void {
    if (!this.#link.open) return;
    this.#link.shut({ code, message });
    this.#closedCode = code;
    // The next GET (or the one held now) takes what is queued and the close.
    if (this.#get) this.#answerGet();
  }

  /** @internal See LinkOwner: the link is gone, whatever a client still asks. */
  _kill(): void {
    const get = this.#get;
    this.#get = undefined;
    if (get) {
      clearTimeout(get.timer);
      get.res.destroy();
    }
    clearTimeout(this.#gapTimer);
    this.#queue = [];
    this.#queueBytes = 0;
    this.#unacked = undefined;
    this.#onGone();
    this.#link.gone({ code: CloseCode.TRANSPORT_ERROR, message: "link closed" });
  }

  #armGap(): void {
    clearTimeout(this.#gapTimer);
    this.#gapTimer = setTimeout(() => {
      this.#link.shut({
        code: CloseCode.TRANSPORT_ERROR,
        message: `no poll request for ${Math.round((this.#pollMs + POLL_GAP_MS) / 1000)} s`,
      });
      this._kill();
    }, this.#pollMs + POLL_GAP_MS);
    this.#gapTimer.unref();
  }

  /** Closes the link for a request that breaks the rules, answering it `status`. */
  #refuse(res: ServerResponse, status: number, code: CloseCode, error: string, message: string): void {
    answer(res, status, error, message);
    if (!this.#link.open) return;
    this.#link.shut({ code, message });
    this.#closedCode = code;
    // What the peer should read: why, in a CLOSE frame, on the next GET.
    this.#queue.push(encodeFrame({ type: FrameType.CLOSE, seq: 0, ack: 0, close: { code, message } }));
    if (this.#get) this.#answerGet();
  }

  handleGet(res: ServerResponse, seen: number): void {
    if (this.#get) {
      this.#refuse(res, 400, CloseCode.PROTOCOL_ERROR, "overlap", "a poll request while another is held");
      return;
    }
    if (seen === this.#sent) {
      this.#unacked = undefined; // acknowledged
      this.#checkDrain();
    } else if (!(seen === this.#sent - 1 && this.#unacked !== undefined)) {
      this.#refuse(
        res,
        400,
        CloseCode.PROTOCOL_ERROR,
        "bad_ack",
        `seen=${seen}, the last batch sent is ${this.#sent}`,
      );
      return;
    }
    clearTimeout(this.#gapTimer);
    const timer = setTimeout(() => this.#answerGet(), this.#pollMs);
    this.#get = { res, timer };
    res.once("close", () => {
      if (this.#get?.res !== res) return;
      clearTimeout(this.#get.timer);
      this.#get = undefined;
      if (this.#link.open) this.#armGap();
    });
    // A batch lost on the way is sent again; otherwise anything queued goes now.
    if (this.#unacked !== undefined || this.#queue.length > 0 || !this.#link.open) this.#answerGet();
  }

  #answerGet(): void {
    const get = this.#get;
    if (!get) return;
    this.#get = undefined;
    clearTimeout(get.timer);
    let body = this.#unacked;
    if (body === undefined && this.#queue.length > 0) {
      const batch = takeBatch(this.#queue, this.#bodyLimit);
      this.#queue.splice(0, batch.count);
      this.#queueBytes -= batch.body.length;
      body = batch.body;
      this.#sent++;
      this.#unacked = body;
    }
    const last = !this.#link.open && this.#queue.length === 0;
    const headers: Record<string, string | number> = {
      "content-type": "application/octet-stream",
      "cache-control": "no-store",
      "content-length": body?.length ?? 0,
      [BATCH_HEADER]: this.#sent,
    };
    if (last) headers[CLOSED_HEADER] = this.#closedCode ?? CloseCode.NORMAL;
    get.res.writeHead(200, headers);
    get.res.end(body);
    if (last) {
      get.res.once("finish", () => this._kill());
      return;
    }
    if (this.#link.open) this.#armGap();
  }

  #checkDrain(): void {
    if (!this.#wantDrain || !this.#link.open || this.bufferedBytes > this.#highWater) return;
    this.#wantDrain = false;
    this.#link.handler?.onDrain();
  }

  handlePost(req: IncomingMessage, res: ServerResponse, n: number): void {
    if (this.#posting) {
      this.#refuse(res, 400, CloseCode.PROTOCOL_ERROR, "overlap", "a send while another is in progress");
      return;
    }
    const length = Number(req.headers["content-length"] ?? Number.NaN);
    if (length > this.#bodyLimit) {
      this.#refuse(
        res,
        413,
        CloseCode.FRAME_TOO_LARGE,
        "too_large",
        `a body of ${length} bytes is over the limit of ${this.#bodyLimit}`,
      );
      return;
    }
    const repeat = n <= this.#received;
    if (!repeat && n !== this.#received + 1) {
      this.#refuse(res, 400, CloseCode.PROTOCOL_ERROR, "bad_batch", `batch ${n} after ${this.#received}`);
      return;
    }
    this.#posting = true;
    // A batch is delivered whole once its body has arrived: a POST cut half-way delivers nothing,
    // and its retry (the same n) delivers the batch once. Bounded by the body limit.
    const frames: Buffer[] = [];
    const decoder = new LengthPrefixDecoder(
      this.#maxFrame,
      this.#received === 0 ? this.#firstLimit : undefined,
    );
    let size = 0;
    let failed = false;
    let ended = false;
    req.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > this.#bodyLimit) {
        failed = true;
        this.#refuse(
          res,
          413,
          CloseCode.FRAME_TOO_LARGE,
          "too_large",
          `a body over the limit of ${this.#bodyLimit} bytes`,
        );
        return;
      }
      if (repeat || !this.#link.open) return; // a retried batch: already delivered
      try {
        decoder.push(chunk, (frame) => frames.push(frame));
      } catch (err) {
        failed = true;
        const tooLarge = err instanceof MusterError && err.code === ErrorCode.FRAME_TOO_LARGE;
        const message = err instanceof MusterError ? err.rawMessage : String(err);
        this.#refuse(
          res,
          tooLarge ? 413 : 400,
          tooLarge ? CloseCode.FRAME_TOO_LARGE : CloseCode.PROTOCOL_ERROR,
          tooLarge ? "too_large" : "bad_frame",
          message,
        );
      }
    });
    req.on("end", () => {
      ended = true;
      this.#posting = false;
      if (failed) return;
      if (!repeat && decoder.bufferedBytes > 0) {
        this.#refuse(res, 400, CloseCode.PROTOCOL_ERROR, "truncated", "the body ends inside a frame");
        return;
      }
      if (!repeat) {
        this.#received = n;
        for (const frame of frames) {
          if (!this.#link.open) break;
          this.#traffic.framesIn++;
          this.#traffic.bytesIn += frame.length;
          this.#link.deliver(frame);
        }
      }
      res.writeHead(200, { "cache-control": "no-store", "content-length": 0 });
      res.end();
    });
    // A request cut before its end: nothing of it was delivered; the client sends it again.
    req.on("close", () => {
      if (!ended) this.#posting = false;
    });
    req.on("error", () => {}); // an aborted request: 'close' says enough
  }

  handleDelete(res: ServerResponse): void {
    res.writeHead(200, { "cache-control": "no-store", "content-length": 0 });
    res.end();
    this.#link.shut({ code: CloseCode.REMOTE_CLOSED, message: "peer closed the link" });
    this._kill();
  }
}
