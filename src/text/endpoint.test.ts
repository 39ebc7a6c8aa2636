import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { isMusterError } from "../../test/support/errors.js";
import { until } from "../../test/support/fleet.js";
import { LineClient } from "../../test/support/line-client.js";
import { listenText, type TextListener, UDP_MAX_BYTES } from "./endpoint.js";
import { type Message, parseMessage } from "./message.js";
import { TextService } from "./service.js";

const FIXTURES = new URL("../../../test/fixtures/tls/", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "muster-text-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const open: TextListener[] = [];
async function listen(url: string, service: TextService, extra: object = {}): Promise<TextListener> {
  const l = await listenText(url, { service, ...extra });
  open.push(l);
  return l;
}
after(async () => {
  await Promise.all(open.map((l) => l.close()));
});

function port(l: TextListener): number {
  return (l.address as { port: number }).port;
}

describe("text endpoints: TCP", () => {
  it("answers ALIVE, HELP and unknown commands, in order, on one connection", async () => {
    const service = new TextService();
    const l = await listen("tcp://127.0.0.1:0", service);
    assert.match(l.url, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    const c = await LineClient.tcp(port(l));
    c.socket.write("ALIVE serial=7;timestamp=12.5\nHELP\r\nWHAT_IS_THIS\n");
    const lines = await c.lineCount(3);
    const alive = parseMessage(lines[0]!);
    assert.equal(alive.command, "ABSOLUTELY");
    assert.equal(alive.get("serial"), "7");
    assert.equal(alive.get("timestamp"), "12.5");
    assert.match(alive.get("reply_timestamp")!, /^\d+\.\d{9}$/);
    assert.equal(
      lines[1],
      "COMMANDS list=ALIVE,HELP,INVALID,LOG_ROTATE,QUITTING,READY,RESTART,SERVICE_UNAVAILABLE,STOP,UNKNOWN",
    );
    assert.equal(lines[2], "UNKNOWN command=WHAT_IS_THIS");
    c.socket.destroy();
  });

  it("answers a malformed line with INVALID and a column, and keeps the connection", async () => {
    const l = await listen("tcp://127.0.0.1:0", new TextService());
    const c = await LineClient.tcp(port(l));
    c.socket.write('hello\nALIVE x="open\nSTOP_IT now\nALIVE\n');
    const lines = await c.lineCount(4);
    assert.equal(lines[0], 'INVALID message=column 1: command "hello" must be uppercase: HELLO');
    assert.match(lines[1]!, /^INVALID command=ALIVE;message=.*quote/);
    assert.match(lines[2]!, /^INVALID command=STOP_IT;message=/);
    assert.match(lines[3]!, /^ABSOLUTELY reply_timestamp=/);
    assert.equal(c.closed, false);
    c.socket.destroy();
  });

  it("after the peer's end of input, answers everything and then closes (a last line needs no newline)", async () => {
    const l = await listen("tcp://127.0.0.1:0", new TextService());
    const c = await LineClient.tcp(port(l));
    c.socket.end("ALIVE serial=1\nALIVE serial=2");
    await until(() => c.closed, 3000, "the server to close");
    assert.deepEqual(
      c.lines.map((x) => parseMessage(x).get("serial")),
      ["1", "2"],
    );
  });

  it("a line over the limit: earlier lines answered, then INVALID and the connection closed; others unaffected", async () => {
    const l = await listen("tcp://127.0.0.1:0", new TextService(), { maxLineBytes: 64 });
    const other = await LineClient.tcp(port(l));
    const c = await LineClient.tcp(port(l));
    c.socket.write(`ALIVE serial=1\nALIVE serial=${"9".repeat(100)}\nALIVE serial=3\n`);
    await until(() => c.closed, 3000, "the server to close");
    assert.equal(c.lines.length, 2);
    assert.equal(parseMessage(c.lines[0]!).get("serial"), "1");
    assert.equal(c.lines[1], "INVALID message=line longer than 64 bytes (at least 113 without a newline)");
    other.socket.write("ALIVE serial=4\n");
    assert.equal(parseMessage((await other.lineCount(1))[0]!).get("serial"), "4");
    other.socket.destroy();
  });

  it("a line sent a byte at a time over the limit is refused before the newline arrives", async () => {
    const l = await listen("tcp://127.0.0.1:0", new TextService(), { maxLineBytes: 32 });
    const c = await LineClient.tcp(port(l));
    for (let i = 0; i < 40 && !c.closed; i++) {
      c.socket.write("A");
      await new Promise((r) => setTimeout(r, 1));
    }
    await until(() => c.closed, 3000, "the server to close");
    assert.match(c.lines[0]!, /^INVALID message=line longer than 32 bytes/);
  });

  it("greets each connection through onConnection and routes its handlers' replies back", async () => {
    const service = new TextService();
    service.on("DAD", (m, ctx) => ctx.send(m.reply("CLIMB")));
    const l = await listen("tcp://127.0.0.1:0", service, {
      onConnection: (ctx: { send(m: Message): void }) => ctx.send(parseMessage("HI")),
    });
    const c = await LineClient.tcp(port(l));
    await c.lineCount(1);
    c.socket.write("DAD\n");
    assert.deepEqual(await c.lineCount(2), ["HI", "CLIMB"]);
    c.socket.destroy();
  });

  it("refuses connections over maxConnections with SERVICE_UNAVAILABLE", async () => {
    const l = await listen("tcp://127.0.0.1:0", new TextService(), { maxConnections: 1 });
    const a = await LineClient.tcp(port(l));
    await until(() => l.connections === 1, 3000, "the first to be counted");
    const b = await LineClient.tcp(port(l));
    await until(() => b.closed, 3000, "the second to be closed");
    assert.equal(b.lines[0], 'SERVICE_UNAVAILABLE message="too many text connections (1)"');
    a.socket.write("ALIVE\n");
    await a.lineCount(1);
    a.socket.destroy();
  });

  it("close() ends open connections and stops listening", async () => {
    const l = await listenText("tcp://127.0.0.1:0", { service: new TextService() });
    const c = await LineClient.tcp(port(l));
    await until(() => l.connections === 1, 3000, "the connection to be counted");
    await l.close();
    await until(() => c.closed, 3000, "the client to be closed");
    await assert.rejects(LineClient.tcp(port(l)), /ECONNREFUSED/);
  });

  it("reports an address in use clearly", async () => {
    const l = await listen("tcp://127.0.0.1:0", new TextService());
    await assert.rejects(
      listenText(l.url, { service: new TextService() }),
      isMusterError("UNAVAILABLE", `cannot listen on ${l.url}: EADDRINUSE`),
    );
  });

  it("refuses tls:// without a certificate", async () => {
    await assert.rejects(
      listenText("tls://127.0.0.1:0", { service: new TextService() }),
      isMusterError(
        "INVALID_ARGUMENT",
        "tls://127.0.0.1:0: a tls:// text endpoint needs a certificate and key",
      ),
    );
  });
});

describe("text endpoints: TLS and Unix sockets", () => {
  it("speaks lines over TLS", async () => {
    const l = await listen("tls://127.0.0.1:0", new TextService(), {
      tls: { cert: readFileSync(`${FIXTURES}cert.pem`), key: readFileSync(`${FIXTURES}key.pem`) },
    });
    const s = tlsConnect({
      port: port(l),
      host: "127.0.0.1",
      ca: readFileSync(`${FIXTURES}ca.pem`),
      servername: "localhost",
    });
    await new Promise((r) => s.once("secureConnect", r));
    const c = new LineClient(s as unknown as Socket);
    s.write("ALIVE serial=5\n");
    assert.equal(parseMessage((await c.lineCount(1))[0]!).get("serial"), "5");
    s.destroy();
  });

  it("speaks lines over a Unix socket, replaces a stale socket file and removes it on close", async () => {
    const path = join(dir, "stale.sock");
    // A socket file left by a process that is gone: one killed with SIGKILL cannot remove it.
    const child = spawn(
      process.execPath,
      ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"))`],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise((r) => child.stdout!.once("data", r));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    assert.ok(statSync(path).isSocket(), "the stale socket file is there");
    const l = await listenText(`unix:${path}`, { service: new TextService() });
    const s = connect(path);
    await new Promise((r) => s.once("connect", r));
    const c = new LineClient(s);
    s.write("ALIVE serial=8\n");
    assert.equal(parseMessage((await c.lineCount(1))[0]!).get("serial"), "8");
    s.destroy();
    await l.close();
    assert.throws(() => readFileSync(path), /ENOENT/);
  });

  it("refuses a socket path another process listens on, and a path that is not a socket", async () => {
    const path = join(dir, "busy.sock");
    await listen(`unix:${path}`, new TextService());
    await assert.rejects(
      listenText(`unix:${path}`, { service: new TextService() }),
      isMusterError("UNAVAILABLE", `cannot listen on unix:${path}: another process listens there`),
    );
    const file = join(dir, "plain-file");
    writeFileSync(file, "keep me");
    await assert.rejects(
      listenText(`unix:${file}`, { service: new TextService() }),
      isMusterError("INVALID_ARGUMENT", `cannot listen on unix:${file}: it exists and is not a socket`),
    );
    assert.equal(readFileSync(file, "utf8"), "keep me");
  });
});

describe("text endpoints: UDP", () => {
  async function send(p: number, text: string | Buffer): Promise<void> {
    const s = createSocket("udp4");
    await new Promise<void>((r) => s.send(text, p, "127.0.0.1", () => r()));
    s.close();
  }

  it("dispatches one message per datagram (LOG_ROTATE calls the hook)", async () => {
    let rotations = 0;
    const l = await listen(
      "udp://127.0.0.1:0",
      new TextService({ hooks: { logRotate: () => void rotations++ } }),
    );
    await send(port(l), "LOG_ROTATE\n");
    await send(port(l), "LOG_ROTATE");
    await until(() => rotations === 2, 3000, "two rotations");
  });

  it("with a secret code: drops datagrams without it or with a wrong one, and strips it before dispatch", async () => {
    const seen: Message[] = [];
    const service = new TextService();
    service.on("PING_ME", (m) => void seen.push(m));
    const l = await listen("udp://127.0.0.1:0", service, { secretCode: "s3cret" });
    await send(port(l), "PING_ME n=1");
    await send(port(l), "PING_ME n=2;secret_code=wrong");
    await send(port(l), "PING_ME n=3;secret_code=s3cret");
    await until(() => seen.length >= 1, 3000, "the right one");
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      seen.map((m) => m.toString()),
      ["PING_ME n=3"],
    );
  });

  it("drops datagrams over 1024 bytes and malformed ones; others go on", async () => {
    const seen: string[] = [];
    const service = new TextService();
    service.on("PING_ME", (m) => void seen.push(m.get("n")!));
    const l = await listen("udp://127.0.0.1:0", service);
    const big = `PING_ME n=1;pad=${"x".repeat(UDP_MAX_BYTES)}`;
    await send(port(l), big);
    await send(port(l), "ping_me n=2");
    await send(port(l), "PING_ME n=3");
    await until(() => seen.length >= 1, 3000, "the good one");
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, ["3"]);
    assert.equal(service.received, 1);
  });
});
