import assert from "node:assert/strict";
import { get as httpGet } from "node:http";
import { createServer as createNetServer, connect as netConnect, type Socket } from "node:net";
import { describe, it } from "node:test";
import { WebSocket } from "ws";
import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import { dialUrl } from "../src/transport/dial.js";
import type { Transport, TransportOptions } from "../src/transport/types.js";
import { dialWebSocket, listenWebSocket, type WebSocketListener } from "../src/transport/websocket.js";
import { CloseCode } from "../src/wire/frame.js";
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

async function listen(
  kind: "ws" | "wss",
  options: TransportOptions & Pick<Parameters<typeof listenWebSocket>[0], "onHttpRequest"> = {},
): Promise<{ listener: WebSocketListener; accepted: Transport[]; next(): Promise<Transport> }> {
  const accepted: Transport[] = [];
  const listener = await listenWebSocket(
    { host: "127.0.0.1", port: 0, ...options, ...(kind === "wss" ? { tls: material } : {}) },
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

async function pair(kind: "ws" | "wss", options: PairOptions = {}): Promise<TransportPair> {
  const { serverTraffic, clientTraffic, ...common } = options;
  const { listener, next } = await listen(kind, { ...common, traffic: serverTraffic });
  const client = await dialWebSocket(new URL(listener.url), {
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

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, pattern?: RegExp): Promise<void> {
  const err = await p.then(
    () => assert.fail(`expected ${code}, the promise resolved`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MusterError, `expected a MusterError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
}

function fetchText(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }),
      );
    }).on("error", reject);
  });
}

describeTransportConformance("ws", (options) => pair("ws", options));
describeTransportConformance("wss", (options) => pair("wss", options));

describe("websocket specifics", () => {
  it("closes with protocol_error when a text message arrives", async () => {
    const { listener, next } = await listen("ws");
    const raw = new WebSocket(listener.url);
    try {
      const rawClosed = new Promise<[number, string]>((resolve) =>
        raw.once("close", (code, reason) => resolve([code, reason.toString()])),
      );
      await new Promise<void>((resolve) => raw.once("open", () => resolve()));
      const server = new Probe(await next());
      raw.send("hello");
      await until("the close", () => server.closes.length === 1);
      assert.equal(server.closes[0]!.code, CloseCode.PROTOCOL_ERROR);
      assert.equal(server.received, 0);
      const [code, reason] = await rawClosed;
      assert.equal(code, 1002);
      assert.match(reason, /^protocol_error: text message/);
    } finally {
      raw.terminate();
      await listener.close();
    }
  });

  it("terminates 2 s after close() when the peer never answers the closing handshake", async () => {
    const { listener, next } = await listen("ws");
    const raw = netConnect({ host: "127.0.0.1", port: listener.port, allowHalfOpen: true });
    raw.on("error", () => {});
    let received = "";
    raw.setEncoding("latin1");
    raw.on("data", (c: string) => {
      received += c;
    });
    const rawEnded = new Promise<void>((resolve) => raw.once("end", () => resolve()));
    raw.write(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    try {
      const transport = await next();
      const server = new Probe(transport);
      const started = Date.now();
      transport.close(CloseCode.SHUTDOWN, "bye");
      await until("the close frame", () => received.includes("shutdown: bye"));
      await until("the close", () => server.closes.length === 1, 5_000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 1_900 && elapsed < 3_000, `closed after ${elapsed} ms`);
      assert.equal(server.closes[0]!.code, CloseCode.SHUTDOWN);
      assert.match(received, /^HTTP\/1\.1 101 /);
      await rawEnded;
    } finally {
      raw.destroy();
      await listener.close();
    }
  });

  it("carries the close code and message to the peer", async () => {
    const p = await pair("ws");
    try {
      const atClient = new Probe(p.client);
      const atServer = new Probe(p.server);
      p.server.close(CloseCode.REPLACED, `a newer connection took over ${"é".repeat(200)}`);
      await until("both closes", () => atClient.closes.length === 1 && atServer.closes.length === 1);
      assert.equal(atServer.closes[0]!.code, CloseCode.REPLACED);
      assert.equal(atClient.closes[0]!.code, CloseCode.REPLACED);
      assert.match(atClient.closes[0]!.message, /a newer connection took over é+$/);
    } finally {
      await p.cleanup();
    }
  });

  it("answers plain HTTP with 404 JSON by default, or with onHttpRequest", async () => {
    const { listener } = await listen("ws");
    const custom = await listen("ws", {
      onHttpRequest: (req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(`you asked for ${req.url}`);
      },
    });
    try {
      const base = listener.url.replace("ws://", "http://");
      assert.deepEqual(await fetchText(`${base}/anything`), {
        status: 404,
        type: "application/json",
        body: '{"error":"not found"}',
      });
      const res = await fetchText(`${custom.listener.url.replace("ws://", "http://")}/status`);
      assert.equal(res.body, "you asked for /status");
      assert.ok(listener.httpServer.listening);
    } finally {
      await listener.close();
      await custom.listener.close();
    }
    assert.equal(listener.httpServer.listening, false);
  });

  it("stops accepting on close() while open transports keep working", async () => {
    const { listener, next } = await listen("ws");
    const client = await dialUrl(listener.url);
    const server = await next();
    await listener.close();
    await rejectsWith(dialWebSocket(new URL(listener.url), {}), ErrorCode.UNAVAILABLE);
    const atServer = new Probe(server);
    const atClient = new Probe(client);
    server.send(testFrame(64));
    client.send(testFrame(64));
    await until("frames both ways", () => atServer.received === 1 && atClient.received === 1);
    client.close();
    await until("closes", () => atServer.closes.length === 1 && atClient.closes.length === 1);
  });

  it("verifies wss certificates unless insecure", async () => {
    const { listener, accepted } = await listen("wss");
    try {
      assert.match(listener.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
      await rejectsWith(dialWebSocket(new URL(listener.url), {}), ErrorCode.UNAVAILABLE, /certificate/i);
      const t = await dialUrl(listener.url, { tls: { insecure: true } });
      assert.equal(t.kind, "wss");
      t.close();
    } finally {
      await listener.close();
      await until("accepted transports", () => accepted.length === 1);
      for (const a of accepted) a.close();
    }
  });

  it("rejects with UNAVAILABLE when nothing listens, CANCELLED when aborted", async () => {
    const { listener } = await listen("ws");
    const url = new URL(listener.url);
    await listener.close();
    await rejectsWith(dialWebSocket(url, {}), ErrorCode.UNAVAILABLE, /ECONNREFUSED/);

    const silent = createNetServer(); // accepts, never answers the upgrade request
    const sockets: Socket[] = [];
    silent.on("connection", (s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const port = (silent.address() as { port: number }).port;
      const controller = new AbortController();
      const dial = dialWebSocket(new URL(`ws://127.0.0.1:${port}`), { signal: controller.signal });
      await until("the connection", () => sockets.length === 1);
      controller.abort();
      await rejectsWith(dial, ErrorCode.CANCELLED);
      await new Promise<void>((resolve) => sockets[0]!.once("close", () => resolve()).resume());
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});
