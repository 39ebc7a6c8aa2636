import type { Socket } from "node:net";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import { LineSplitter } from "./lines.js";
import type { PeerLogLimiter } from "./log-limiter.js";
import { Message } from "./message.js";
import type { TextContext, TextPeerCertificate, TextService, TextTransport } from "./service.js";

/** What a stream connection may hold and how long it may sit idle (see TextEndpointOptions). */
export interface ConnectionLimits {
  maxLineBytes: number;
  maxQueuedBytes: number;
  maxQueuedLines: number;
  /** 0: never closed for idleness. */
  idleTimeoutMs: number;
  replyHighWaterBytes: number;
  maxBufferedBytes: number;
}

/**
 * A connection we are closing is cut this long after we ended our side, if its peer has not
 * ended its own: a peer that never closes holds no descriptor for long.
 */
export const CLOSE_GRACE_MS = 2000;

/**
 * The bytes all connections of one endpoint hold (lines waiting or being handled, partial
 * lines), and the connections that stopped reading until there is room again.
 */
export class EndpointBudget {
  #held = 0;
  readonly #waiting = new Set<() => void>();

  constructor(readonly maxBytes: number) {}

  get held(): number {
    return this.#held;
  }

  get full(): boolean {
    return this.#held > this.maxBytes;
  }

  change(delta: number): void {
    this.#held += delta;
    if (delta < 0 && this.#waiting.size > 0 && this.#held <= this.maxBytes * 0.75) {
      const waiting = [...this.#waiting];
      this.#waiting.clear();
      for (const wake of waiting) wake();
    }
  }

  wait(wake: () => void): void {
    this.#waiting.add(wake);
  }

  forget(wake: () => void): void {
    this.#waiting.delete(wake);
  }
}

export interface ConnectionSetup {
  socket: Socket;
  transport: TextTransport;
  peer: string;
  remoteAddress?: string;
  local: boolean;
  certificate?: TextPeerCertificate;
  service: TextService;
  limits: ConnectionLimits;
  budget: EndpointBudget;
  /** Lines about what the peer does, limited per peer. */
  log: PeerLogLimiter;
  logger: Logger;
  onConnection?(ctx: TextContext): void;
}

interface Queued {
  line: string;
  bytes: number;
  /** Set on the entry that stands for a line over the limit: answered INVALID, then the end. */
  tooLong?: string;
}

/** An HTTP request line (`POST /x HTTP/1.1`) or header line (`Host: …`): never a text message. */
const HTTP_REQUEST = /^[A-Z]{3,10} \S+ HTTP\/\d(?:\.\d)?\r?$/;
const HTTP_HEADER = /^[A-Za-z][A-Za-z0-9-]*:[ \t]/;

/** Whether a line is HTTP: a web page's request (`fetch(…, {mode: "no-cors"})`) must never be taken for text. */
export function looksLikeHttp(line: string): boolean {
  return HTTP_HEADER.test(line) || (line.length < 8192 && HTTP_REQUEST.test(line));
}

/**
 * One stream connection of a text endpoint: splits what it reads into lines, handles them one
 * after another (so replies come in order), and holds the peer to its bounds — what it queues
 * (in lines and bytes, and its share of the endpoint's budget: beyond them the socket is no
 * longer read), how many replies it leaves unread (the next line waits; far beyond, it is
 * dropped), how long it may sit idle, and that it speaks text, not HTTP.
 */
export class TextConnection {
  readonly ctx: TextContext;
  readonly #s: ConnectionSetup;
  readonly #socket: Socket;
  #splitter: LineSplitter;
  readonly #queue: Queued[] = [];
  /** Bytes of the lines waiting and of the one being handled. */
  #queuedBytes = 0;
  /** What this connection counts for in the endpoint's budget. */
  #held = 0;
  #handling = false;
  #pumping = false;
  /** The peer ended its side. */
  #ended = false;
  /** Nothing more is taken from the peer (what it sends is read and dropped). */
  #failed = false;
  #closed = false;
  #cutTimer: NodeJS.Timeout | undefined;
  readonly #wake = (): void => this.#updateReading();

  constructor(setup: ConnectionSetup) {
    this.#s = setup;
    const socket = setup.socket;
    this.#socket = socket;
    this.#splitter = new LineSplitter(setup.limits.maxLineBytes);
    const ctx: TextContext = {
      transport: setup.transport,
      peer: setup.peer,
      local: setup.local,
      send: (message) => this.#send(message),
      close: () => this.close(),
      ...(setup.remoteAddress !== undefined ? { remoteAddress: setup.remoteAddress } : {}),
      ...(setup.certificate !== undefined ? { certificate: setup.certificate } : {}),
    };
    this.ctx = ctx;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("end", () => this.#onEnd());
    socket.on("error", (err) =>
      setup.logger.debug({ peer: setup.peer, error: err.message }, "text connection error"),
    );
    socket.on("close", () => this.#onClose());
    if (setup.limits.idleTimeoutMs > 0) {
      socket.setTimeout(setup.limits.idleTimeoutMs);
      socket.on("timeout", () => this.#onIdle());
    }
    setup.onConnection?.(ctx);
  }

  /** Ends our side after what was written, stops taking lines, and cuts the socket if the peer does not close. */
  close(lastLine?: Message): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failed = true;
    this.#drop();
    // Read and drop what still comes, so that the peer's end is seen and the socket freed.
    this.#socket.resume();
    if (lastLine !== undefined && this.#socket.writable) this.#socket.write(`${lastLine.toString()}\n`);
    this.#socket.end();
    this.#cutTimer = setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS);
    this.#cutTimer.unref();
  }

  #send(message: Message): void {
    const socket = this.#socket;
    if (this.#closed || socket.destroyed || !socket.writable) return;
    socket.write(`${message.toString()}\n`);
    if (socket.writableLength > this.#s.limits.maxBufferedBytes) {
      this.#s.log.log(
        "warn",
        this.#s.peer,
        { peer: this.#s.peer, bufferedBytes: socket.writableLength },
        "text connection dropped: it does not read its replies",
      );
      socket.destroy();
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#failed) return;
    try {
      this.#splitter.push(chunk, (line, bytes) => this.#onLine(line, bytes));
    } catch (err) {
      // What came before the long line is answered first; nothing after it is taken.
      const why = err instanceof MusterError ? err.rawMessage : String(err);
      this.#s.log.log(
        "warn",
        this.#s.peer,
        { peer: this.#s.peer, error: why },
        "text connection closed: line too long",
      );
      this.#stopTaking();
      this.#queue.push({ line: "", bytes: 0, tooLong: why });
    }
    this.#account();
    this.#updateReading();
    this.#run();
  }

  #onLine(line: string, bytes: number): void {
    if (this.#failed) return;
    if (looksLikeHttp(line)) {
      this.#s.log.log(
        "warn",
        this.#s.peer,
        { peer: this.#s.peer, line },
        "text connection closed: it speaks HTTP (a web page?); nothing it sent is handled",
      );
      this.close(
        new Message({ command: "INVALID", params: { message: "this is a muster text endpoint, not HTTP" } }),
      );
      return;
    }
    this.#queue.push({ line, bytes });
    this.#queuedBytes += bytes;
  }

  #onEnd(): void {
    this.#ended = true;
    // A last line without its newline still counts.
    if (!this.#failed && this.#splitter.pending > 0)
      this.#splitter.push(Buffer.from("\n"), (line, bytes) => this.#onLine(line, bytes));
    this.#account();
    this.#run();
  }

  #onClose(): void {
    this.#closed = true;
    this.#failed = true;
    if (this.#cutTimer !== undefined) clearTimeout(this.#cutTimer);
    this.#drop();
    this.#s.budget.forget(this.#wake);
  }

  #onIdle(): void {
    if (this.#closed) return;
    // A line being handled (an agent taking its time) is not idleness: look again later.
    if (this.#handling) {
      this.#socket.setTimeout(this.#s.limits.idleTimeoutMs);
      return;
    }
    this.#s.log.log(
      "info",
      this.#s.peer,
      { peer: this.#s.peer, idleTimeoutMs: this.#s.limits.idleTimeoutMs },
      "text connection closed: idle",
    );
    this.close();
    // Nothing will be read from an idle peer; do not wait for its end.
    this.#socket.destroy();
  }

  /** Stops taking lines: what is queued is still answered, what comes next is dropped. */
  #stopTaking(): void {
    this.#failed = true;
    this.#splitter = new LineSplitter(this.#s.limits.maxLineBytes);
    this.#socket.resume();
  }

  /** Forgets the lines waiting (not the one being handled, which releases its bytes when done). */
  #drop(): void {
    for (const q of this.#queue.splice(0)) this.#queuedBytes -= q.bytes;
    this.#splitter = new LineSplitter(this.#s.limits.maxLineBytes);
    this.#account();
  }

  /** Tells the endpoint's budget what this connection holds now. */
  #account(): void {
    const held = this.#queuedBytes + (this.#failed ? 0 : this.#splitter.pending);
    if (held !== this.#held) {
      const delta = held - this.#held;
      this.#held = held;
      this.#s.budget.change(delta);
    }
  }

  /** Pauses the socket while this connection, or its endpoint, holds too much; resumes it after. */
  #updateReading(): void {
    if (this.#failed || this.#closed || this.#ended) return;
    const l = this.#s.limits;
    const budget = this.#s.budget;
    const overBudget = this.#held > 0 && budget.full;
    const full =
      this.#queue.length >= l.maxQueuedLines || this.#queuedBytes >= l.maxQueuedBytes || overBudget;
    if (full) {
      if (!this.#socket.isPaused()) this.#socket.pause();
      if (overBudget) budget.wait(this.#wake);
    } else if (this.#socket.isPaused()) this.#socket.resume();
  }

  /** Handles what is queued; nothing that goes wrong there may escape as an unhandled rejection. */
  #run(): void {
    this.#pump().catch((err: unknown) => {
      this.#s.logger.error({ peer: this.#s.peer, error: String(err) }, "text connection failed");
      this.#socket.destroy();
    });
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#closed) {
        const item = this.#queue.shift();
        if (item === undefined) break;
        if (item.tooLong !== undefined) {
          this.close(new Message({ command: "INVALID", params: { message: item.tooLong } }));
          break;
        }
        if (item.line.trim() !== "") {
          // Replies not read yet: let the peer read them before producing more.
          if (this.#socket.writableLength > this.#s.limits.replyHighWaterBytes) await this.#writable();
          if (!this.#closed) {
            this.#handling = true;
            try {
              await this.#s.service.receiveLine(item.line, this.ctx);
            } finally {
              this.#handling = false;
            }
          }
        }
        this.#queuedBytes -= item.bytes;
        this.#account();
        this.#updateReading();
      }
    } finally {
      this.#pumping = false;
    }
    // The peer ended its side: everything it sent is answered, so end ours.
    if (this.#ended && this.#queue.length === 0) this.close();
  }

  /** Resolves when the socket has written its backlog, or closed. */
  #writable(): Promise<void> {
    const socket = this.#socket;
    return new Promise((resolve) => {
      const done = (): void => {
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  }
}
