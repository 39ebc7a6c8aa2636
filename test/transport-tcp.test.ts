import assert from "node:assert/strict";
import { createServer as createNetServer, connect as netConnect, type Server, type Socket } from "node:net";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import { dialUrl, parseListenUrl } from "../src/transport/dial.js";
import { MemoryNetwork } from "../src/transport/memory.js";
import { dialTcp, isLoopbackAddress, listenTcp } from "../src/transport/tcp.js";
import type { Listener, Transport, TransportOptions } from "../src/transport/types.js";
import { decodeFrame } from "../src/wire/codec.js";
import { CloseCode, FrameType } from "../src/wire/frame.js";
import { lengthPrefix } from "../src/wire/length-prefix.js";
import {
  describeTransportConformance,
  type PairOptions,
  Probe,
  type TransportPair,
  testFrame,
  testTls,
  until,
} from "./conformance/transport-conformance.js";

const material = testTls();

/** A listener on 127.0.0.1:0 that collects what it accepts. */
async function listen(
  kind: "tcp" | "tls",
  options: TransportOptions & { host?: string } = {},
): Promise<{ listener: Listener; accepted: Transport[]; next(): Promise<Transport> }> {
  const accepted: Transport[] = [];
  const listener = await listenTcp(
    { host: "127.0.0.1", port: 0, ...options, ...(kind === "tls" ? { tls: material } : {}) },
    (t) => accepted.push(t),
  );
  let taken = 0;
  const next = async (): Promise<Transport> => {
    const i = taken++;
    await until(`accepted connection #${i}`, () => accepted.length > i);
    return accepted[i]!;
  };
  return { listener, accepted, next };
}

async function pair(kind: "tcp" | "tls", options: PairOptions = {}): Promise<TransportPair> {
  const { serverTraffic, clientTraffic, ...common } = options;
  const { listener, next } = await listen(kind, { ...common, traffic: serverTraffic });
  const client = await dialTcp(new URL(listener.url), {
    ...common,
    traffic: clientTraffic,
    tls: { ca: material.ca },
  });
  const server = await next();
  return {
    client,
    server,
    cleanup: async () => {
      client.close();
      server.close();
      await listener.close();
    },
  };
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, pattern?: RegExp): Promise<MusterError> {
  const err = await p.then(
    () => assert.fail(`expected ${code}, the promise resolved`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MusterError, `expected a MusterError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
  return err;
}

function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
}

describeTransportConformance("tcp", (options) => pair("tcp", options));
describeTransportConformance("tls", (options) => pair("tls", options));

describe("tcp listener facing a misbehaving peer", () => {
  const cases: [string, Buffer, CloseCode, number][] = [
    [
      "garbage (an HTTP request)",
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      CloseCode.FRAME_TOO_LARGE,
      0,
    ],
    ["a huge length prefix", Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), CloseCode.FRAME_TOO_LARGE, 0],
    ["a length below the header size", Buffer.from([0, 0, 0, 3, 1, 2, 3]), CloseCode.PROTOCOL_ERROR, 0],
    [
      "a whole frame, then one cut short by the end of the stream",
      Buffer.concat([lengthPrefix(testFrame(20)), Buffer.from([0, 0, 0, 100]), Buffer.alloc(50)]),
      CloseCode.REMOTE_CLOSED,
      1,
    ],
  ];
  for (const [what, bytes, code, frames] of cases) {
    it(`closes a connection sending ${what} with ${code}; others carry on`, async () => {
      const { listener, next } = await listen("tcp");
      const good = await dialTcp(new URL(listener.url), {});
      const goodServer = await next();
      const atGoodServer = new Probe(goodServer);
      const atGood = new Probe(good);
      const raw = await rawConnect(listener.port);
      const rawClosed = new Promise<void>((resolve) => raw.once("close", () => resolve()));
      raw.on("error", () => {}); // a reset is fine here; the server side is what is checked
      const told: Buffer[] = [];
      raw.on("data", (d: Buffer) => told.push(d));
      try {
        const bad = new Probe(await next());
        raw.end(bytes); // the stream ends after the bytes: matters only for the truncated case
        await until("the bad connection to close", () => bad.closes.length === 1);
        assert.equal(bad.closes[0]!.code, code, bad.closes[0]!.message);
        assert.equal(bad.received, frames);
        await rawClosed;
        if (code !== CloseCode.REMOTE_CLOSED) {
          // The peer is told why before the connection closes (protocol §13).
          const bytesIn = Buffer.concat(told);
          const frame = decodeFrame(bytesIn.subarray(4, 4 + bytesIn.readUInt32BE(0)));
          assert.ok(frame.type === FrameType.CLOSE, "a CLOSE frame");
          assert.equal(frame.close.code, code);
          assert.equal(frame.close.message, bad.closes[0]!.message);
        }
        good.send(testFrame(30, 1));
        goodServer.send(testFrame(40, 2));
        await until(
          "frames on the good connection",
          () => atGoodServer.received === 1 && atGood.received === 1,
        );
        assert.equal(atGoodServer.closes.length + atGood.closes.length, 0);
      } finally {
        raw.destroy();
        good.close();
        await listener.close();
      }
    });
  }

  it("reports transport_error when the peer resets the connection", async () => {
    const { listener, next } = await listen("tcp");
    const raw = await rawConnect(listener.port);
    try {
      const server = new Probe(await next());
      raw.resetAndDestroy();
      await until("the close", () => server.closes.length === 1);
      assert.equal(server.closes[0]!.code, CloseCode.TRANSPORT_ERROR);
      assert.match(server.closes[0]!.message, /ECONNRESET/);
    } finally {
      await listener.close();
    }
  });

  it("destroys the socket 2 s after close() when the peer never finishes", async () => {
    const { listener, next } = await listen("tcp");
    const raw = netConnect({ host: "127.0.0.1", port: listener.port, allowHalfOpen: true });
    raw.on("error", () => {});
    const rawEnded = new Promise<void>((resolve) => raw.once("end", () => resolve()));
    raw.resume();
    try {
      const transport = await next();
      const server = new Probe(transport);
      const started = Date.now();
      transport.close(CloseCode.SHUTDOWN, "bye");
      await rawEnded; // our FIN arrived; the peer keeps its side open
      await until("the close", () => server.closes.length === 1, 5_000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 1_900 && elapsed < 3_000, `closed after ${elapsed} ms`);
      assert.equal(server.closes[0]!.code, CloseCode.SHUTDOWN);
    } finally {
      raw.destroy();
      await listener.close();
    }
  });

  it("reassembles a frame written byte by byte", async () => {
    const { listener, next } = await listen("tcp");
    const raw = await rawConnect(listener.port);
    try {
      const server = new Probe(await next());
      const frame = testFrame(40);
      const bytes = lengthPrefix(frame);
      for (let i = 0; i < bytes.length; i++) {
        raw.write(bytes.subarray(i, i + 1));
        await sleep(1);
      }
      await until("the frame", () => server.received === 1);
      assert.deepEqual(server.frames, [frame]);
    } finally {
      raw.destroy();
      await listener.close();
    }
  });
});

describe("tcp and tls dialing and listening", () => {
  it("binds port 0 and reports the real port in its URL", async () => {
    const { listener } = await listen("tls");
    try {
      assert.equal(listener.kind, "tls");
      assert.ok(listener.port > 0);
      assert.equal(listener.url, `tls://127.0.0.1:${listener.port}`);
    } finally {
      await listener.close();
    }
  });

  it("rejects with UNAVAILABLE when nothing listens, and when the port is taken", async () => {
    const { listener } = await listen("tcp");
    const url = new URL(listener.url);
    await rejectsWith(
      listenTcp({ host: "127.0.0.1", port: listener.port }, () => {}),
      ErrorCode.UNAVAILABLE,
    );
    await listener.close();
    const err = await rejectsWith(dialTcp(url, {}), ErrorCode.UNAVAILABLE, /ECONNREFUSED/);
    assert.equal((err.cause as NodeJS.ErrnoException).code, "ECONNREFUSED");
  });

  it("stops accepting on close() while open transports keep working", async () => {
    const p = await pair("tcp");
    const { listener } = await listen("tcp");
    await listener.close();
    await rejectsWith(dialTcp(new URL(listener.url), {}), ErrorCode.UNAVAILABLE);
    const atServer = new Probe(p.server);
    new Probe(p.client);
    p.client.send(testFrame(100));
    await until("a frame", () => atServer.received === 1);
    await p.cleanup();
  });

  it("verifies TLS certificates: unknown CA and wrong name fail, insecure and servername work", async () => {
    const { listener, accepted } = await listen("tls");
    const url = new URL(listener.url);
    try {
      await rejectsWith(dialTcp(url, {}), ErrorCode.UNAVAILABLE, /certificate/i);
      await rejectsWith(
        dialTcp(url, { tls: { ca: material.ca, servername: "wrong.example" } }),
        ErrorCode.UNAVAILABLE,
        /wrong\.example/,
      );
      const insecure = await dialTcp(url, { tls: { insecure: true } });
      const named = await dialTcp(url, { tls: { ca: material.ca, servername: "localhost" } });
      assert.equal(insecure.kind, "tls");
      assert.equal(named.open, true);
      insecure.close();
      named.close();
    } finally {
      await listener.close();
      await sleep(20);
      for (const t of accepted) t.close();
    }
  });

  it("aborts a dial stuck in the TLS handshake with CANCELLED and destroys the socket", async () => {
    const silent: Server = createNetServer(); // accepts, never answers the handshake
    const serverSockets: Socket[] = [];
    silent.on("connection", (s) => serverSockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const controller = new AbortController();
      const dial = dialTcp(new URL(`tls://127.0.0.1:${port}`), { signal: controller.signal });
      await until("the connection", () => serverSockets.length === 1);
      controller.abort();
      await rejectsWith(dial, ErrorCode.CANCELLED);
      await new Promise<void>((resolve) => serverSockets[0]!.once("close", () => resolve()).resume());
      const pre = new AbortController();
      pre.abort();
      await rejectsWith(
        dialTcp(new URL(`tcp://127.0.0.1:${port}`), { signal: pre.signal }),
        ErrorCode.CANCELLED,
      );
    } finally {
      for (const s of serverSockets) s.destroy();
      silent.close();
    }
  });

  it("works over IPv6 loopback with a bracketed URL", async () => {
    const { listener, next } = await listen("tcp", { host: "::1" });
    try {
      assert.equal(listener.url, `tcp://[::1]:${listener.port}`);
      const client = await dialTcp(new URL(listener.url), {});
      const server = await next();
      assert.match(client.remoteAddress, /^\[::1\]:\d+$/);
      assert.equal(client.isLoopback, true);
      assert.equal(server.isLoopback, true);
      client.close();
      server.close();
    } finally {
      await listener.close();
    }
  });

  it("recognises loopback addresses", () => {
    for (const a of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"])
      assert.equal(isLoopbackAddress(a), true, a);
    for (const a of ["10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "", "localhost"]) {
      assert.equal(isLoopbackAddress(a), false, a);
    }
  });
});

describe("dialUrl and parseListenUrl", () => {
  it("dials by scheme: tcp, tls and memory", async () => {
    const { listener, accepted } = await listen("tcp");
    const net = new MemoryNetwork();
    const mem = net.listen("hub", () => {});
    try {
      const t = await dialUrl(listener.url);
      assert.equal(t.kind, "tcp");
      t.close();
      const m = await dialUrl("memory://hub", { memory: net });
      assert.equal(m.kind, "memory");
      m.close();
      await rejectsWith(dialUrl("memory://hub"), ErrorCode.INVALID_ARGUMENT, /MemoryNetwork/);
    } finally {
      await listener.close();
      await mem.close();
      await sleep(20);
      for (const a of accepted) a.close();
    }
  });

  it("refuses unknown schemes and malformed URLs with INVALID_ARGUMENT", async () => {
    await rejectsWith(
      dialUrl("ftp://127.0.0.1:1"),
      ErrorCode.INVALID_ARGUMENT,
      /ws:\/\/, wss:\/\/, tcp:\/\/, tls:\/\/, grpc:\/\/, grpcs:\/\/, http:\/\/, https:\/\/ and memory:\/\//,
    );
    await rejectsWith(dialUrl("not a url"), ErrorCode.INVALID_ARGUMENT, /malformed/);
  });

  it("parses listen URLs", () => {
    assert.deepEqual(parseListenUrl("ws://0.0.0.0:8080"), { kind: "ws", host: "0.0.0.0", port: 8080 });
    assert.deepEqual(parseListenUrl("WSS://example.com:443/"), {
      kind: "wss",
      host: "example.com",
      port: 443,
    });
    assert.deepEqual(parseListenUrl("tcp://[::1]:0"), { kind: "tcp", host: "::1", port: 0 });
    assert.deepEqual(parseListenUrl("tls://localhost"), { kind: "tls", host: "localhost", port: 33076 });
    assert.deepEqual(parseListenUrl("ws://127.0.0.1"), { kind: "ws", host: "127.0.0.1", port: 33075 });
    assert.deepEqual(parseListenUrl("tcp://h:65535"), { kind: "tcp", host: "h", port: 65535 });
  });

  it("rejects bad listen URLs with a clear INVALID_ARGUMENT", () => {
    const bad: [string, RegExp][] = [
      ["tcp://h:65536", /0 to 65535/],
      ["tcp://h:-1", /0 to 65535/],
      ["tcp://h:http", /0 to 65535/],
      [
        "ftp://h:80",
        /unsupported scheme "ftp:\/\/" \(supported: ws:\/\/, wss:\/\/, tcp:\/\/, tls:\/\/, grpc:\/\/ and grpcs:\/\/\)/,
      ],
      ["http://h:80", /http:\/\/ is dialled, not listened on: a ws:\/\/ listener serves it/],
      ["tcp://:80", /missing host/],
      ["tcp://h:80/path", /scheme:\/\/host:port/],
      ["tcp://[nope]:80", /IPv6/],
      ["tcp://bad_host:80", /host name/],
      ["127.0.0.1:80", /scheme:\/\/host:port/],
    ];
    for (const [s, pattern] of bad) {
      assert.throws(
        () => parseListenUrl(s),
        (e: unknown) =>
          e instanceof MusterError && e.code === ErrorCode.INVALID_ARGUMENT && pattern.test(e.message),
        s,
      );
    }
  });
});
