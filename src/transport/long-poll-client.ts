import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { isLoopbackAddress } from "../internal/host-port.js";
import { CloseCode } from "../wire/frame.js";
import { LENGTH_PREFIX_BYTES, LengthPrefixDecoder } from "../wire/length-prefix.js";
import { LinkState } from "./link-state.js";
import { BATCH_HEADER, CLOSED_HEADER, POLL_PATH, type PollOpen, takeBatch } from "./long-poll-wire.js";
import { type TrafficCounters, trafficCounters } from "./traffic.js";
import type { DialOptions, Transport, TransportHandler } from "./types.js";

/** A request cut on the way (a proxy's idle timeout, a reset) is tried again for this long. */
const RETRY_WINDOW_MS = 10_000;
const RETRY_DELAY_MS = 100;
/** The most an open or a POST answer may hold; a GET's body is read frame by frame instead. */
const SMALL_BODY_BYTES = 64 * 1024;
/** A request silent for this long fails (a GET gets the server's poll time on top). */
const REQUEST_IDLE_MS = 10_000;

interface Endpoint {
  url: URL;
  secure: boolean;
  agent: HttpAgent;
  tls: DialOptions["tls"];
}

/** A status the server answered with: not worth trying again. */
class Answered extends Error {
  constructor(
    readonly status: number,
    body: string,
  ) {
    super(`HTTP ${status}: ${body.trim().slice(0, 200)}`);
  }
}

/** One request; resolves with the response once its headers are in. */
function send(
  e: Endpoint,
  method: string,
  query: string,
  body?: Buffer,
  signal?: AbortSignal,
  idleMs = REQUEST_IDLE_MS,
): Promise<IncomingMessage> {
  const target = new URL(e.url);
  target.search = query;
  const tls = e.tls ?? {};
  return new Promise((resolve, reject) => {
    const options = {
      method,
      agent: e.agent,
      headers: { "content-length": body?.length ?? 0, "content-type": "application/octet-stream" },
      ...(signal ? { signal } : {}),
      ...(e.secure
        ? {
            ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
            ...(tls.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
            ...(tls.insecure ? { rejectUnauthorized: false } : {}),
            ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
          }
        : {}),
    };
    const req = (e.secure ? httpsRequest : httpRequest)(target, options, resolve);
    req.on("error", reject);
    // A connection that goes silent (a half-open one, a black hole) fails the request, which is
    // then tried again on a new connection.
    req.setTimeout(idleMs, () => req.destroy(new Error(`no answer for ${idleMs} ms`)));
    req.end(body);
  });
}

/** Reads a small body whole (an error's JSON, the open answer). */
async function readSmall(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > SMALL_BODY_BYTES) {
      res.destroy();
      throw new MusterError(ErrorCode.PROTOCOL_ERROR, "an answer of the long-polling server is too large");
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The client's end of a long-polling link (see long-poll-wire.ts). */
class PollClientTransport implements Transport {
  readonly kind: string;
  readonly remoteAddress: string;
  readonly isLoopback: boolean;
  readonly #e: Endpoint;
  readonly #sid: string;
  readonly #link = new LinkState(this);
  readonly #traffic: TrafficCounters;
  readonly #maxFrame: number;
  readonly #highWater: number;
  readonly #bodyLimit: number;
  readonly #pollMs: number;
  /** Frames delivered from a batch whose answer was cut. */
  #partial: { batch: number; count: number } | undefined;
  readonly #stop = new AbortController();
  #queue: Uint8Array[] = [];
  #queueBytes = 0;
  #inFlight = 0;
  #posted = 0;
  #posting = false;
  #seen = 0;
  #wantDrain = false;
  #deleted = false;

  constructor(kind: string, e: Endpoint, open: PollOpen, options: DialOptions) {
    this.kind = kind;
    this.#e = e;
    this.#sid = open.sid;
    this.remoteAddress = e.url.host;
    this.isLoopback = isLoopbackAddress(e.url.hostname.replace(/^\[(.*)\]$/, "$1"));
    this.#traffic = trafficCounters(options.traffic, kind);
    this.#maxFrame = options.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
    this.#highWater = options.highWaterMarkBytes ?? DEFAULTS.highWaterMarkBytes;
    this.#bodyLimit = open.maxBodyBytes;
    this.#pollMs = open.pollMs > 0 ? open.pollMs : 20_000;
    void this.#pollLoop();
  }

  get open(): boolean {
    return this.#link.open;
  }

  get bufferedBytes(): number {
    return this.#queueBytes + this.#inFlight;
  }

  setHandler(handler: TransportHandler): void {
    this.#link.setHandler(handler);
  }

  send(frame: Uint8Array): boolean {
    if (!this.#link.open) return false;
    this.#queue.push(frame);
    this.#queueBytes += LENGTH_PREFIX_BYTES + frame.length;
    if (!this.#posting) {
      this.#posting = true;
      // Frames of one tick go in one request.
      process.nextTick(() => void this.#postLoop());
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
    // Queued frames go first: the post loop says goodbye once they are out.
    if (!this.#posting) void this.#goodbye();
  }

  /** @internal See LinkOwner. */
  _kill(): void {
    this.#stop.abort();
    this.#e.agent.destroy();
    this.#link.gone({ code: CloseCode.TRANSPORT_ERROR, message: "link closed" });
  }

  #fail(code: CloseCode, message: string, error?: unknown): void {
    this.#link.shut({ code, message, ...(error instanceof Error ? { error } : {}) });
    if (!this.#deleted) void this.#goodbye();
  }

  async #goodbye(): Promise<void> {
    if (this.#deleted) return;
    this.#deleted = true;
    try {
      const res = await send(this.#e, "DELETE", `sid=${this.#sid}`);
      res.resume();
    } catch {}
    this._kill();
  }

  /** Tries `attempt` again while it fails on the way (not when the server answered). */
  async #retrying<T>(attempt: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (;;) {
      try {
        return await attempt();
      } catch (err) {
        if (err instanceof Answered || this.#stop.signal.aborted || Date.now() - started > RETRY_WINDOW_MS)
          throw err;
        await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      }
    }
  }

  async #postLoop(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#deleted) {
        const batch = takeBatch(this.#queue, this.#bodyLimit);
        const frames = this.#queue.splice(0, batch.count);
        this.#queueBytes -= batch.body.length;
        this.#inFlight = batch.body.length;
        this.#traffic.framesOut += frames.length;
        this.#traffic.bytesOut += batch.body.length - LENGTH_PREFIX_BYTES * frames.length;
        const n = this.#posted + 1;
        await this.#retrying(async () => {
          const res = await send(this.#e, "POST", `sid=${this.#sid}&n=${n}`, batch.body, this.#stop.signal);
          const text = await readSmall(res);
          if (res.statusCode !== 200) throw new Answered(res.statusCode ?? 0, text);
        });
        this.#posted = n;
        this.#inFlight = 0;
        if (this.#wantDrain && this.#link.open && this.bufferedBytes <= this.#highWater) {
          this.#wantDrain = false;
          this.#link.handler?.onDrain();
        }
      }
    } catch (err) {
      const status = err instanceof Answered ? err.status : 0;
      this.#fail(
        status === 413 ? CloseCode.FRAME_TOO_LARGE : CloseCode.TRANSPORT_ERROR,
        (err as Error).message,
        err,
      );
      return;
    } finally {
      this.#posting = false;
    }
    if (!this.#link.open) void this.#goodbye();
  }

  async #pollLoop(): Promise<void> {
    while (!this.#deleted && !this.#stop.signal.aborted) {
      let closed: string | undefined;
      try {
        closed = await this.#retrying(() => this.#pollOnce());
      } catch (err) {
        if (this.#stop.signal.aborted) return;
        this.#fail(CloseCode.TRANSPORT_ERROR, (err as Error).message, err);
        return;
      }
      if (closed !== undefined) {
        this.#link.shut({ code: CloseCode.REMOTE_CLOSED, message: `the server closed the link (${closed})` });
        this.#deleted = true; // the server has already forgotten it
        this._kill();
        return;
      }
    }
  }

  /** One GET: its frames delivered as they arrive; resolves with the close code when it is the last. */
  async #pollOnce(): Promise<string | undefined> {
    const res = await send(
      this.#e,
      "GET",
      `sid=${this.#sid}&seen=${this.#seen}`,
      undefined,
      this.#stop.signal,
      this.#pollMs + REQUEST_IDLE_MS,
    );
    if (res.statusCode !== 200) throw new Answered(res.statusCode ?? 0, await readSmall(res));
    const batch = Number(res.headers[BATCH_HEADER]);
    // A batch is read anew by each answer that carries it: frames delivered from an answer that
    // was cut are skipped when the batch comes again, and a batch read whole is not read twice.
    const skip =
      batch === this.#seen
        ? Number.POSITIVE_INFINITY
        : this.#partial?.batch === batch
          ? this.#partial.count
          : 0;
    const decoder = new LengthPrefixDecoder(this.#maxFrame);
    let index = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (skip === Number.POSITIVE_INFINITY || !this.#link.open) continue;
      try {
        decoder.push(chunk, (frame) => {
          if (index++ < skip || !this.#link.open) return;
          this.#partial = { batch, count: index };
          this.#traffic.framesIn++;
          this.#traffic.bytesIn += frame.length;
          this.#link.deliver(frame);
        });
      } catch (err) {
        const tooLarge = err instanceof MusterError && err.code === ErrorCode.FRAME_TOO_LARGE;
        this.#fail(
          tooLarge ? CloseCode.FRAME_TOO_LARGE : CloseCode.PROTOCOL_ERROR,
          (err as Error).message,
          err,
        );
        res.destroy();
        return undefined;
      }
    }
    if (!res.complete) throw new Error("the poll answer was cut");
    if (decoder.bufferedBytes > 0) throw new Error("the poll answer ends inside a frame");
    this.#seen = batch;
    this.#partial = undefined;
    const closed = res.headers[CLOSED_HEADER];
    return typeof closed === "string" ? closed : undefined;
  }
}

/**
 * Opens a long-polling link to `http://host:port/…` or `https://…` (the server's ws/wss
 * listener): POST to `<path>/muster/poll`, then one GET and at most one POST at a time.
 */
export async function dialLongPoll(url: URL, options: DialOptions): Promise<Transport> {
  const secure = url.protocol === "https:";
  if (!secure && url.protocol !== "http:")
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `dialLongPoll cannot dial ${url.protocol} URLs`);
  if (options.signal?.aborted)
    throw new MusterError(ErrorCode.CANCELLED, `dial to ${url.href} aborted`, {
      cause: options.signal.reason,
    });
  const base = new URL(url);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  const e: Endpoint = {
    url: new URL(POLL_PATH, base),
    secure,
    agent: secure
      ? new HttpsAgent({ keepAlive: true, maxSockets: 2 })
      : new HttpAgent({ keepAlive: true, maxSockets: 2 }),
    tls: options.tls,
  };
  try {
    const res = await send(e, "POST", "", undefined, options.signal);
    const text = await readSmall(res);
    if (res.statusCode !== 200) throw new Answered(res.statusCode ?? 0, text);
    const open = JSON.parse(text) as PollOpen;
    if (typeof open.sid !== "string" || !(open.maxBodyBytes > 0))
      throw new Error("the server's answer is not a long-polling link");
    return new PollClientTransport(secure ? "https" : "http", e, open, options);
  } catch (err) {
    e.agent.destroy();
    if (options.signal?.aborted)
      throw new MusterError(ErrorCode.CANCELLED, `dial to ${url.href} aborted`, {
        cause: options.signal.reason,
      });
    throw new MusterError(
      ErrorCode.UNAVAILABLE,
      `cannot reach ${url.href} by long-polling: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}
