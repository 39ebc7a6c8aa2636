import type { ServerResponse } from "node:http";

/** How often a quiet stream sends a comment, so that proxies and the client see it alive. */
export const KEEPALIVE_MS = 15_000;

/**
 * One server-sent-events response. Nothing the client does makes it buffer without bound: when
 * more than `maxBufferedBytes` wait unsent (a client that stopped reading), the response is cut,
 * and the client reconnects with the last id it saw, replaying what it missed.
 */
export class SseWriter {
  readonly #res: ServerResponse;
  #maxBuffered: number;
  #keepalive: NodeJS.Timeout;
  #closed = false;
  readonly #onClose: Array<(why: string) => void> = [];

  constructor(res: ServerResponse, headers: Record<string, string>, maxBufferedBytes: number) {
    this.#res = res;
    this.#maxBuffered = maxBufferedBytes;
    res.writeHead(200, {
      ...headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    });
    // Tells EventSource-style clients how long to wait before reconnecting.
    res.write("retry: 1000\n\n");
    this.#keepalive = setInterval(() => this.#write(": keepalive\n\n"), KEEPALIVE_MS).unref();
    res.on("close", () => this.close("the client closed the stream"));
    // A client that left while the request was being authenticated: its 'close' has passed.
    if (res.socket === null || res.socket.destroyed) this.close("the client left before the stream began");
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes written and not yet sent. */
  get buffered(): number {
    return this.#res.writableLength;
  }

  /** Allows `extra` more bytes to wait unsent (a snapshot larger than the usual bound). */
  allow(extra: number): void {
    this.#maxBuffered += extra;
  }

  /** Calls `fn` once when the stream ends, with why. */
  onClose(fn: (why: string) => void): void {
    if (this.#closed) fn("closed");
    else this.#onClose.push(fn);
  }

  /** Sends one message: `data` must be one line (JSON is); `id` becomes the client's last event id. */
  send(data: string, id?: string): void {
    this.#write(id === undefined ? `data: ${data}\n\n` : `id: ${id}\ndata: ${data}\n\n`);
  }

  /** Sends several messages in one write. */
  sendAll(messages: ReadonlyArray<{ data: string; id?: string }>): void {
    if (messages.length === 0) return;
    let text = "";
    for (const m of messages)
      text += m.id === undefined ? `data: ${m.data}\n\n` : `id: ${m.id}\ndata: ${m.data}\n\n`;
    this.#write(text);
  }

  /** Ends the stream (the client may reconnect). */
  close(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepalive);
    if (!this.#res.writableEnded) this.#res.end();
    for (const fn of this.#onClose.splice(0)) fn(why);
  }

  #write(text: string): void {
    if (this.#closed) return;
    if (this.#res.writableLength > this.#maxBuffered) {
      const why = `the client reads too slowly: over ${this.#maxBuffered} bytes wait unsent`;
      this.#closed = true;
      clearInterval(this.#keepalive);
      this.#res.destroy();
      for (const fn of this.#onClose.splice(0)) fn(why);
      return;
    }
    this.#res.write(text);
  }
}
