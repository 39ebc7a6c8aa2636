/**
 * A client of the numbers service that behaves like the seed's Node client (same commands,
 * same resync, same output lines) with the seed's weaknesses fixed: retry delays carry
 * jitter, the give-up window is long and configurable, stateless values are checked exactly
 * (BigInt, not doubles that go wrong past 2^53), and the outcome is a result to act on rather
 * than a process that always exits 0.
 */
import { randomInt, randomUUID } from "node:crypto";
import { type ClientDuplexStream, credentials, type StatusObject, status } from "@grpc/grpc-js";
import { Backoff, type BackoffOptions } from "../internal/backoff.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { parseUuid } from "./commands.js";
import { NUMBERS_DEFAULTS, TEST_SESSION } from "./defaults.js";
import { type CommsReplyIn, type CommsRequest, commsService } from "./proto.js";
import { addToChecksum, MAX_N, nextStatelessValue } from "./sequence.js";

export type NumbersClientMode = "stateless" | "stateful" | "stateful-test" | "stateful-test-reconnect";

export interface NumbersClientOptions {
  mode: NumbersClientMode;
  /** @default 1337 */
  port?: number;
  /** @default "localhost" */
  host?: string;
  /**
   * Stateless: how many values to receive (required). Stateful: the session's n (default
   * random in 1..4095, as the seed's client). The test modes always use 5.
   */
  n?: number;
  /** `stateful-test-reconnect`: the last value received before (required). */
  last?: number;
  /** Stateful modes: the session id. @default random (the test modes: the seed's test uuid) */
  uuid?: string;
  /** Give up when nothing arrived for this long. @default 60000 */
  giveUpMs?: number;
  /** Retry delays. @default 500 ms doubling up to 8 s, ±20 % jitter */
  retry?: BackoffOptions;
  /**
   * How a stateful client says where it was on CONTINUE: by its last value (the seed's form,
   * understood by the seed's server too) or by its count (`@<position>`, muster's form, exact
   * even when a value repeats). @default "value"
   */
  resumeBy?: "value" | "position";
  /** Each line of the transcript, as the seed's client prints them. */
  onLine?: (line: string) => void;
  logger?: Logger;
  signal?: AbortSignal;
}

export type NumbersFailure = "checksum" | "sequence" | "error-reply" | "ended-early" | "gave-up" | "aborted";

export interface NumbersResult {
  ok: boolean;
  mode: NumbersClientMode;
  /** Why it failed, for people. */
  reason?: string;
  failure?: NumbersFailure;
  /** Every number received, in order (not the count and checksum of a resync). */
  values: bigint[];
  /** Stateful: the session. */
  uuid?: string;
  n: number;
  /** Stateful: the position reached (n + 1 once the checksum arrived). */
  count: number;
  /** Stateful: the checksum the client kept (restored from the server on resync). */
  checksum: number | null;
  /** Stateful: the checksum the server sent last. */
  serverChecksum: number | null;
  /** Calls opened after the first. */
  reconnects: number;
}

type Call = ClientDuplexStream<CommsRequest, CommsReplyIn>;

const statusName = (code: number): string => status[code] ?? String(code);

function checkOptions(o: NumbersClientOptions): void {
  const modes = ["stateless", "stateful", "stateful-test", "stateful-test-reconnect"];
  if (!modes.includes(o.mode)) throw new TypeError(`mode must be one of ${modes.join(", ")}`);
  const n = o.n;
  if (o.mode === "stateless" && n === undefined) throw new TypeError("stateless mode needs n");
  if (n !== undefined && !(Number.isInteger(n) && n >= 1 && n <= MAX_N))
    throw new RangeError(`n must be an integer from 1 to ${MAX_N}, got ${String(n)}`);
  if (o.mode === "stateful-test-reconnect") {
    const l = o.last;
    if (l === undefined || !(Number.isInteger(l) && l >= 0 && l <= 0xffff_ffff))
      throw new RangeError(`stateful-test-reconnect needs last, an integer from 0 to 4294967295`);
  }
  if (o.uuid !== undefined && parseUuid(o.uuid) === undefined)
    throw new TypeError(`uuid ${JSON.stringify(o.uuid)} is not a uuid`);
}

/** Runs one client to the end: the checksum (stateful), n values (stateless), or a failure. */
export function runNumbersClient(options: NumbersClientOptions): Promise<NumbersResult> {
  checkOptions(options);
  return new ClientRun(options).run();
}

class ClientRun {
  readonly #o: NumbersClientOptions;
  readonly #log: Logger;
  readonly #line: (line: string) => void;
  readonly #stateful: boolean;
  readonly #target: string;
  readonly #backoff: Backoff;
  readonly #giveUpMs: number;
  readonly #result: NumbersResult;

  #client: InstanceType<ReturnType<typeof commsService>> | undefined;
  #call: Call | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Fires when nothing arrived for `giveUpMs`, even on a call that hangs without a status. */
  #giveUpTimer: NodeJS.Timeout | undefined;
  #lastProgress = performance.now();
  #resolve: (r: NumbersResult) => void = () => {};
  #done = false;
  /** Stateless: END was sent. */
  #ended = false;

  /** Stateful: the last value received (what the seed's CONTINUE carries). */
  #lastValue = 0;
  /** Stateful: the server answered a START or CONTINUE, so the session exists. */
  #sessionKnown = false;
  /** Stateful: the next call must START (a CONTINUE found no session: the START was lost). */
  #mustStart = false;
  /** Resync messages (count, then checksum) still expected on this call. */
  #resync = 0;
  /** Stateless: the first value that broke the ×3 rule. */
  #broken: string | undefined;
  #sum = 0n;

  constructor(o: NumbersClientOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
    this.#line = o.onLine ?? (() => {});
    this.#stateful = o.mode !== "stateless";
    const host = o.host ?? NUMBERS_DEFAULTS.host;
    const port = o.port ?? NUMBERS_DEFAULTS.port;
    this.#target = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    this.#giveUpMs = o.giveUpMs ?? NUMBERS_DEFAULTS.giveUpMs;
    this.#backoff = new Backoff({
      initialMs: NUMBERS_DEFAULTS.retryInitialMs,
      maxMs: NUMBERS_DEFAULTS.retryMaxMs,
      jitter: NUMBERS_DEFAULTS.retryJitter,
      ...o.retry,
    });
    const test = o.mode === "stateful-test" || o.mode === "stateful-test-reconnect";
    const uuid = o.uuid ?? (test ? TEST_SESSION.uuid : randomUUID());
    const n = test ? TEST_SESSION.n : (o.n ?? randomInt(1, NUMBERS_DEFAULTS.statefulMaxRandomN + 1));
    this.#result = {
      ok: false,
      mode: o.mode,
      values: [],
      n,
      count: 0,
      checksum: this.#stateful ? 0 : null,
      serverChecksum: null,
      reconnects: 0,
      ...(this.#stateful ? { uuid: parseUuid(uuid)! } : {}),
    };
    if (o.mode === "stateful-test-reconnect") this.#lastValue = o.last!;
  }

  run(): Promise<NumbersResult> {
    return new Promise((resolve) => {
      this.#resolve = resolve;
      const signal = this.#o.signal;
      if (signal?.aborted) return this.#finish(false, "aborted", "aborted before the start");
      signal?.addEventListener("abort", () => this.#finish(false, "aborted", "aborted"), { once: true });
      this.#line(`N: ${this.#result.n}`);
      if (this.#stateful) this.#line(`UUID: ${this.#result.uuid}`);
      this.#armGiveUp();
      this.#open();
    });
  }

  /** The command that opens a call: START, or CONTINUE from where this client is. */
  #opening(): string {
    const r = this.#result;
    if (!this.#stateful) return r.values.length === 0 ? "START" : `CONTINUE ${r.values[r.values.length - 1]}`;
    const resuming = this.#sessionKnown || this.#o.mode === "stateful-test-reconnect" || r.reconnects > 0;
    if (!resuming || this.#mustStart) return `START "${r.uuid}" ${r.n}`;
    this.#resync = 2;
    // `stateful-test-reconnect` opens with the value it was given, whatever `resumeBy` says.
    const byValue = this.#o.resumeBy !== "position" || !this.#sessionKnown;
    return byValue ? `CONTINUE ${r.uuid} ${this.#lastValue}` : `CONTINUE ${r.uuid} @${r.count}`;
  }

  #open(): void {
    this.#client?.close();
    const Comms = commsService();
    // A channel of its own per call: grpc-js would otherwise share a connection, and its own
    // reconnect backoff (up to two minutes), across channels to the same address.
    const client = new Comms(this.#target, credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    this.#client = client;
    const call = (client as unknown as { GetNumbers(): Call }).GetNumbers();
    this.#call = call;
    this.#resync = 0;
    const command = this.#opening();
    this.#mustStart = false;
    this.#log.debug({ target: this.#target, command }, "call opened");
    call.on("data", (reply: CommsReplyIn) => {
      if (call === this.#call && !this.#done) this.#onReply(reply);
    });
    call.on("status", (s: StatusObject) => {
      if (call === this.#call && !this.#done) this.#onStatus(s);
    });
    // Every failure also arrives as a status, handled above.
    call.on("error", () => {});
    call.write({ message: command });
  }

  #armGiveUp(): void {
    clearTimeout(this.#giveUpTimer);
    this.#giveUpTimer = setTimeout(() => {
      this.#line("Nothing received, giving up");
      this.#finish(false, "gave-up", `gave up: nothing received for ${this.#giveUpMs / 1000} s`);
    }, this.#giveUpMs);
  }

  #onReply(reply: CommsReplyIn): void {
    this.#lastProgress = performance.now();
    this.#backoff.reset();
    this.#armGiveUp();
    if (reply.error) {
      this.#onError(reply.error.message);
      return;
    }
    if (!reply.data) return;
    const v = BigInt(reply.data.number);
    if (this.#stateful) this.#onStatefulData(v);
    else this.#onStatelessData(v);
  }

  #onError(message: string): void {
    this.#line(`Error: ${message}`);
    // A CONTINUE after a drop that came before any number: the START itself never arrived.
    if (
      this.#stateful &&
      !this.#sessionKnown &&
      this.#o.mode !== "stateful-test-reconnect" &&
      message.startsWith("uuid has no session")
    ) {
      this.#mustStart = true;
      return;
    }
    this.#finish(false, "error-reply", `the server answered: ${message}`);
  }

  #onStatefulData(v: bigint): void {
    const r = this.#result;
    this.#sessionKnown = true;
    if (this.#resync === 2) {
      this.#resync = 1;
      r.count = Number(v);
      this.#line(`Count set to: ${r.count}`);
      return;
    }
    if (this.#resync === 1) {
      this.#resync = 0;
      r.checksum = Number(v);
      this.#line(`Checksum set to: ${r.checksum}`);
      if (r.count === r.n + 1) {
        r.serverChecksum = r.checksum;
        this.#finish(true);
      }
      return;
    }
    r.count++;
    if (r.count === r.n + 1) {
      r.serverChecksum = Number(v);
      const valid = r.serverChecksum === r.checksum;
      this.#line(`Checksum: ${v}`);
      this.#line(`Checksum is valid: ${valid}`);
      if (valid) this.#finish(true);
      else this.#finish(false, "checksum", `checksum ${v} from the server, ${r.checksum} computed here`);
      return;
    }
    r.values.push(v);
    this.#lastValue = Number(v);
    r.checksum = addToChecksum(r.checksum ?? 0, Number(v));
    this.#line(`Response: ${v} | Count: ${r.count}`);
  }

  #onStatelessData(v: bigint): void {
    const r = this.#result;
    if (r.values.length >= r.n) return;
    const prev = r.values[r.values.length - 1];
    if (prev !== undefined && v !== nextStatelessValue(prev) && this.#broken === undefined)
      this.#broken = `value ${v} after ${prev} is not 3 × ${prev} (mod 2^64)`;
    r.values.push(v);
    this.#sum += v;
    this.#line(`Response: ${v} | Count: ${r.values.length}`);
    if (r.values.length === r.n) {
      this.#call?.write({ message: "END" });
      this.#call?.end();
      this.#ended = true;
      this.#line(`Sum: ${this.#sum}`);
      this.#line(`Test passed: ${this.#broken === undefined}`);
      if (this.#broken === undefined) this.#finish(true);
      else this.#finish(false, "sequence", this.#broken);
    }
  }

  #onStatus(s: StatusObject): void {
    const r = this.#result;
    if (s.code === status.OK) {
      if (this.#mustStart) {
        this.#open();
        return;
      }
      const what = this.#stateful
        ? `after ${r.count} of ${r.n} numbers, without the checksum`
        : `after ${r.values.length} of ${r.n} values`;
      this.#finish(false, "ended-early", `the server ended the stream ${what}`);
      return;
    }
    const delay = this.#backoff.next();
    const why = `${statusName(s.code)}: ${s.details}`;
    const silentMs = performance.now() - this.#lastProgress;
    if (silentMs + delay > this.#giveUpMs) {
      this.#line(`Failed to connect, giving up (${why})`);
      this.#finish(
        false,
        "gave-up",
        `gave up: nothing received for ${(silentMs / 1000).toFixed(1)} s, the limit is ${this.#giveUpMs / 1000} s (last: ${why})`,
      );
      return;
    }
    this.#line(`Failed to connect, will retry in ${delay} ms (${why})`);
    this.#retryTimer = setTimeout(() => {
      r.reconnects++;
      this.#open();
    }, delay);
  }

  #finish(ok: boolean, failure?: NumbersFailure, reason?: string): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#giveUpTimer);
    // After END the server ends the call by itself; closing the channel lets it do so.
    if (!this.#ended) this.#call?.cancel();
    this.#client?.close();
    const r = this.#result;
    r.ok = ok;
    if (failure !== undefined) r.failure = failure;
    if (reason !== undefined) r.reason = reason;
    this.#resolve(r);
  }
}
