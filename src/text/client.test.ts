import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createServer as createTlsServer } from "node:tls";
import { isMusterError } from "../../test/support/errors.js";
import { ErrorCode } from "../errors/codes.js";
import type { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import {
  createTextClient,
  DEFAULT_PAUSE,
  PauseSchedule,
  type PauseSpec,
  parsePauseList,
  type TextClient,
  type TextClientOptions,
} from "./client.js";
import { Message } from "./message.js";
import { type TextContext, TextService } from "./service.js";

const TLS_DIR = new URL("../../../test/fixtures/tls/", import.meta.url);
const tlsFile = (name: string): Buffer => readFileSync(new URL(name, TLS_DIR));
const tmp = mkdtempSync(join(tmpdir(), "muster-text-client-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------
// Helpers

const invalid = (message: string | RegExp) => isMusterError(ErrorCode.INVALID_ARGUMENT, message);

async function until(what: string, test: () => boolean, ms = 2000): Promise<void> {
  const start = Date.now();
  while (!test()) {
    if (Date.now() - start > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A server that records connections and the lines each one sent. */
interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly sockets: Socket[];
  /** Lines received, per connection in accept order. */
  readonly lines: string[][];
  readonly accepts: number;
  /** Connections whose socket has closed. */
  readonly closes: number;
  close(): Promise<void>;
}

const servers = new Set<TestServer>();
const clients = new Set<TextClient>();

/** Closes every client and server the test made, so that none runs on into the next test. */
async function cleanup(): Promise<void> {
  await Promise.all([...clients].map((c) => c.close()));
  await Promise.all([...servers].map((s) => s.close()));
  clients.clear();
  servers.clear();
}

/**
 * Starts `server` (TCP or TLS) listening on 127.0.0.1:`port` (0: any), or on a Unix socket
 * when `path` is given; `onSocket` runs for each accepted connection.
 */
async function serve(
  opts: {
    server?: Server;
    scheme?: "tcp" | "tls";
    port?: number;
    path?: string;
    onSocket?: (socket: Socket, index: number) => void;
  } = {},
): Promise<TestServer> {
  const server = opts.server ?? createNetServer();
  const sockets: Socket[] = [];
  const lines: string[][] = [];
  let closes = 0;
  server.on(opts.scheme === "tls" ? "secureConnection" : "connection", (socket: Socket) => {
    const index = sockets.length;
    sockets.push(socket);
    const mine: string[] = [];
    lines.push(mine);
    let rest = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      const parts = (rest + d).split("\n");
      rest = parts.pop()!;
      mine.push(...parts);
    });
    socket.on("error", () => {});
    socket.on("close", () => closes++);
    opts.onSocket?.(socket, index);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if (opts.path !== undefined) server.listen(opts.path, resolve);
    else server.listen(opts.port ?? 0, "127.0.0.1", resolve);
  });
  const port = opts.path === undefined ? (server.address() as { port: number }).port : 0;
  const url = opts.path !== undefined ? `unix:${opts.path}` : `${opts.scheme ?? "tcp"}://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;
  const s: TestServer = {
    url,
    port,
    sockets,
    lines,
    get accepts() {
      return sockets.length;
    },
    get closes() {
      return closes;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
  servers.add(s);
  return s;
}

/** A port on 127.0.0.1 where nothing listens (it was free a moment ago). */
async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A client that is closed after the tests, with its failed attempts counted. */
function client(
  options: TextClientOptions,
): TextClient & { failures: { error: MusterError; address: string }[] } {
  const failures: { error: MusterError; address: string }[] = [];
  const c = createTextClient({
    ...options,
    onConnectionFailed(error, address) {
      failures.push({ error, address });
      options.onConnectionFailed?.(error, address);
    },
  });
  clients.add(c);
  return Object.assign(c, { failures });
}

interface LogEntry {
  level: string;
  msg: string;
  obj: object;
}

/** A logger that keeps what is written to it. */
function capture(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const fn =
    (level: string) =>
    (a: object | string, b?: string): void => {
      if (typeof a === "string") entries.push({ level, msg: a, obj: {} });
      else entries.push({ level, msg: b ?? "", obj: a });
    };
  const logger: Logger & { entries: LogEntry[] } = {
    entries,
    trace: fn("trace"),
    debug: fn("debug"),
    info: fn("info"),
    warn: fn("warn"),
    error: fn("error"),
    isLevelEnabled: () => true,
    child: () => logger,
  };
  return logger;
}

// ---------------------------------------------------------------------------------------
// Pause schedules

describe("parsePauseList", () => {
  it("reads ms, s, m and h, a bare number as ms, fractions and blanks around entries", () => {
    assert.deepEqual(parsePauseList("500ms, 1s,1.5s ,2m,1h,250"), [500, 1000, 1500, 120_000, 3_600_000, 250]);
    assert.deepEqual(parsePauseList("-5s,1s"), [-5000, 1000]);
    assert.deepEqual(parsePauseList(".5s"), [500]);
    assert.deepEqual(parsePauseList(DEFAULT_PAUSE), [1000, 2000, 5000, 10_000, 30_000]);
  });

  it("names the bad entry", () => {
    const cases: [string, string][] = [
      ["1s,x", 'pause "1s,x": entry 2 "x" is not a duration'],
      ["1s,5 s", 'pause "1s,5 s": entry 2 "5 s" is not a duration'],
      ["1S", 'pause "1S": entry 1 "1S" is not a duration'],
      ["1e3", 'pause "1e3": entry 1 "1e3" is not a duration'],
      ["", 'pause "" is empty: give delays such as "1s,5s,30s"'],
      ["  ", 'pause "  " is empty: give delays such as "1s,5s,30s"'],
      ["1s,,2s", 'pause "1s,,2s": entry 2 is empty'],
      ["1s,", 'pause "1s,": entry 2 is empty'],
      [
        "1s,-2s",
        'pause "1s,-2s": entry 2 "-2s" is negative: only the first entry may be, to wait before the first attempt',
      ],
      ["0", 'pause "0": entry 1 "0" is under 1ms'],
      ["-0.4ms", 'pause "-0.4ms": entry 1 "-0.4ms" is under 1ms'],
      ["1s,1000h", 'pause "1s,1000h": entry 2 "1000h" is over 2147483647ms, the longest a timer can wait'],
    ];
    for (const [text, message] of cases) assert.throws(() => parsePauseList(text), invalid(message), text);
    assert.throws(
      () => parsePauseList(Array(257).fill("1s").join(",")),
      invalid(/ has 257 entries, more than 256$/),
    );
  });
});

describe("PauseSchedule", () => {
  const take = (s: PauseSchedule, n: number): number[] => Array.from({ length: n }, () => s.next());

  it("starts at once, takes each entry in turn and repeats the last", () => {
    const s = new PauseSchedule("1s,5s,30s");
    assert.equal(s.initialMs, 0);
    assert.deepEqual(take(s, 5), [1000, 5000, 30_000, 30_000, 30_000]);
    s.restart();
    assert.deepEqual(take(s, 2), [1000, 5000]);
  });

  it("waits |first| before the first attempt when it is negative; restart skips it", () => {
    const s = new PauseSchedule("-5s,1s,2s");
    assert.equal(s.initialMs, 5000);
    assert.deepEqual(take(s, 3), [1000, 2000, 2000]);
    s.restart();
    assert.deepEqual(take(s, 1), [1000]);
    // A lone negative entry is also the retry delay.
    const lone = new PauseSchedule([-250]);
    assert.equal(lone.initialMs, 250);
    assert.deepEqual(take(lone, 2), [250, 250]);
  });

  it("defaults to DEFAULT_PAUSE and takes lists of ms", () => {
    assert.deepEqual(take(new PauseSchedule(), 6), [1000, 2000, 5000, 10_000, 30_000, 30_000]);
    assert.deepEqual(take(new PauseSchedule([20, 40]), 3), [20, 40, 40]);
  });

  it("grows a backoff by its factor up to the cap, spread by ±20%, and restarts", () => {
    const mid = new PauseSchedule({ backoff: { initialMs: 100, maxMs: 1000 } }, { random: () => 0.5 });
    assert.equal(mid.initialMs, 0);
    assert.deepEqual(take(mid, 6), [100, 200, 400, 800, 1000, 1000]);
    mid.restart();
    assert.deepEqual(take(mid, 2), [100, 200]);
    const low = new PauseSchedule(
      { backoff: { initialMs: 100, maxMs: 1000, factor: 3 } },
      { random: () => 0 },
    );
    assert.deepEqual(take(low, 4), [80, 240, 720, 800]);
    const high = new PauseSchedule({ backoff: { initialMs: 100, maxMs: 1000 } }, { random: () => 0.99999 });
    assert.deepEqual(take(high, 5), [120, 240, 480, 960, 1200]);
    const real = new PauseSchedule({ backoff: { initialMs: 100, maxMs: 1000 } });
    for (const [i, d] of take(real, 20).entries()) {
      const base = Math.min(1000, 100 * 2 ** i);
      assert.ok(d >= base * 0.8 && d <= base * 1.2, `delay ${i} is ${d}, base ${base}`);
    }
  });

  it("refuses malformed schedules", () => {
    const cases: [unknown, string][] = [
      ["1s,x", 'pause "1s,x": entry 2 "x" is not a duration'],
      [[], "pause [] is empty: give at least one delay in ms"],
      [[20, Number.NaN], "pause [20,NaN]: entry 2 NaN is not a finite number of ms"],
      [[20, "40"], 'pause [20,"40"]: entry 2 "40" is not a finite number of ms'],
      [
        [20, -40],
        "pause [20,-40]: entry 2 -40 is negative: only the first entry may be, to wait before the first attempt",
      ],
      [[0.2], "pause [0.2]: entry 1 0.2 is under 1ms"],
      [
        { backoff: { initialMs: 0, maxMs: 10 } },
        "pause backoff: initialMs must be a number from 1 to 2147483647, got 0",
      ],
      [
        { backoff: { initialMs: 100, maxMs: 50 } },
        "pause backoff: maxMs must be a number from 100 to 2147483647, got 50",
      ],
      [
        { backoff: { initialMs: 100, maxMs: 500, factor: 0.5 } },
        "pause backoff: factor must be a number from 1 to 1000, got 0.5",
      ],
      [{ backoff: null }, "pause backoff must be an object { initialMs, maxMs, factor? }"],
      [
        5,
        'pause must be a string such as "1s,5s,30s", a list of ms or { backoff: { initialMs, maxMs } }, got number',
      ],
    ];
    for (const [spec, message] of cases)
      assert.throws(() => new PauseSchedule(spec as PauseSpec), invalid(message), String(spec));
  });
});

// ---------------------------------------------------------------------------------------
// Options and sending without a connection

describe("createTextClient: options", () => {
  afterEach(cleanup);

  it("refuses bad options with what is wrong", () => {
    const cases: [unknown, string | RegExp][] = [
      [{ addresses: [] }, "a text client needs at least one address"],
      [{}, "a text client needs at least one address"],
      [
        { addresses: ["udp://127.0.0.1:4000"] },
        'text address "udp://127.0.0.1:4000": a client connection needs tcp://, tls:// or unix: (UDP has no connection)',
      ],
      [{ addresses: ["tcp://127.0.0.1:0"] }, 'text address "tcp://127.0.0.1:0": cannot connect to port 0'],
      [{ addresses: ["http://x:1"] }, /^text address "http:\/\/x:1": use tcp:\/\/host:port/],
      [{ addresses: ["tcp://a:1"], pause: "1s,x" }, 'pause "1s,x": entry 2 "x" is not a duration'],
      [{ addresses: ["tcp://a:1"], cache: -1 }, "cache must be an integer ≥ 0, got -1"],
      [{ addresses: ["tcp://a:1"], cache: 1.5 }, "cache must be an integer ≥ 0, got 1.5"],
      [{ addresses: ["tcp://a:1"], maxLineBytes: 0 }, "maxLineBytes must be a number ≥ 1, got 0"],
      [
        { addresses: ["tcp://a:1"], connectTimeoutMs: Number.NaN },
        "connectTimeoutMs must be a number ≥ 1, got NaN",
      ],
      [
        { addresses: ["tcp://a:1"], service: new TextService(), onMessage() {} },
        "give a text client a service or onMessage, not both: the service would take every line",
      ],
    ];
    for (const [options, message] of cases)
      assert.throws(
        () => createTextClient(options as TextClientOptions),
        invalid(message),
        JSON.stringify(options),
      );
  });

  it("parses string lines (refusing bad ones) and, disconnected, caches or refuses", () => {
    const c = client({ addresses: ["tcp://127.0.0.1:9"] });
    assert.throws(() => c.send("not a command"), invalid(/^column 1: /));
    assert.equal(c.send("HELLO"), false, "no cache: dropped");
    assert.equal(c.connected, false);
    assert.equal(c.address, undefined);
    const cached = client({ addresses: ["tcp://127.0.0.1:9"], cache: 2 });
    assert.equal(cached.send("HELLO"), true);
    assert.equal(cached.send(new Message({ command: "WORLD" })), true);
    assert.equal(cached.send("NOT_KEPT", { cache: false }), false);
    assert.equal(cached.cached, 2);
    assert.equal(cached.dropped, 0);
  });

  it("cannot start again once closed", async () => {
    const c = client({ addresses: ["tcp://127.0.0.1:9"] });
    await c.close();
    assert.throws(() => c.start(), isMusterError(ErrorCode.CLOSED, "the text client was closed"));
    assert.equal(c.send("HELLO"), false);
  });
});

// ---------------------------------------------------------------------------------------
// Connecting

describe("connecting and reconnecting", () => {
  afterEach(cleanup);

  it("retries until the server listens, then writes the cache in order before onConnected", async () => {
    const port = await freePort();
    const c = client({
      addresses: [`tcp://127.0.0.1:${port}`],
      pause: "20ms,40ms",
      cache: 10,
      onConnected: (cl) => void cl.send("HELLO from=on_connected"),
    }).start();
    assert.equal(c.send("FIRST n=1"), true);
    assert.equal(c.send(new Message({ command: "SECOND", params: { n: 2 } })), true);
    await until("two failed attempts", () => c.failures.length >= 2);
    assert.equal(c.failures[0]!.address, `tcp://127.0.0.1:${port}`);
    assert.equal(c.failures[0]!.error.code, ErrorCode.UNAVAILABLE);
    assert.match(
      c.failures[0]!.error.rawMessage,
      /^cannot connect to tcp:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/,
    );
    const server = await serve({ port });
    await until("connected", () => c.connected);
    assert.equal(c.address, `tcp://127.0.0.1:${port}`);
    assert.equal(c.cached, 0);
    assert.equal(c.send("THIRD n=3"), true);
    await until("four lines", () => server.lines[0]?.length === 4);
    assert.deepEqual(server.lines[0], ["FIRST n=1", "SECOND n=2", "HELLO from=on_connected", "THIRD n=3"]);
  });

  it("bounds the cache: drops the oldest, counts them and warns once per disconnection", async () => {
    const port = await freePort();
    const logger = capture();
    const c = client({ addresses: [`tcp://127.0.0.1:${port}`], pause: "20ms", cache: 3, logger });
    for (let n = 1; n <= 5; n++) assert.equal(c.send(`M n=${n}`), true);
    assert.equal(c.cached, 3);
    assert.equal(c.dropped, 2);
    const warnings = () =>
      logger.entries.filter((e) => e.level === "warn" && /cache full/.test(e.msg)).length;
    assert.equal(warnings(), 1);
    const server = await serve({ port });
    c.start();
    await until("three lines", () => server.lines[0]?.length === 3);
    assert.deepEqual(server.lines[0], ["M n=3", "M n=4", "M n=5"]);
    // A new disconnection warns again.
    await server.close();
    await until("disconnected", () => !c.connected);
    for (let n = 6; n <= 10; n++) c.send(`M n=${n}`);
    assert.equal(c.dropped, 4);
    assert.equal(warnings(), 2);
  });

  it("tries the addresses in turn, and the next one after a lost connection", async () => {
    const refused = `tcp://127.0.0.1:${await freePort()}`;
    const b = await serve({ onSocket: (s) => setTimeout(() => s.destroy(), 50) });
    const cServer = await serve();
    const connects: string[] = [];
    const disconnects: (MusterError | undefined)[] = [];
    const c = client({
      addresses: [refused, b.url, cServer.url],
      pause: "10ms",
      onConnected: (cl) => void connects.push(cl.address!),
      onDisconnected: (e) => void disconnects.push(e),
    }).start();
    await until("connected to the third", () => c.address === cServer.url);
    assert.deepEqual(connects, [b.url, cServer.url]);
    assert.deepEqual(
      c.failures.map((f) => f.address),
      [refused],
    );
    assert.equal(disconnects.length, 1);
    assert.equal(b.accepts, 1);
    // And round again: the third drops, the first refuses, the second takes it.
    cServer.sockets[0]!.destroy();
    await until("connected to the second again", () => c.address === b.url);
    assert.deepEqual(
      c.failures.map((f) => f.address),
      [refused, refused],
    );
  });

  it("disconnect() ends the connection; the next one follows the schedule and gets the cache", async () => {
    const server = await serve();
    const disconnects: (MusterError | undefined)[] = [];
    const c = client({
      addresses: [server.url],
      pause: "30ms",
      cache: 10,
      onDisconnected: (e) => void disconnects.push(e),
    }).start();
    await until("connected", () => c.connected);
    c.send("ONE");
    c.disconnect();
    assert.equal(c.connected, false, "at once");
    assert.equal(c.send("TWO"), true);
    assert.equal(c.cached, 1);
    await until("a second connection", () => server.accepts === 2 && c.connected);
    assert.deepEqual(disconnects, [undefined]);
    await until("the cached line", () => server.lines[1]?.length === 1);
    assert.deepEqual(server.lines, [["ONE"], ["TWO"]]);
  });

  it("waits |first entry| before the first attempt when it is negative", async () => {
    const server = await serve();
    const start = Date.now();
    const c = client({ addresses: [server.url], pause: "-200ms,20ms" }).start();
    await sleep(80);
    assert.equal(server.accepts, 0, "no attempt yet");
    assert.equal(c.connected, false);
    await until("connected", () => c.connected);
    assert.ok(Date.now() - start >= 150, `connected after ${Date.now() - start}ms`);
    assert.equal(server.accepts, 1);
  });

  it("does not loop on a server that accepts and closes at once", async () => {
    const server = await serve({ onSocket: (s) => s.destroy() });
    const c = client({ addresses: [server.url], pause: "50ms,1s" }).start();
    await sleep(320);
    await c.close();
    // At most one connection per 50ms (about 7 in 320ms); a loop would make hundreds.
    assert.ok(server.accepts >= 2 && server.accepts <= 9, `${server.accepts} connections`);
  });

  it("gives up an attempt after connectTimeoutMs", async () => {
    // A TCP server that never answers the TLS handshake.
    const server = await serve();
    const c = client({
      addresses: [`tls://127.0.0.1:${server.port}`],
      tls: { insecure: true },
      pause: "1h",
      connectTimeoutMs: 100,
    }).start();
    await until("a failed attempt", () => c.failures.length === 1);
    assert.equal(c.failures[0]!.error.code, ErrorCode.UNAVAILABLE);
    assert.equal(
      c.failures[0]!.error.rawMessage,
      `cannot connect to tls://127.0.0.1:${server.port}: no connection after 100ms`,
    );
    assert.equal(c.connected, false);
  });

  it("never throws from send while the connection breaks under it", async () => {
    const server = await serve({ onSocket: (s) => s.end() });
    const logger = capture();
    const c = client({ addresses: [server.url], pause: "5ms", cache: 100_000, logger }).start();
    const stop = Date.now() + 150;
    let sent = 0;
    while (Date.now() < stop) {
      assert.equal(c.send(`M n=${sent++}`), true);
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(server.accepts >= 2, `${server.accepts} connections`);
  });
});

// ---------------------------------------------------------------------------------------
// Incoming lines

describe("incoming lines", () => {
  afterEach(cleanup);

  it("go to the service one at a time, in order; replies reach the server", async () => {
    const seen: string[] = [];
    const contexts: TextContext[] = [];
    const service = new TextService();
    service.on("SLOW", async (m, ctx) => {
      contexts.push(ctx);
      seen.push(`start SLOW ${m.get("n")}`);
      await sleep(30);
      seen.push(`end SLOW ${m.get("n")}`);
    });
    service.on("PING", (m, ctx) => {
      seen.push(`PING ${m.get("n")}`);
      ctx.send(m.reply("PONG", { n: m.get("n") }));
    });
    const server = await serve({
      onSocket: (s) => s.write("SLOW n=1\nPING n=2\nnot a message\n\nPING n=3\n"),
    });
    const c = client({ addresses: [server.url], service, pause: "1h" }).start();
    await until("three replies", () => server.lines[0]?.length === 3);
    assert.deepEqual(seen, ["start SLOW 1", "end SLOW 1", "PING 2", "PING 3"]);
    assert.equal(server.lines[0]![0], "PONG n=2");
    assert.match(server.lines[0]![1]!, /^INVALID message=/, "the service answered the bad line");
    assert.equal(server.lines[0]![2], "PONG n=3");
    assert.equal(service.received, 3);
    assert.equal(contexts[0]!.transport, "tcp");
    assert.match(contexts[0]!.peer, /^127\.0\.0\.1:\d+$/);
    assert.equal(c.connected, true);
  });

  it("reconnects when a handler closes the connection", async () => {
    const service = new TextService().on("BYE", (_m, ctx) => ctx.close());
    const server = await serve({ onSocket: (s, i) => i === 0 && s.write("BYE\n") });
    const c = client({ addresses: [server.url], service, pause: "10ms" }).start();
    await until("a second connection", () => server.accepts === 2 && c.connected);
    assert.equal(server.closes, 1);
  });

  it("go to onMessage without a service; lines that do not parse are logged", async () => {
    const got: Message[] = [];
    const logger = capture();
    const server = await serve({ onSocket: (s) => s.write("HELLO a=1\nbad\nWORLD") });
    const c = client({
      addresses: [server.url],
      onMessage: (m) => void got.push(m),
      logger,
      pause: "1h",
    }).start();
    await until("a message", () => got.length === 1);
    assert.equal(got[0]!.toString(), "HELLO a=1");
    await until("a warning", () => logger.entries.some((e) => /does not parse/.test(e.msg)));
    // A last line without its newline is handled when the server ends the connection.
    server.sockets[0]!.end();
    await until("the last message", () => got.length === 2);
    assert.equal(got[1]!.command, "WORLD");
    await until("disconnected", () => !c.connected);
  });

  it("closes the connection on an overlong line and reconnects", async () => {
    const seen: string[] = [];
    const service = new TextService().on("BEFORE", () => void seen.push("BEFORE"));
    const server = await serve({
      onSocket: (s, i) => i === 0 && s.write(`BEFORE\n${"X".repeat(200)}\nAFTER\n`),
    });
    const disconnects: (MusterError | undefined)[] = [];
    const logger = capture();
    const c = client({
      addresses: [server.url],
      service,
      maxLineBytes: 64,
      pause: "10ms",
      logger,
      onDisconnected: (e) => void disconnects.push(e),
    }).start();
    await until("a second connection", () => server.accepts === 2 && c.connected);
    assert.deepEqual(seen, ["BEFORE"]);
    assert.equal(disconnects.length, 1);
    assert.equal(disconnects[0]!.code, ErrorCode.RESOURCE_EXHAUSTED);
    assert.match(disconnects[0]!.rawMessage, /^line longer than 64 bytes/);
    assert.ok(logger.entries.some((e) => e.level === "error" && /closing the connection/.test(e.msg)));
  });
});

// ---------------------------------------------------------------------------------------
// Stopping

describe("markDone and close", () => {
  afterEach(cleanup);

  it("markDone: no reconnection, cache dropped, send false; written lines still reach the server", async () => {
    const server = await serve();
    const c = client({ addresses: [server.url], pause: "10ms", cache: 10 }).start();
    await until("connected", () => c.connected);
    for (let n = 0; n < 200; n++) assert.equal(c.send(`M n=${n}`), true);
    c.markDone();
    assert.equal(c.connected, false);
    assert.equal(c.send("LATE"), false);
    assert.equal(c.cached, 0);
    await until("the connection closed", () => server.closes === 1);
    assert.equal(server.lines[0]!.length, 200);
    assert.equal(server.lines[0]![199], "M n=199");
    await sleep(100);
    assert.equal(server.accepts, 1);
  });

  it("markDone while disconnected drops the cache and stops the attempts", async () => {
    const c = client({
      addresses: [`tcp://127.0.0.1:${await freePort()}`],
      pause: "10ms",
      cache: 10,
    }).start();
    c.send("KEPT");
    await until("two failed attempts", () => c.failures.length >= 2);
    c.markDone();
    assert.equal(c.cached, 0);
    assert.equal(c.send("LATE"), false);
    const failures = c.failures.length;
    await sleep(100);
    assert.equal(c.failures.length, failures);
  });

  it("close() resolves once the socket is closed, and nothing happens after", async () => {
    const server = await serve();
    const disconnects: (MusterError | undefined)[] = [];
    const c = client({
      addresses: [server.url],
      pause: "10ms",
      onDisconnected: (e) => void disconnects.push(e),
    }).start();
    await until("connected", () => c.connected);
    await c.close();
    assert.deepEqual(disconnects, [undefined]);
    await until("the server saw the close", () => server.closes === 1);
    await sleep(200);
    assert.equal(server.accepts, 1);
    // Also during an attempt that cannot complete, and while waiting for the next one.
    const silent = await serve();
    const hanging = client({
      addresses: [`tls://127.0.0.1:${silent.port}`],
      tls: { insecure: true },
    }).start();
    await until("an attempt", () => silent.accepts === 1);
    await hanging.close();
    const waiting = client({ addresses: [server.url], pause: "-10s" }).start();
    await waiting.close();
    await sleep(50);
    assert.equal(hanging.failures.length, 0);
    assert.equal(server.accepts, 1);
  });

  it("leaves nothing behind: the process exits after close()", async () => {
    const script = `
      import { createServer } from "node:net";
      const { createTextClient } = await import(${JSON.stringify(new URL("./client.js", import.meta.url).href)});
      const server = createServer((s) => s.resume());
      await new Promise((r) => server.listen(0, "127.0.0.1", r));
      const free = createServer();
      await new Promise((r) => free.listen(0, "127.0.0.1", r));
      const refused = free.address().port;
      await new Promise((r) => free.close(r));
      const url = "tcp://127.0.0.1:" + server.address().port;
      const c = createTextClient({ addresses: ["tcp://127.0.0.1:" + refused, url], pause: "10ms", cache: 5 }).start();
      c.send("HI");
      while (!c.connected) await new Promise((r) => setTimeout(r, 5));
      await c.close();
      server.close();
      const waiting = createTextClient({ addresses: [url], pause: "-30s" }).start();
      await waiting.close();
      const retrying = createTextClient({ addresses: ["tcp://127.0.0.1:" + refused], pause: "30s" }).start();
      await new Promise((r) => setTimeout(r, 50));
      await retrying.close();
      process.stdout.write("done\\n");
    `;
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      const child = execFile(
        process.execPath,
        ["--input-type=module", "-e", script],
        { timeout: 5000 },
        (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
      );
    });
    assert.equal(stderr, "");
    assert.equal(stdout, "done\n");
    assert.equal(code, 0, "the process exited by itself");
  });
});

// ---------------------------------------------------------------------------------------
// Other transports

describe("unix and tls", () => {
  afterEach(cleanup);

  it("connects to a Unix socket", async () => {
    const server = await serve({ path: join(tmp, "text.sock"), onSocket: (s) => s.write("PING n=1\n") });
    const contexts: TextContext[] = [];
    const service = new TextService().on("PING", (m, ctx) => {
      contexts.push(ctx);
      ctx.send(m.reply("PONG"));
    });
    const c = client({ addresses: [server.url], service, pause: "1h" }).start();
    await until("connected", () => c.connected);
    assert.equal(c.address, server.url);
    c.send("HELLO");
    await until("two lines", () => server.lines[0]?.length === 2);
    assert.deepEqual([...server.lines[0]!].sort(), ["HELLO", "PONG"]);
    assert.equal(contexts[0]!.transport, "unix");
    assert.equal(contexts[0]!.peer, server.url);
  });

  it("connects with TLS, verifying the server with the CA, or insecure", async () => {
    const tlsServer = createTlsServer({ cert: tlsFile("cert.pem"), key: tlsFile("key.pem") });
    const contexts: TextContext[] = [];
    const service = new TextService().on("PING", (m, ctx) => {
      contexts.push(ctx);
      ctx.send(m.reply("PONG"));
    });
    const server = await serve({ server: tlsServer, scheme: "tls", onSocket: (s) => s.write("PING\n") });
    const verified = client({
      addresses: [server.url],
      tls: { ca: tlsFile("ca.pem") },
      service,
      pause: "1h",
    });
    verified.start();
    await until("connected", () => verified.connected);
    verified.send("HELLO");
    await until("two lines", () => server.lines[0]?.length === 2);
    assert.deepEqual([...server.lines[0]!].sort(), ["HELLO", "PONG"]);
    assert.equal(contexts[0]!.transport, "tls");
    const insecure = client({ addresses: [server.url], tls: { insecure: true }, pause: "1h" }).start();
    await until("connected", () => insecure.connected);
    // Without the CA, the self-signed certificate is refused.
    const refused = client({ addresses: [server.url], pause: "1h" }).start();
    await until("a failed attempt", () => refused.failures.length === 1);
    assert.match(refused.failures[0]!.error.rawMessage, /certificate/);
    assert.equal(refused.connected, false);
  });
});
