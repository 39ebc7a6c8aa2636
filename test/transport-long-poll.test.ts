import assert from "node:assert/strict";
import { request } from "node:http";
import { connect as netConnect } from "node:net";
import { describe, it } from "node:test";
import { dialUrl, parseListenUrl } from "../src/transport/dial.js";
import { dialLongPoll } from "../src/transport/long-poll-client.js";
import { listenLongPoll } from "../src/transport/long-poll-host.js";
import type { Listener, Transport, TransportOptions } from "../src/transport/types.js";
import { listenWebSocket } from "../src/transport/websocket.js";
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
  secure: boolean,
  options: TransportOptions = {},
): Promise<{ listener: Listener; accepted: Transport[]; next(): Promise<Transport> }> {
  const accepted: Transport[] = [];
  const listener = await listenWebSocket(
    { host: "127.0.0.1", port: 0, ...options, ...(secure ? { tls: material } : {}) },
    (t) => accepted.push(t),
  );
  let taken = 0;
  const next = async (): Promise<Transport> => {
    const i = taken++;
    await until(`accepted link #${i}`, () => accepted.length > i);
    return accepted[i]!;
  };
  return { listener, accepted, next };
}

const httpUrl = (l: Listener, secure: boolean): URL =>
  new URL(`${secure ? "https" : "http"}://127.0.0.1:${l.port}/`);

async function pair(secure: boolean, options: PairOptions = {}): Promise<TransportPair> {
  const { serverTraffic, clientTraffic, ...common } = options;
  const accepted: Transport[] = [];
  const listener = await listenLongPoll(
    { host: "127.0.0.1", port: 0, ...common, traffic: serverTraffic, ...(secure ? { tls: material } : {}) },
    (t) => accepted.push(t),
  );
  const next = async (): Promise<Transport> => {
    await until("the accepted link", () => accepted.length > 0);
    return accepted[0]!;
  };
  const client = await dialLongPoll(httpUrl(listener, secure), {
    ...common,
    traffic: clientTraffic,
    tls: { ca: material.ca, servername: "localhost" },
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

describeTransportConformance("long-poll (http)", (o) => pair(false, o));
describeTransportConformance("long-poll (https)", (o) => pair(true, o));

/** A raw HTTP request to the listener; resolves with status, headers and body. */
function raw(
  port: number,
  method: string,
  path: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("long-poll transport", () => {
  it("refuses to listen on http:// (a ws:// listener serves it)", () => {
    assert.throws(
      () => parseListenUrl("http://0.0.0.0:8080"),
      /http:\/\/ is dialled, not listened on: a ws:\/\/ listener serves it/,
    );
  });

  it("a hostile client: unknown sid, overlapping GETs and POSTs, oversized and truncated bodies get 400/413; others go on", async () => {
    const { listener, next } = await listen(false, { maxFrameBytes: 1024 });
    const port = listener.port;
    const good = await dialLongPoll(httpUrl(listener, false), { maxFrameBytes: 1024 });
    const atGood = new Probe(await next());
    const open = async (): Promise<{ sid: string; link: Probe }> => {
      const r = await raw(port, "POST", "/muster/poll");
      assert.equal(r.status, 200);
      const { sid } = JSON.parse(r.body.toString()) as { sid: string };
      return { sid, link: new Probe(await next()) };
    };
    assert.equal((await raw(port, "GET", "/muster/poll?sid=nope&seen=0")).status, 400);
    assert.equal((await raw(port, "GET", "/muster/poll")).status, 400, "open needs POST");

    // Two GETs at once: the second is refused and the link closes.
    const a = await open();
    const held = raw(port, "GET", `/muster/poll?sid=${a.sid}&seen=0`);
    await new Promise((r) => setTimeout(r, 50));
    const overlap = await raw(port, "GET", `/muster/poll?sid=${a.sid}&seen=0`);
    assert.equal(overlap.status, 400);
    assert.match(overlap.body.toString(), /overlap/);
    assert.equal((await held).headers["muster-closed"], CloseCode.PROTOCOL_ERROR);
    await until("the overlapping link closed", () => a.link.closes.length === 1);

    // A body over the limit: 413, closed with frame_too_large.
    const b = await open();
    const big = await raw(port, "POST", `/muster/poll?sid=${b.sid}&n=1`, Buffer.alloc(5000));
    assert.equal(big.status, 413);
    await until("the oversized link closed", () => b.link.closes.length === 1);
    assert.equal(b.link.closes[0]!.code, CloseCode.FRAME_TOO_LARGE);

    // A body that ends inside a frame.
    const c = await open();
    const cut = Buffer.alloc(30);
    cut.writeUInt32BE(100, 0);
    const truncated = await raw(port, "POST", `/muster/poll?sid=${c.sid}&n=1`, cut);
    assert.equal(truncated.status, 400);
    assert.match(truncated.body.toString(), /ends inside a frame/);
    await until("the truncated link closed", () => c.link.closes.length === 1);

    // A retried POST (same n) is answered and not delivered twice; a skipped n is refused.
    const d = await open();
    const frame = testFrame(40);
    const body = Buffer.concat([Buffer.from([0, 0, 0, 40]), frame]);
    assert.equal((await raw(port, "POST", `/muster/poll?sid=${d.sid}&n=1`, body)).status, 200);
    assert.equal((await raw(port, "POST", `/muster/poll?sid=${d.sid}&n=1`, body)).status, 200);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(d.link.received, 1, "the retried batch was not delivered again");
    assert.equal((await raw(port, "POST", `/muster/poll?sid=${d.sid}&n=3`, body)).status, 400);

    good.send(testFrame(100));
    await until("the good link still works", () => atGood.received === 1);
    assert.equal(atGood.closes.length, 0);
    good.close();
    await listener.close();
  });

  it("a POST cut half-way delivers nothing; its retry delivers the batch once", async () => {
    const { listener, next } = await listen(false);
    try {
      const r = await raw(listener.port, "POST", "/muster/poll");
      const { sid } = JSON.parse(r.body.toString()) as { sid: string };
      const link = new Probe(await next());
      const frame = (i: number): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 40]), testFrame(40, i)]);
      const body = Buffer.concat([frame(0), frame(1)]);
      // The first frame whole, then the connection is cut before the second.
      const socket = netConnect(listener.port, "127.0.0.1");
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      socket.write(
        `POST /muster/poll?sid=${sid}&n=1 HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      socket.write(body.subarray(0, 44));
      await new Promise((resolve) => setTimeout(resolve, 50));
      socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(link.received, 0, "nothing of a cut batch is delivered");
      const retry = await raw(listener.port, "POST", `/muster/poll?sid=${sid}&n=1`, body);
      assert.equal(retry.status, 200);
      await until("the batch", () => link.received === 2);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(link.received, 2);
      assert.deepEqual(link.closes, []);
    } finally {
      await listener.close();
    }
  });

  it("a listener holds at most maxLinks links: one more is answered 503", async () => {
    const accepted: Transport[] = [];
    const listener = await listenLongPoll({ host: "127.0.0.1", port: 0, maxLinks: 2 }, (t) =>
      accepted.push(t),
    );
    assert.equal((await raw(listener.port, "POST", "/muster/poll")).status, 200);
    assert.equal((await raw(listener.port, "POST", "/muster/poll")).status, 200);
    const third = await raw(listener.port, "POST", "/muster/poll");
    assert.equal(third.status, 503);
    assert.equal(third.headers["retry-after"], "1");
    accepted[0]!.close(); // its last answer waits for a GET that never comes: gone after the grace
    await until("room again", () => accepted.length === 2);
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    assert.equal((await raw(listener.port, "POST", "/muster/poll")).status, 200);
    await listener.close();
  });

  it("a GET whose answer was lost is answered again with the same batch, nothing lost or repeated", async () => {
    const { listener, next } = await listen(false);
    const r = await raw(listener.port, "POST", "/muster/poll");
    const { sid } = JSON.parse(r.body.toString()) as { sid: string };
    const server = await next();
    new Probe(server);
    server.send(testFrame(20, 1));
    const first = await raw(listener.port, "GET", `/muster/poll?sid=${sid}&seen=0`);
    assert.equal(first.headers["muster-batch"], "1");
    // The client says it never got batch 1: the same bytes come again.
    const again = await raw(listener.port, "GET", `/muster/poll?sid=${sid}&seen=0`);
    assert.equal(again.headers["muster-batch"], "1");
    assert.deepEqual(again.body, first.body);
    // Acknowledged: the next GET carries batch 2 with what was sent since.
    server.send(testFrame(20, 2));
    const second = await raw(listener.port, "GET", `/muster/poll?sid=${sid}&seen=1`);
    assert.equal(second.headers["muster-batch"], "2");
    assert.equal(second.body.readUInt32BE(4), 2);
    server.close();
    await listener.close();
  });

  it("a browser's request (Origin) is refused, as a browser's WebSocket upgrade is", async () => {
    const { listener } = await listen(false);
    const l = await listenWebSocket(
      {
        host: "127.0.0.1",
        port: 0,
        checkUpgrade: (req) =>
          req.headers.origin
            ? { status: 403, error: "permission_denied", message: "browsers may not connect" }
            : undefined,
      },
      () => assert.fail("no link may open"),
    );
    const r = await raw(l.port, "POST", "/muster/poll", undefined, { origin: "https://evil.example" });
    assert.equal(r.status, 403);
    await l.close();
    await listener.close();
  });

  it("http:// dials a WebSocket when the upgrade works, and says nothing", async () => {
    const { listener, next } = await listen(false);
    const notes: string[] = [];
    const t = await dialUrl(`http://127.0.0.1:${listener.port}/`, { onFallback: (m) => notes.push(m) });
    assert.equal(t.kind, "ws");
    assert.equal((await next()).kind, "ws");
    assert.deepEqual(notes, []);
    t.close();
    await listener.close();
  });
});
