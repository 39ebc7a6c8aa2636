import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { Backoff } from "../internal/backoff.js";
import { optionLimit } from "../internal/limits.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { LineSplitter } from "./lines.js";
import { MESSAGE_LIMITS, Message, parseMessage } from "./message.js";
import type { TextContext, TextService } from "./service.js";
import { parseTextAddress, type TextAddress } from "./url.js";

/*
 * A permanent text connection, after upstream's tcp_client_permanent_message_connection:
 * one connection at a time to one of several addresses, re-established after every failure
 * or loss following a pause schedule, with an optional cache of messages sent while
 * disconnected. Where this differs from upstream (a bounded cache, addresses resolved on
 * every attempt, the next address after a loss) it is said where it applies.
 */

/** The pause schedule used when none is given: the first attempt at once, then these. */
export const DEFAULT_PAUSE = "1s,2s,5s,10s,30s";

/** How long one connection attempt (TCP connect, and the TLS handshake) may take. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** The longest delay a timer can wait (setTimeout fires at once beyond it). */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** Most entries in a pause schedule (upstream stops at 254). */
const MAX_PAUSE_ENTRIES = 256;
/** The spread of a backoff delay: ±20%. */
const BACKOFF_JITTER = 0.2;
/** How long an ended connection waits for the peer to close its side before it is cut. */
const CLOSE_GRACE_MS = 5_000;
/** Lines read ahead of the one being handled before the socket stops reading. */
const QUEUE_HIGH = 64;
/** Bytes written but not yet taken by the peer before the connection is dropped as stuck. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Pause schedule

/** Exponential backoff instead of a list: `initialMs`, times `factor` each time, up to `maxMs`. */
export interface BackoffPause {
  backoff: { initialMs: number; maxMs: number; factor?: number };
}

/**
 * When to try again: a list such as `"1s,5s,30s,5m"` (units ms, s, m, h; a bare number is
 * ms), the same as a list of milliseconds, or a backoff.
 */
export type PauseSpec = string | readonly number[] | BackoffPause;

function badPause(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(-?)(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?$/;

/** Checks one entry (in ms, signed) of a schedule; `what` names it for the error. */
function checkEntry(ms: number, index: number, what: string, describe: string): number {
  const where = `${describe}: entry ${index + 1} ${what}`;
  if (ms < 0 && index > 0)
    throw badPause(`${where} is negative: only the first entry may be, to wait before the first attempt`);
  const abs = Math.round(Math.abs(ms));
  if (abs < 1) throw badPause(`${where} is under 1ms`);
  if (abs > MAX_DELAY_MS) throw badPause(`${where} is over ${MAX_DELAY_MS}ms, the longest a timer can wait`);
  return ms < 0 ? -abs : abs;
}

/**
 * Parses a pause list such as `"-5s,1s,5s,30s,5m"` into signed milliseconds. Entries are
 * separated by commas (blanks around them are ignored) and are a number, with a fraction
 * if wanted, followed by `ms`, `s`, `m` or `h` (none: milliseconds). Every entry is at
 * least 1ms; only the first may be negative. Throws INVALID_ARGUMENT naming the bad entry.
 */
export function parsePauseList(text: string): number[] {
  if (typeof text !== "string") throw badPause(`pause must be a string, got ${typeof text}`);
  const describe = `pause ${JSON.stringify(text)}`;
  if (text.trim() === "") throw badPause(`${describe} is empty: give delays such as "1s,5s,30s"`);
  const parts = text.split(",");
  if (parts.length > MAX_PAUSE_ENTRIES)
    throw badPause(`${describe} has ${parts.length} entries, more than ${MAX_PAUSE_ENTRIES}`);
  return parts.map((raw, i) => {
    const entry = raw.trim();
    if (entry === "") throw badPause(`${describe}: entry ${i + 1} is empty`);
    const m = DURATION.exec(entry);
    if (m === null) throw badPause(`${describe}: entry ${i + 1} ${JSON.stringify(entry)} is not a duration`);
    const ms = Number(m[2]) * UNIT_MS[m[3] ?? "ms"]!;
    return checkEntry(m[1] === "-" ? -ms : ms, i, JSON.stringify(entry), describe);
  });
}

function checkList(list: readonly unknown[]): number[] {
  const describe = `pause [${list.map((v) => (typeof v === "number" ? String(v) : JSON.stringify(v))).join(",")}]`;
  if (list.length === 0) throw badPause(`${describe} is empty: give at least one delay in ms`);
  if (list.length > MAX_PAUSE_ENTRIES)
    throw badPause(`pause has ${list.length} entries, more than ${MAX_PAUSE_ENTRIES}`);
  return list.map((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v))
      throw badPause(
        `${describe}: entry ${i + 1} ${typeof v === "number" ? String(v) : JSON.stringify(v)} is not a finite number of ms`,
      );
    return checkEntry(v, i, String(v), describe);
  });
}

function checkBackoff(spec: BackoffPause, random: (() => number) | undefined): Backoff {
  const b = spec.backoff as Partial<BackoffPause["backoff"]> | null;
  if (typeof b !== "object" || b === null)
    throw badPause("pause backoff must be an object { initialMs, maxMs, factor? }");
  const num = (name: string, v: unknown, min: number, max: number): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max)
      throw badPause(`pause backoff: ${name} must be a number from ${min} to ${max}, got ${String(v)}`);
    return v;
  };
  const initialMs = num("initialMs", b.initialMs, 1, MAX_DELAY_MS);
  const maxMs = num("maxMs", b.maxMs, initialMs, MAX_DELAY_MS);
  const factor = b.factor === undefined ? 2 : num("factor", b.factor, 1, 1000);
  return new Backoff({ initialMs, maxMs, factor, jitter: BACKOFF_JITTER, ...(random && { random }) });
}

export interface PauseScheduleOptions {
  /** Random numbers in [0, 1) for the backoff's jitter. @default Math.random */
  random?: () => number;
}

/**
 * The delays between connection attempts, as upstream's pause_durations:
 *
 * - A list `e1,e2,…,en`: the first attempt is made at once, or after |e1| when e1 is
 *   negative. Each failed attempt waits the next entry; once the list is exhausted the last
 *   entry repeats. `restart()` (on every connection) goes back to e1, or to e2 when e1 is a
 *   negative first wait, so the wait before the first attempt is not a retry delay.
 * - A backoff: the first attempt at once, then `initialMs`, multiplied by `factor` each
 *   time up to `maxMs`; each delay is spread by ±20% (after the cap, so that clients that
 *   all reached it stay apart). `restart()` goes back to `initialMs`.
 *
 * Every retry delay is at least 1ms.
 */
export class PauseSchedule {
  /** The wait before the very first attempt (0: at once). */
  readonly initialMs: number;
  readonly #list: readonly number[] | undefined;
  readonly #backoff: Backoff | undefined;
  #pos = 0;

  /** Throws INVALID_ARGUMENT on a malformed schedule. @param spec @default DEFAULT_PAUSE */
  constructor(spec: PauseSpec = DEFAULT_PAUSE, options: PauseScheduleOptions = {}) {
    if (typeof spec === "string") this.#list = parsePauseList(spec);
    else if (Array.isArray(spec)) this.#list = checkList(spec);
    else if (typeof spec === "object" && spec !== null && "backoff" in spec)
      this.#backoff = checkBackoff(spec, options.random);
    else
      throw badPause(
        `pause must be a string such as "1s,5s,30s", a list of ms or { backoff: { initialMs, maxMs } }, got ${spec === null ? "null" : typeof spec}`,
      );
    const first = this.#list?.[0] ?? 0;
    this.initialMs = first < 0 ? -first : 0;
    this.restart();
  }

  /** The delay before the next attempt, in ms; advances the schedule. */
  next(): number {
    if (this.#backoff !== undefined) return Math.min(MAX_DELAY_MS, Math.max(1, this.#backoff.next()));
    const list = this.#list!;
    const delay = Math.abs(list[Math.min(this.#pos, list.length - 1)]!);
    if (this.#pos < list.length) this.#pos++;
    return delay;
  }

  /** Back to the first retry delay. */
  restart(): void {
    if (this.#backoff !== undefined) {
      this.#backoff.reset();
      return;
    }
    const list = this.#list!;
    this.#pos = list.length > 1 && list[0]! < 0 ? 1 : 0;
  }
}

// ---------------------------------------------------------------------------------------
// Client

/** TLS settings for `tls://` addresses. */
export interface TextClientTlsOptions {
  /** CA certificate(s) (PEM) to verify the server with, instead of the system's. */
  ca?: string | Buffer;
  /** Accepts any certificate: for tests only, since anyone in the path can then read and write. */
  insecure?: boolean;
  /** The name to verify the certificate against. @default the host of the address */
  servername?: string;
}

export interface TextClientOptions {
  /**
   * Where to connect: `tcp://host:port`, `tls://host:port` or `unix:/path`, one or more. The
   * first attempt goes to the first address; every failed attempt, and every lost connection,
   * moves on to the next one (round robin), so a server that accepts and drops connections
   * cannot hold the client when others are listed. Host names are resolved on every attempt.
   */
  addresses: readonly string[];
  /** When to try again. @default DEFAULT_PAUSE ("1s,2s,5s,10s,30s") */
  pause?: PauseSpec;
  /**
   * Most messages kept while disconnected, to send on the next connection; 0 keeps none.
   * When full, the oldest is dropped (see `dropped`); upstream's cache has no bound. Cached
   * messages are written before `onConnected` runs, so what it sends (REGISTER…) comes after
   * them: send what must not precede it with `{ cache: false }`. @default 0
   */
  cache?: number;
  /**
   * Handles incoming lines, one at a time in order (`receiveLine`, awaited before the next).
   * Its context writes on, and closes, the connection the line came on.
   */
  service?: TextService;
  /**
   * Without a service: called with each incoming message, awaited before the next. Lines that
   * do not parse are logged and dropped. Without either, incoming lines are ignored.
   */
  onMessage?(message: Message): void | Promise<void>;
  tls?: TextClientTlsOptions;
  /** Longest incoming line; a longer one closes the connection. @default 1048576 */
  maxLineBytes?: number;
  /** Time allowed to each attempt, TLS handshake included. @default 10000 */
  connectTimeoutMs?: number;
  /**
   * A connection is up and the cache has been written to it. Not awaited: incoming lines are
   * handled meanwhile. What a hook throws or rejects with is logged, never thrown.
   */
  onConnected?(client: TextClient): void | Promise<void>;
  /** An attempt failed (UNAVAILABLE); the next one goes to the next address after the pause. */
  onConnectionFailed?(error: MusterError, address: string): void;
  /**
   * A connection that was up closed; `error` says why when it was not a clean close (a
   * socket error, RESOURCE_EXHAUSTED for a line too long). Also called after `markDone`.
   */
  onDisconnected?(error?: MusterError): void;
  logger?: Logger;
}

/** A permanent text connection; see `createTextClient`. */
export interface TextClient {
  /** Starts connecting (the first attempt follows the schedule). Throws CLOSED after `markDone`. */
  start(): this;
  /**
   * Sends a message; a string is parsed first (INVALID_ARGUMENT when it does not parse).
   * Connected: written at once, true (written to the socket, not yet known to be received).
   * Otherwise, with a cache and `options.cache` not false: kept for the next connection, true.
   * Otherwise (and always after `markDone`): dropped, false.
   */
  send(message: Message | string, options?: { cache?: boolean }): boolean;
  /** Whether a connection is up and takes messages. */
  readonly connected: boolean;
  /** The address (as given) of the connection that is up, or undefined. */
  readonly address: string | undefined;
  /** Messages dropped from a full cache since the client was made. */
  readonly dropped: number;
  /** Messages in the cache now. */
  readonly cached: number;
  /** Ends the connection that is up (after what was written); the next attempt follows the schedule. */
  disconnect(): void;
  /**
   * Stops for good: no further attempt, the cache is dropped, `send` returns false. An
   * attempt in progress is abandoned; a connection that is up is ended after what was
   * already written has been sent, and cut if the peer has not closed its side within 5s.
   * Lines received but not yet handled are dropped (the one being handled finishes).
   */
  markDone(): void;
  /** `markDone`, then resolves once the socket is closed and every timer cleared. */
  close(): Promise<void>;
}

/** One connection, from its attempt until its socket closes. */
interface Connection {
  readonly socket: Socket;
  readonly url: string;
  readonly target: TextAddress;
  /** The connect (and handshake) completed. */
  open: boolean;
  /** Ended by us (disconnect, markDone, a handler, a line too long): takes nothing more. */
  shutting: boolean;
  /** The first error seen on the socket, reported when it closes. */
  error: MusterError | undefined;
  timer: NodeJS.Timeout | undefined;
  readonly splitter: LineSplitter;
  readonly queue: string[];
  pumping: boolean;
  readonly closed: Promise<void>;
  ctx: TextContext | undefined;
}

function toTarget(url: string): TextAddress {
  if (typeof url !== "string")
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `a text client address must be a string, got ${typeof url}`,
    );
  const target = parseTextAddress(url);
  if (target.kind === "udp")
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `text address ${JSON.stringify(url)}: a client connection needs tcp://, tls:// or unix: (UDP has no connection)`,
    );
  if (target.kind !== "unix" && target.port === 0)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `text address ${JSON.stringify(url)}: cannot connect to port 0`,
    );
  return target;
}

function why(err: unknown): string {
  return err instanceof MusterError ? err.rawMessage : err instanceof Error ? err.message : String(err);
}

class PermanentTextClient implements TextClient {
  readonly #urls: readonly string[];
  readonly #targets: readonly TextAddress[];
  readonly #schedule: PauseSchedule;
  readonly #cacheMax: number;
  readonly #maxLine: number;
  readonly #connectTimeout: number;
  readonly #o: TextClientOptions;
  readonly #log: Logger;
  #index = 0;
  #started = false;
  #done = false;
  #timer: NodeJS.Timeout | undefined;
  #conn: Connection | undefined;
  #cache: Message[] = [];
  #dropped = 0;
  #dropWarned = false;

  constructor(o: TextClientOptions) {
    if (typeof o !== "object" || o === null)
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "createTextClient needs options with addresses");
    if (!Array.isArray(o.addresses) || o.addresses.length === 0)
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "a text client needs at least one address");
    this.#targets = o.addresses.map(toTarget);
    this.#urls = [...o.addresses];
    this.#schedule = new PauseSchedule(o.pause ?? DEFAULT_PAUSE);
    const cache = o.cache ?? 0;
    if (typeof cache !== "number" || !Number.isSafeInteger(cache) || cache < 0)
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `cache must be an integer ≥ 0, got ${String(cache)}`);
    this.#cacheMax = cache;
    this.#maxLine = optionLimit(o.maxLineBytes, MESSAGE_LIMITS.maxLineBytes, "maxLineBytes", 1);
    this.#connectTimeout = optionLimit(o.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, "connectTimeoutMs", 1);
    if (this.#connectTimeout > MAX_DELAY_MS)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `connectTimeoutMs must be at most ${MAX_DELAY_MS}, got ${this.#connectTimeout}`,
      );
    if (o.service !== undefined && o.onMessage !== undefined)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        "give a text client a service or onMessage, not both: the service would take every line",
      );
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
  }

  get connected(): boolean {
    const c = this.#conn;
    return c?.open === true && !c.shutting && !c.socket.destroyed;
  }

  get address(): string | undefined {
    return this.connected ? this.#conn!.url : undefined;
  }

  get dropped(): number {
    return this.#dropped;
  }

  get cached(): number {
    return this.#cache.length;
  }

  start(): this {
    if (this.#done) throw new MusterError(ErrorCode.CLOSED, "the text client was closed");
    if (this.#started) return this;
    this.#started = true;
    this.#wait(this.#schedule.initialMs);
    return this;
  }

  send(message: Message | string, options?: { cache?: boolean }): boolean {
    const m = typeof message === "string" ? parseMessage(message) : message;
    if (!(m instanceof Message))
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "send takes a Message or a line of text");
    if (this.#done) return false;
    const c = this.#conn;
    // A write that fails drops the connection; the message then goes to the cache.
    if (c?.open && !c.shutting && this.#write(c, m)) return true;
    if (this.#cacheMax === 0 || options?.cache === false) return false;
    this.#cache.push(m);
    if (this.#cache.length > this.#cacheMax) {
      this.#cache.shift();
      this.#dropped++;
      if (!this.#dropWarned) {
        this.#dropWarned = true;
        this.#log.warn(
          { cache: this.#cacheMax },
          "text client cache full: dropping the oldest messages until connected",
        );
      }
    }
    return true;
  }

  disconnect(): void {
    const c = this.#conn;
    if (c?.open) this.#shut(c, "disconnect asked");
  }

  markDone(): void {
    if (this.#done) return;
    this.#done = true;
    this.#cache = [];
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const c = this.#conn;
    if (c === undefined) return;
    c.queue.length = 0;
    if (c.open) this.#shut(c, "marked done");
    else c.socket.destroy();
  }

  close(): Promise<void> {
    this.markDone();
    return this.#conn?.closed ?? Promise.resolve();
  }

  // -------------------------------------------------------------------------------------

  #wait(delay: number): void {
    if (this.#done) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#attempt();
    }, delay);
  }

  #attempt(): void {
    if (this.#done) return;
    const target = this.#targets[this.#index]!;
    const url = this.#urls[this.#index]!;
    let socket: Socket;
    try {
      socket = this.#dial(target);
    } catch (err) {
      this.#failed(url, new MusterError(ErrorCode.UNAVAILABLE, `cannot connect to ${url}: ${why(err)}`));
      return;
    }
    let closed!: () => void;
    const c: Connection = {
      socket,
      url,
      target,
      open: false,
      shutting: false,
      error: undefined,
      timer: undefined,
      splitter: new LineSplitter(this.#maxLine),
      queue: [],
      pumping: false,
      closed: new Promise<void>((resolve) => {
        closed = resolve;
      }),
      ctx: undefined,
    };
    this.#conn = c;
    c.timer = setTimeout(() => {
      c.timer = undefined;
      c.error = new MusterError(
        ErrorCode.UNAVAILABLE,
        `cannot connect to ${url}: no connection after ${this.#connectTimeout}ms`,
      );
      socket.destroy();
    }, this.#connectTimeout);
    socket.once(target.kind === "tls" ? "secureConnect" : "connect", () => this.#opened(c));
    socket.on("error", (err: Error) => {
      c.error ??= new MusterError(
        ErrorCode.UNAVAILABLE,
        c.open ? `connection to ${url} failed: ${err.message}` : `cannot connect to ${url}: ${err.message}`,
        { cause: err },
      );
    });
    socket.on("data", (chunk: Buffer) => this.#data(c, chunk));
    socket.on("end", () => {
      // A last line without its newline still counts.
      if (c.open && !c.shutting && c.splitter.pending > 0) this.#data(c, Buffer.from("\n"));
    });
    socket.once("close", () => {
      if (c.timer !== undefined) clearTimeout(c.timer);
      c.timer = undefined;
      closed();
      this.#closed(c);
    });
  }

  #dial(t: TextAddress): Socket {
    if (t.kind === "unix") return netConnect({ path: t.path });
    if (t.kind === "tls") {
      const tls = this.#o.tls ?? {};
      return tlsConnect({
        host: t.host,
        port: t.port,
        ca: tls.ca,
        rejectUnauthorized: tls.insecure !== true,
        // SNI carries names only; Node checks an IP host against the IP SANs by itself.
        servername: tls.servername ?? (isIP(t.host) ? undefined : t.host),
      });
    }
    return netConnect({ host: t.host, port: t.port });
  }

  #opened(c: Connection): void {
    if (c.timer !== undefined) clearTimeout(c.timer);
    c.timer = undefined;
    if (this.#done) {
      c.socket.destroy();
      return;
    }
    c.open = true;
    c.socket.setNoDelay(true);
    this.#schedule.restart();
    this.#dropWarned = false;
    const kind = c.target.kind === "unix" ? "unix" : c.target.kind === "tls" ? "tls" : "tcp";
    const s = c.socket;
    const peer =
      c.target.kind === "unix"
        ? `unix:${c.target.path}`
        : s.remoteAddress?.includes(":")
          ? `[${s.remoteAddress}]:${s.remotePort}`
          : `${s.remoteAddress ?? c.target.host}:${s.remotePort ?? c.target.port}`;
    c.ctx = {
      transport: kind,
      peer,
      send: (message: Message) => {
        if (c.open && !c.shutting) this.#write(c, message);
        else
          this.#log.debug({ peer, command: message.command }, "text reply dropped: the connection is closed");
      },
      close: () => this.#shut(c, "closed by a handler"),
    };
    this.#log.info({ address: c.url, peer }, "text client connected");
    // As upstream: the cache is written before onConnected, so a message sent from there
    // (REGISTER…) comes after what was sent while disconnected.
    const cache = this.#cache;
    this.#cache = [];
    for (let i = 0; i < cache.length; i++)
      if (!this.#write(c, cache[i]!)) {
        // The connection failed at once: what was not written waits for the next one.
        this.#cache = cache.slice(i);
        return;
      }
    if (this.connected) this.#hook("onConnected", () => this.#o.onConnected?.(this));
  }

  /** Writes one message; false (and the connection dropped) when the socket cannot take it. */
  #write(c: Connection, message: Message): boolean {
    const s = c.socket;
    if (s.destroyed || !s.writable) {
      this.#log.warn({ address: c.url, command: message.command }, "text client: the socket is not writable");
      c.error ??= new MusterError(ErrorCode.UNAVAILABLE, `connection to ${c.url} is no longer writable`);
      s.destroy();
      return false;
    }
    try {
      s.write(`${message.toString()}\n`);
    } catch (err) {
      this.#log.error({ address: c.url, error: why(err) }, "text client: write failed");
      c.error ??= MusterError.from(err, ErrorCode.UNAVAILABLE);
      s.destroy();
      return false;
    }
    if (s.writableLength > MAX_BUFFERED_BYTES) {
      this.#log.warn(
        { address: c.url, bufferedBytes: s.writableLength },
        "text client: the server does not read what is sent; dropping the connection",
      );
      c.error ??= new MusterError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `${c.url} left more than ${MAX_BUFFERED_BYTES} bytes unread`,
      );
      s.destroy();
    }
    return true;
  }

  #data(c: Connection, chunk: Buffer): void {
    if (!c.open || c.shutting || this.#done) return;
    try {
      c.splitter.push(chunk, (line) => c.queue.push(line));
    } catch (err) {
      // Lines before the long one are still handled; nothing after it can be read.
      const e = MusterError.from(err, ErrorCode.RESOURCE_EXHAUSTED);
      this.#log.error({ address: c.url, error: e.rawMessage }, "text client: closing the connection");
      c.error ??= e;
      c.shutting = true;
      c.socket.destroy();
    }
    if (c.queue.length >= QUEUE_HIGH && !c.socket.destroyed) c.socket.pause();
    void this.#pump(c);
  }

  async #pump(c: Connection): Promise<void> {
    if (c.pumping) return;
    c.pumping = true;
    while (c.queue.length > 0 && !this.#done) {
      const line = c.queue.shift()!;
      if (c.queue.length < QUEUE_HIGH / 2 && c.socket.isPaused() && !c.shutting) c.socket.resume();
      if (line.trim() === "") continue;
      try {
        await this.#deliver(c, line);
      } catch (err) {
        this.#log.error({ address: c.url, error: why(err) }, "text client: a message handler failed");
      }
    }
    c.pumping = false;
  }

  async #deliver(c: Connection, line: string): Promise<void> {
    const service = this.#o.service;
    if (service !== undefined) {
      await service.receiveLine(line, c.ctx!);
      return;
    }
    const onMessage = this.#o.onMessage;
    if (onMessage === undefined) return;
    let message: Message;
    try {
      message = parseMessage(line, { maxLineBytes: this.#maxLine });
    } catch (err) {
      this.#log.warn(
        { address: c.url, error: why(err) },
        "text client: a line from the server does not parse",
      );
      return;
    }
    await onMessage(message);
  }

  /** Ends our side after what was written; cut if the peer does not close within the grace time. */
  #shut(c: Connection, reason: string): void {
    if (c.shutting || c.socket.destroyed) return;
    c.shutting = true;
    this.#log.debug({ address: c.url, reason }, "text client: ending the connection");
    // Read again (and drop) what comes, so that the peer's end is seen.
    c.socket.resume();
    c.socket.end();
    c.timer = setTimeout(() => {
      c.timer = undefined;
      c.socket.destroy();
    }, CLOSE_GRACE_MS);
  }

  #closed(c: Connection): void {
    if (this.#conn === c) this.#conn = undefined;
    if (!c.open) {
      if (this.#done) return;
      this.#failed(c.url, c.error ?? new MusterError(ErrorCode.UNAVAILABLE, `cannot connect to ${c.url}`));
      return;
    }
    c.open = false;
    if (c.error === undefined) this.#log.info({ address: c.url }, "text client disconnected");
    else this.#log.warn({ address: c.url, error: c.error.rawMessage }, "text client disconnected");
    this.#hook("onDisconnected", () => this.#o.onDisconnected?.(c.error));
    if (this.#done) return;
    this.#index = (this.#index + 1) % this.#targets.length;
    this.#wait(this.#schedule.next());
  }

  #failed(url: string, error: MusterError): void {
    this.#index = (this.#index + 1) % this.#targets.length;
    const delay = this.#schedule.next();
    this.#log.warn(
      { address: url, error: error.rawMessage, retryInMs: delay },
      "text client: connection failed",
    );
    this.#hook("onConnectionFailed", () => this.#o.onConnectionFailed?.(error, url));
    this.#wait(delay);
  }

  /** Runs a hook; what it throws (or rejects with) is logged, never thrown at the caller. */
  #hook(name: string, run: () => unknown): void {
    const fail = (err: unknown): void =>
      this.#log.error({ hook: name, error: why(err) }, "text client: a hook failed");
    try {
      const r = run();
      if (r instanceof Promise) r.catch(fail);
    } catch (err) {
      fail(err);
    }
  }
}

/**
 * A permanent text connection: connects, once `start()` is called (not before: making one
 * touches no network, and messages can be cached first), to the first of `addresses`, and
 * after every failed attempt or lost connection tries the next one after the schedule's
 * pause, until `markDone()` or `close()`.
 *
 * - The schedule restarts on every connection, as upstream's; a connection that is lost
 *   then waits the schedule's first retry delay (never 0) before the next attempt, so a
 *   server that accepts and closes at once is retried at that pace, never in a loop.
 * - On a connection, the cache is written first, in order, then `onConnected` runs.
 * - Timers and sockets keep the process alive until `close()` (or `markDone()` and the
 *   connection's end): a permanent connection is meant to stay.
 *
 * Throws INVALID_ARGUMENT on bad options (no address, a `udp://` address, a malformed pause).
 */
export function createTextClient(options: TextClientOptions): TextClient {
  return new PermanentTextClient(options);
}
