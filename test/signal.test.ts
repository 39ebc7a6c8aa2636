// `muster signal` through the real CLI against real loopback endpoints: a UDP socket that
// records datagrams, and TCP, TLS and Unix stream servers that answer with a TextService and
// close once they have answered everything after the client's end of input. Also the pure
// parts (message, address, configuration files) called directly.
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createServer as createTlsServer } from "node:tls";
import {
  buildSignalMessage,
  parseConfLines,
  parseDestination,
  parseYamlMapping,
  readConfigField,
  replyProblem,
  resolveTarget,
  SignalError,
  sentFromServerName,
  splitFileField,
} from "../src/cli/commands/signal.js";
import { LineSplitter } from "../src/text/lines.js";
import { type Message, parseMessage } from "../src/text/message.js";
import { type TextContext, TextService } from "../src/text/service.js";
import { freePort, runCli } from "./support/cli.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fixture = (name: string): string =>
  new URL(`../../test/fixtures/tls/${name}`, import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "muster-signal-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The sent-from prefix the CLI writes on this machine. */
const FROM = `<${sentFromServerName()}:muster_signal `;

function usageError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SignalError, String(err));
    assert.equal(err.exitCode, 2);
    assert.match(err.message, pattern);
    return true;
  });
}

// ---------------------------------------------------------------------------------------
// Endpoints

type Behaviour = "answer" | "silent" | "drop";

interface Endpoint {
  /** Lines received, over all connections. */
  lines: string[];
  /** When the server last closed a connection after answering. */
  closedAt?: number;
  close(): Promise<void>;
}

/**
 * Serves text lines on `server`: "answer" dispatches them to a TextService and closes after
 * the client's end of input once everything is answered (after `closeDelayMs`); "silent"
 * reads and never answers nor closes; "drop" closes as soon as a line arrives.
 */
function serveText(
  server: Server,
  behaviour: Behaviour,
  closeDelayMs = 0,
  event: "connection" | "secureConnection" = "connection",
): Endpoint {
  const lines: string[] = [];
  const sockets = new Set<Socket>();
  const service = new TextService();
  const endpoint: Endpoint = { lines, close: () => Promise.resolve() };
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  };
  if (event !== "connection") server.on("connection", track);
  server.on(event, (socket: Socket) => {
    track(socket);
    socket.on("error", () => {});
    const splitter = new LineSplitter(1024 * 1024);
    let answered: Promise<void> = Promise.resolve();
    const ctx: TextContext = {
      transport: "tcp",
      peer: "test",
      send: (m: Message) => {
        socket.write(`${m.toString()}\n`);
      },
      close: () => socket.end(),
    };
    socket.on("data", (chunk: Buffer) =>
      splitter.push(chunk, (line) => {
        lines.push(line);
        if (behaviour === "drop") socket.destroy();
        else if (behaviour === "answer") answered = answered.then(() => service.receiveLine(line, ctx));
      }),
    );
    socket.on("end", () => {
      if (behaviour === "answer")
        void answered
          .then(() => sleep(closeDelayMs))
          .then(() => {
            endpoint.closedAt = Date.now();
            socket.end();
          });
    });
  });
  endpoint.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return endpoint;
}

async function tcpEndpoint(behaviour: Behaviour, closeDelayMs = 0): Promise<Endpoint & { port: number }> {
  // Half-open: the server still answers after the client's end of input, then closes.
  const server = createServer({ allowHalfOpen: true });
  const endpoint = serveText(server, behaviour, closeDelayMs);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return Object.assign(endpoint, { port: (server.address() as { port: number }).port });
}

async function udpEndpoint(): Promise<{ port: number; datagrams: string[]; close(): Promise<void> }> {
  const socket = createSocket("udp4");
  const datagrams: string[] = [];
  socket.on("message", (data) => datagrams.push(data.toString("utf8")));
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
  return {
    port: socket.address().port,
    datagrams,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`no ${what} after ${ms} ms`);
    await sleep(10);
  }
}

const signal = (...args: string[]) => runCli(["signal", ...args], 15_000);

// ---------------------------------------------------------------------------------------
// Pure parts

describe("signal: building the message", () => {
  it("reads [[server:]service/]COMMAND", () => {
    assert.deepEqual(parseDestination("STOP"), { command: "STOP" });
    assert.deepEqual(parseDestination("web_1/ALIVE"), { service: "web_1", command: "ALIVE" });
    assert.deepEqual(parseDestination("srv:web_1/ALIVE"), {
      server: "srv",
      service: "web_1",
      command: "ALIVE",
    });
    assert.deepEqual(parseDestination("*:./STOP"), { server: "*", service: ".", command: "STOP" });
  });

  it("refuses malformed messages, naming what is wrong", () => {
    usageError(() => parseDestination(""), /the message is empty/);
    usageError(() => parseDestination("stop"), /command "stop" must be uppercase: STOP/);
    usageError(() => parseDestination("srv:STOP"), /names a server without a service/);
    usageError(() => parseDestination("a/b/STOP"), /second '\/'/);
    usageError(() => parseDestination("/STOP"), /empty service before the '\/'/);
    usageError(() => parseDestination(":a/STOP"), /empty server before the ':'/);
    usageError(() => parseDestination("a/"), /no command after the '\/'/);
    usageError(() => parseDestination("web-1/STOP"), /service "web-1" has "-" at position 4/);
    usageError(() => parseDestination("STOP x=1"), /has a blank.*-p name=value/);
  });

  it("writes the sent-from prefix, the destination and sorted parameters", () => {
    const m = buildSignalMessage({
      message: "web_1/ALIVE",
      server: "srv",
      params: ["serial=7", "a_first", "text=x;y"],
      sentFromServer: "box_1",
    });
    assert.equal(m.toString(), '<box_1:muster_signal srv:web_1/ALIVE a_first=;serial=7;text="x;y"');
    const secret = buildSignalMessage({ message: "LOG_ROTATE", secretCode: "s3cret", sentFromServer: "" });
    assert.equal(secret.toString(), "<:muster_signal LOG_ROTATE secret_code=s3cret");
    // The same value in the message and in a flag is no conflict.
    const same = buildSignalMessage({ message: "a/STOP", service: "a", sentFromServer: "h" });
    assert.equal(same.toString(), "<h:muster_signal a/STOP");
  });

  it("refuses conflicting and invalid flags", () => {
    usageError(() => buildSignalMessage({}), /no message/);
    usageError(
      () => buildSignalMessage({ message: "a/STOP", service: "b" }),
      /--service b conflicts with service a/,
    );
    usageError(
      () => buildSignalMessage({ message: "s:a/STOP", server: "t" }),
      /--server t conflicts with server s/,
    );
    usageError(() => buildSignalMessage({ message: "STOP", server: "s" }), /server s needs a service/);
    usageError(
      () => buildSignalMessage({ message: "STOP", service: "bad name" }),
      /--service: service "bad name"/,
    );
    usageError(
      () => buildSignalMessage({ message: "STOP", params: ["x=1", "x=2"] }),
      /parameter x is given twice/,
    );
    usageError(() => buildSignalMessage({ message: "STOP", params: ["=1"] }), /parameter name is empty/);
    usageError(() => buildSignalMessage({ message: "STOP", params: ["9a=1"] }), /cannot start with a digit/);
    usageError(
      () => buildSignalMessage({ message: "STOP", params: ["secret_code=a"], secretCode: "b" }),
      /secret_code is given twice/,
    );
  });

  it("makes the host name a valid sent-from server, or leaves it out", () => {
    assert.equal(sentFromServerName("web_1"), "web_1");
    assert.equal(sentFromServerName("web-1.example.com"), "web_1_example_com");
    assert.equal(sentFromServerName("7f3a9c"), "");
    assert.equal(sentFromServerName(""), "");
  });

  it("tells error replies from others", () => {
    assert.equal(replyProblem("ABSOLUTELY serial=7"), undefined);
    assert.equal(replyProblem("UNKNOWN command=FOO"), "UNKNOWN");
    assert.equal(replyProblem("a:b/INVALID message=x"), "INVALID");
    assert.equal(replyProblem("SERVICE_UNAVAILABLE"), "SERVICE_UNAVAILABLE");
    assert.match(replyProblem("hello there")!, /^not a valid message/);
  });
});

describe("signal: the address", () => {
  const files: Record<string, string> = {
    "a.yaml": [
      "# text endpoints",
      "---",
      "text:",
      "  udp: udp://127.0.0.1:4041   # the signal port",
      "  tcp: 'tcp://[::1]:3001'",
      '  tls: "tls://example.com:3002"',
      "  unix: unix:/run/muster.sock",
      "  plain: 10.0.0.1:5000",
      "  port: 4041",
      "  off:",
      "  list:",
      "    - a",
      "top: 127.0.0.2",
    ].join("\n"),
    "a.json": '{"text": {"tcp": "tcp://127.0.0.1:3001", "n": 1}}',
    "a.conf": [
      "# ed-signal style",
      "signal = 127.0.0.1:4042",
      'quoted="tcp://127.0.0.1:3001"',
      "[text]",
      "udp_port=udp://127.0.0.1:9",
    ].join("\n"),
    "bad.conf": "just words\n",
  };
  const readFile = (p: string): string => {
    const text = files[p];
    if (text === undefined) throw Object.assign(new Error("no such file"), { code: "ENOENT" });
    return text;
  };
  const target = (host?: string, more: { type?: "udp" | "tcp" | "unix"; tls?: boolean } = {}) =>
    resolveTarget({ ...(host !== undefined ? { host } : {}), ...more, readFile });

  it("defaults to UDP 127.0.0.1:4041 and reads HOST:PORT, [IPv6]:PORT and a socket path", () => {
    assert.deepEqual(target(), { type: "udp", host: "127.0.0.1", port: 4041 });
    assert.deepEqual(target("[::1]:9"), { type: "udp", host: "::1", port: 9 });
    assert.deepEqual(target("example.com"), { type: "udp", host: "example.com", port: 4041 });
    assert.deepEqual(target("h:1", { type: "tcp", tls: true }), {
      type: "tcp",
      host: "h",
      port: 1,
      tls: true,
    });
    assert.deepEqual(target("/run/x.sock", { type: "unix" }), { type: "unix", path: "/run/x.sock" });
  });

  it("takes the type from a URL, and refuses a --type that contradicts it", () => {
    assert.deepEqual(target("tcp://127.0.0.1:3001"), {
      type: "tcp",
      host: "127.0.0.1",
      port: 3001,
      tls: false,
    });
    assert.deepEqual(target("tls://[::1]:3002", { type: "tcp" }), {
      type: "tcp",
      host: "::1",
      port: 3002,
      tls: true,
    });
    assert.deepEqual(target("unix:/run/x.sock"), { type: "unix", path: "/run/x.sock" });
    usageError(() => target("udp://127.0.0.1:1", { type: "tcp" }), /--type tcp contradicts .* a UDP address/);
    usageError(() => target("unix:/x", { tls: true }), /--tls is for TCP only/);
    usageError(() => target("tcp://h"), /expected host:port/);
    usageError(() => target("tcp://h:0"), /port 0/);
  });

  it("refuses what is not an address", () => {
    usageError(() => target("h:70000"), /port 70000 is out of range/);
    usageError(() => target("/run/x.sock"), /looks like a socket path: add --type unix/);
    usageError(() => target("::1"), /is not an address/);
    usageError(() => target(undefined, { type: "unix" }), /--type unix needs --host/);
    usageError(() => target("h:1", { tls: true }), /--tls is for --type tcp, not --type udp/);
  });

  it("reads FILE@FIELD from YAML, JSON and name=value files", () => {
    assert.deepEqual(splitFileField("/etc/x.conf@signal"), { file: "/etc/x.conf", field: "signal" });
    assert.equal(splitFileField("@abstract"), undefined);
    assert.equal(splitFileField("unix:/a@b"), undefined);
    assert.deepEqual(target("a.yaml@text.udp"), { type: "udp", host: "127.0.0.1", port: 4041 });
    assert.deepEqual(target("a.yaml@text.tcp"), { type: "tcp", host: "::1", port: 3001, tls: false });
    assert.deepEqual(target("a.yaml@text.tls"), { type: "tcp", host: "example.com", port: 3002, tls: true });
    assert.deepEqual(target("a.yaml@text.unix"), { type: "unix", path: "/run/muster.sock" });
    assert.deepEqual(target("a.yaml@text.plain", { type: "tcp" }), {
      type: "tcp",
      host: "10.0.0.1",
      port: 5000,
      tls: false,
    });
    assert.deepEqual(target("a.yaml@top"), { type: "udp", host: "127.0.0.2", port: 4041 });
    assert.deepEqual(target("a.json@text.tcp"), { type: "tcp", host: "127.0.0.1", port: 3001, tls: false });
    assert.deepEqual(target("a.conf@signal"), { type: "udp", host: "127.0.0.1", port: 4042 });
    assert.deepEqual(target("a.conf@quoted"), { type: "tcp", host: "127.0.0.1", port: 3001, tls: false });
    assert.deepEqual(target("a.conf@text.udp-port"), { type: "udp", host: "127.0.0.1", port: 9 });
  });

  it("names the file and the field when FILE@FIELD fails", () => {
    usageError(() => target("nope.yaml@x"), /--host nope\.yaml@x: cannot read nope\.yaml: ENOENT/);
    usageError(() => target("a.yaml@text.nothing"), /a\.yaml has no field text\.nothing/);
    usageError(() => target("a.yaml@text.port"), /field text\.port in a\.yaml is a number, not a string/);
    usageError(() => target("a.yaml@text.off"), /field text\.off in a\.yaml is empty, not a string/);
    usageError(() => target("a.yaml@text.list"), /is a list, not a string/);
    usageError(() => target("a.yaml@text"), /is a mapping, not a string/);
    usageError(() => target("a.yaml@top.x"), /top is a string, not a mapping, so it has no x/);
    usageError(() => target("a.json@text.n"), /is a number, not a string/);
    usageError(() => target("a.conf@nothing"), /a\.conf has no field nothing/);
    usageError(() => target("bad.conf@x"), /line 1 is not name=value/);
    usageError(() => target("a.yaml@text.udp", { type: "tcp" }), /--type tcp contradicts a\.yaml@text\.udp/);
  });

  it("reads YAML mappings and name=value lines for configuration files", () => {
    assert.deepEqual(parseYamlMapping("a:\n  b:\n    c: 'it''s'\nd: \"x\\ty\"\ne: yes # comment\n"), {
      a: { b: { c: "it's" } },
      d: "x\ty",
      e: "yes",
    });
    assert.deepEqual(parseYamlMapping("base: &b udp://127.0.0.1:4041\ntext:\n  udp: *b\n"), {
      base: "udp://127.0.0.1:4041",
      text: { udp: "udp://127.0.0.1:4041" },
    });
    // Aliases that would expand without end are refused, not followed.
    const laughs = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 0; i < 9; i++)
      laughs.push(
        `${"bcdefghij"[i]}: &${"bcdefghij"[i]} [${Array(9).fill(`*${"abcdefghi"[i]}`).join(", ")}]`,
      );
    assert.equal(parseYamlMapping(laughs.join("\n")), undefined);
    assert.equal(parseYamlMapping("signal=127.0.0.1:4041\n"), undefined);
    assert.equal(parseYamlMapping("- a\n- b\n"), undefined);
    assert.deepEqual(
      [...parseConfLines("a=1\n# c\n b = ' x '\n", "f")],
      [
        ["a", "1"],
        ["b", " x "],
      ],
    );
    assert.equal(readConfigField("a.yaml", "text.udp", readFile), "udp://127.0.0.1:4041");
  });
});

// ---------------------------------------------------------------------------------------
// The CLI against real endpoints

describe("signal: UDP", { concurrency: 2 }, () => {
  it("sends one datagram exactly as formatted: sent-from prefix, sorted parameters, secret_code", async () => {
    const u = await udpEndpoint();
    try {
      const r = await signal(
        "--host",
        `127.0.0.1:${u.port}`,
        "-p",
        "serial=7",
        "-p",
        "a_first=x y",
        "--secret-code",
        "s3cret",
        "web_1/ALIVE",
      );
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, "");
      assert.equal(r.err, "");
      await until(() => u.datagrams.length === 1, 2000, "datagram");
      assert.equal(u.datagrams[0], `${FROM}web_1/ALIVE a_first=x y;secret_code=s3cret;serial=7`);
      assert.match(u.datagrams[0]!, /^<(?:[A-Za-z_][A-Za-z0-9_]*)?:muster_signal web_1\/ALIVE /);
      const m = parseMessage(u.datagrams[0]!);
      assert.equal(m.sentFromService, "muster_signal");
      assert.equal(m.get("secret_code"), "s3cret");
    } finally {
      await u.close();
    }
  });

  it("takes the address from a udp:// URL, with -m and --server/--service", async () => {
    const u = await udpEndpoint();
    try {
      const r = await signal(
        "--host",
        `udp://127.0.0.1:${u.port}`,
        "-m",
        "STOP",
        "-s",
        "*",
        "-S",
        "web_1",
        "-p",
        "empty",
      );
      assert.equal(r.code, 0, r.err);
      await until(() => u.datagrams.length === 1, 2000, "datagram");
      assert.equal(u.datagrams[0], `${FROM}*:web_1/STOP empty=`);
    } finally {
      await u.close();
    }
  });

  it("refuses a message over 1024 bytes before sending, with its size", async () => {
    const u = await udpEndpoint();
    try {
      const r = await signal("--host", `127.0.0.1:${u.port}`, "-p", `big=${"x".repeat(1100)}`, "STOP");
      assert.equal(r.code, 1);
      assert.match(r.err, /muster: the message is \d{4} bytes, over the 1024 bytes a UDP datagram may carry/);
      await sleep(100);
      assert.equal(u.datagrams.length, 0);
    } finally {
      await u.close();
    }
  });

  it("reads the address from a YAML file and from a .conf file", async () => {
    const u = await udpEndpoint();
    try {
      const yaml = join(dir, "udp.yaml");
      writeFileSync(yaml, `# endpoints\ntext:\n  udp: udp://127.0.0.1:${u.port}\n  port: ${u.port}\n`);
      const conf = join(dir, "udp.conf");
      writeFileSync(conf, `# ed-signal style\nsignal=127.0.0.1:${u.port}\n`);
      const [a, b] = await Promise.all([
        signal("--host", `${yaml}@text.udp`, "LOG_ROTATE"),
        signal("--host", `${conf}@signal`, "RESTART", "-p", "reason=config"),
      ]);
      assert.equal(a.code, 0, a.err);
      assert.equal(b.code, 0, b.err);
      await until(() => u.datagrams.length === 2, 2000, "datagrams");
      assert.deepEqual(u.datagrams.sort(), [`${FROM}LOG_ROTATE`, `${FROM}RESTART reason=config`]);
      const c = await signal("--host", `${yaml}@text.port`, "STOP");
      assert.equal(c.code, 2);
      assert.match(c.err, /@text\.port: field text\.port in .*udp\.yaml is a number, not a string/);
    } finally {
      await u.close();
    }
  });
});

describe("signal: TCP, TLS and Unix sockets", { concurrency: 2 }, () => {
  it("--reply prints ABSOLUTELY echoing serial", async () => {
    const t = await tcpEndpoint("answer");
    try {
      const r = await signal(
        "--type",
        "tcp",
        "--host",
        `127.0.0.1:${t.port}`,
        "--reply",
        "ALIVE",
        "-p",
        "serial=7",
      );
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(t.lines, [`${FROM}ALIVE serial=7`]);
      const lines = r.out.split("\n");
      assert.equal(lines.length, 2);
      const reply = parseMessage(lines[0]!);
      assert.equal(reply.command, "ABSOLUTELY");
      assert.equal(reply.get("serial"), "7");
      assert.equal(reply.service, "muster_signal");
    } finally {
      await t.close();
    }
  });

  it("without --reply: waits for the server to close, prints nothing, exits 0", async () => {
    const t = await tcpEndpoint("answer", 300);
    try {
      const r = await signal("--host", `tcp://127.0.0.1:${t.port}`, "ALIVE");
      assert.equal(r.code, 0, r.err);
      // The server closes 300 ms after the client's end of input: the client waited for it.
      assert.ok(t.closedAt !== undefined && t.closedAt <= Date.now(), "it waited for the close");
      assert.equal(r.out, "");
      assert.equal(r.err, "");
      assert.deepEqual(t.lines, [`${FROM}ALIVE`]);
    } finally {
      await t.close();
    }
  });

  it("an UNKNOWN reply exits 1, on standard error without --reply and standard output with it", async () => {
    const t = await tcpEndpoint("answer");
    try {
      const [a, b] = await Promise.all([
        signal("--type", "tcp", "--host", `127.0.0.1:${t.port}`, "FOO"),
        signal("--type", "tcp", "--host", `127.0.0.1:${t.port}`, "--reply", "FOO"),
      ]);
      assert.equal(a.code, 1);
      assert.equal(a.out, "");
      assert.match(a.err, /^muster: tcp:\/\/127\.0\.0\.1:\d+ replied: \S*UNKNOWN command=FOO\n$/);
      assert.equal(b.code, 1);
      assert.match(b.out, /UNKNOWN command=FOO\n$/);
      assert.match(b.err, /replied UNKNOWN/);
    } finally {
      await t.close();
    }
  });

  it("connection refused exits 3", async () => {
    const port = await freePort();
    const r = await signal("--type", "tcp", "--host", `127.0.0.1:${port}`, "STOP");
    assert.equal(r.code, 3);
    assert.match(r.err, new RegExp(`muster: cannot connect to tcp://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  });

  it("a server that never answers nor closes: exit 1 after --timeout", async () => {
    const t = await tcpEndpoint("silent");
    try {
      const start = Date.now();
      const [a, b] = await Promise.all([
        signal("--type", "tcp", "--host", `127.0.0.1:${t.port}`, "--timeout", "300ms", "STOP"),
        signal("--type", "tcp", "--host", `127.0.0.1:${t.port}`, "--timeout", "300ms", "--reply", "ALIVE"),
      ]);
      assert.ok(Date.now() - start < 5000);
      assert.equal(a.code, 1);
      assert.match(a.err, /muster: tcp:\/\/127\.0\.0\.1:\d+ did not close the connection within 300ms/);
      assert.equal(b.code, 1);
      assert.match(b.err, /muster: no reply from tcp:\/\/127\.0\.0\.1:\d+ within 300ms/);
    } finally {
      await t.close();
    }
  });

  it("--reply and a server that closes without answering: exit 1", async () => {
    const t = await tcpEndpoint("drop");
    try {
      const r = await signal("--type", "tcp", "--host", `127.0.0.1:${t.port}`, "--reply", "ALIVE");
      assert.equal(r.code, 1);
      assert.match(r.err, /connection closed before a reply/);
    } finally {
      await t.close();
    }
  });

  it("a Unix socket, by path with --type unix and by unix: URL", async () => {
    const path = join(dir, "text.sock");
    const server = createServer({ allowHalfOpen: true });
    const endpoint = serveText(server, "answer");
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const [a, b] = await Promise.all([
        signal("--type", "unix", "--host", path, "--reply", "HELP"),
        signal("--host", `unix:${path}`, "*/STOP"),
      ]);
      assert.equal(a.code, 0, a.err);
      const reply = parseMessage(a.out.trim());
      assert.equal(reply.command, "COMMANDS");
      assert.ok(reply.get("list")!.split(",").includes("ALIVE"));
      assert.equal(b.code, 0, b.err);
      assert.ok(endpoint.lines.includes(`${FROM}*/STOP`));
      const c = await signal("--type", "unix", "--host", join(dir, "none.sock"), "STOP");
      assert.equal(c.code, 3);
      assert.match(c.err, /cannot connect to unix:.*none\.sock: ENOENT/);
    } finally {
      await endpoint.close();
    }
  });

  it("TLS with --tls-ca or --tls-insecure; an unknown CA cannot connect", async () => {
    // Not half-open: a TLS server that is leaves a refused handshake's socket open.
    const server = createTlsServer({
      cert: readFileSync(fixture("cert.pem")),
      key: readFileSync(fixture("key.pem")),
    });
    const endpoint = serveText(server, "answer", 0, "secureConnection");
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const [a, b, c] = await Promise.all([
        signal(
          "--type",
          "tcp",
          "--tls",
          "--tls-ca",
          fixture("ca.pem"),
          "--host",
          `127.0.0.1:${port}`,
          "--reply",
          "ALIVE",
          "-p",
          "serial=3",
        ),
        signal("--host", `tls://127.0.0.1:${port}`, "--tls-insecure", "ALIVE"),
        signal("--type", "tcp", "--tls", "--host", `127.0.0.1:${port}`, "STOP"),
      ]);
      assert.equal(a.code, 0, a.err);
      assert.equal(parseMessage(a.out.trim()).get("serial"), "3");
      assert.equal(b.code, 0, b.err);
      assert.equal(c.code, 3);
      assert.match(c.err, /cannot connect to tls:\/\/127\.0\.0\.1:\d+: .*certificate/i);
    } finally {
      await endpoint.close();
    }
  });

  it("reads a tcp:// address from a YAML file: the scheme sets the type", async () => {
    const t = await tcpEndpoint("answer");
    try {
      const yaml = join(dir, "tcp.yaml");
      writeFileSync(yaml, `text:\n  tcp: "tcp://127.0.0.1:${t.port}"\n`);
      const a = await signal("--host", `${yaml}@text.tcp`, "--reply", "ALIVE");
      assert.equal(a.code, 0, a.err);
      assert.match(a.out, /ABSOLUTELY/);
    } finally {
      await t.close();
    }
  });
});

describe("signal: usage errors", () => {
  it("exit 2 with a precise message", async () => {
    const cases: [string[], RegExp][] = [
      [["alive"], /muster: message "alive": command "alive" must be uppercase: ALIVE/],
      [["-m", "STOP", "QUIT"], /the message is given twice, as the argument "QUIT" and with -m "STOP"/],
      [
        ["-S", "web_2", "web_1/ALIVE"],
        /--service web_2 conflicts with service web_1 in the message "web_1\/ALIVE"/,
      ],
      [["--type", "tcp", "--secret-code", "s", "STOP"], /--secret-code is for UDP only, not TCP/],
      [["--reply", "STOP"], /UDP carries no replies; use --type tcp or unix/],
      [["--type", "sctp", "STOP"], /argument 'sctp' is invalid\. Allowed choices are udp, tcp, unix/],
      [["--type", "tcp", "--tls-insecure", "STOP"], /--tls-ca and --tls-insecure are for TLS/],
    ];
    const results = await Promise.all(cases.map(([args]) => signal(...args)));
    for (const [i, [args, pattern]] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.code, 2, `muster signal ${args.join(" ")}: ${r.err}`);
      assert.match(r.err, pattern, `muster signal ${args.join(" ")}`);
      assert.equal(r.out, "");
    }
  });
});
