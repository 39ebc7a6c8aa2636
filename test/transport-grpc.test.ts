import assert from "node:assert/strict";
import { connect as http2Connect } from "node:http2";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import { dialUrl, parseListenUrl } from "../src/transport/dial.js";
import { dialGrpc, LINK_METHOD, listenGrpc } from "../src/transport/grpc.js";
import { decodeFrameMessage, encodeFrameMessage } from "../src/transport/grpc-frame.js";
import type { Listener, Transport, TransportOptions } from "../src/transport/types.js";
import { decodeFrame } from "../src/wire/codec.js";
import { CloseCode, FrameType } from "../src/wire/frame.js";
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
  kind: "grpc" | "grpcs",
  options: TransportOptions & { ca?: Buffer } = {},
): Promise<{ listener: Listener; accepted: Transport[]; next(): Promise<Transport> }> {
  const accepted: Transport[] = [];
  const { ca, ...rest } = options;
  const tls =
    kind === "grpcs" ? { cert: material.cert, key: material.key, ...(ca ? { ca } : {}) } : undefined;
  const listener = await listenGrpc({ host: "127.0.0.1", port: 0, ...rest, tls }, (t) => accepted.push(t));
  let taken = 0;
  const next = async (): Promise<Transport> => {
    const i = taken++;
    await until(`accepted call #${i}`, () => accepted.length > i);
    return accepted[i]!;
  };
  return { listener, accepted, next };
}

async function pair(kind: "grpc" | "grpcs", options: PairOptions = {}): Promise<TransportPair> {
  const { serverTraffic, clientTraffic, ...common } = options;
  const { listener, next } = await listen(kind, { ...common, traffic: serverTraffic });
  const client = await dialGrpc(new URL(listener.url), {
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

describeTransportConformance("grpc", (o) => pair("grpc", o));
describeTransportConformance("grpcs", (o) => pair("grpcs", o));

describe("grpc transport", () => {
  it("encodes a Frame message as protobuf does and reads one back as a view", () => {
    for (const size of [0, 1, 14, 127, 128, 16_383, 16_384, 70_000]) {
      const frame = testFrame(Math.max(size, 4)).subarray(0, size);
      const message = encodeFrameMessage(frame);
      assert.equal(message[0], 0x0a);
      assert.deepEqual(Buffer.from(decodeFrameMessage(message)), Buffer.from(frame));
    }
    // Unknown fields are skipped; a repeated data field keeps the last; none is empty.
    const withUnknown = Buffer.concat([
      Buffer.from([0x10, 0x96, 0x01]), // field 2, varint 150
      Buffer.from([0x0a, 0x01, 0x41]),
      Buffer.from([0x1d, 1, 2, 3, 4]), // field 3, fixed32
      Buffer.from([0x0a, 0x02, 0x42, 0x43]),
    ]);
    assert.equal(Buffer.from(decodeFrameMessage(withUnknown)).toString(), "BC");
    assert.equal(decodeFrameMessage(Buffer.alloc(0)).length, 0);
  });

  it("refuses a malformed Frame message with a precise protocol error", () => {
    const cases: Array<[number[], RegExp]> = [
      [[0x0a], /truncated varint/],
      [[0x0a, 0x05, 1, 2], /runs past the end/],
      [[0x0b], /wire type 3/],
      [[0x00, 0x01], /field number 0/],
      [[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /longer than 5 bytes/],
    ];
    for (const [bytes, pattern] of cases) {
      assert.throws(
        () => decodeFrameMessage(Buffer.from(bytes)),
        (e: unknown) =>
          e instanceof MusterError && e.code === ErrorCode.PROTOCOL_ERROR && pattern.test(e.message),
      );
    }
  });

  it("parses grpc:// and grpcs:// listen URLs with port 33077 by default, and dials them by URL", async () => {
    assert.deepEqual(parseListenUrl("grpc://0.0.0.0"), { kind: "grpc", host: "0.0.0.0", port: 33077 });
    assert.deepEqual(parseListenUrl("grpcs://[::1]:9"), { kind: "grpcs", host: "::1", port: 9 });
    const { listener, next } = await listen("grpc");
    const client = await dialUrl(listener.url);
    const server = await next();
    assert.equal(client.kind, "grpc");
    assert.equal(server.kind, "grpc");
    assert.match(server.remoteAddress, /^127\.0\.0\.1:\d+$/);
    client.close();
    await listener.close();
  });

  it("a malformed message from a hostile peer closes its link with protocol_error; others go on", async () => {
    const { listener, next } = await listen("grpc");
    const good = await dialGrpc(new URL(listener.url), {});
    const goodServer = await next();
    const atGood = new Probe(goodServer);
    // A raw gRPC client that sends a message that is not a Frame.
    const raw = new grpc.Client(`127.0.0.1:${listener.port}`, grpc.credentials.createInsecure());
    const call = raw.makeBidiStreamRequest(
      LINK_METHOD,
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const received: Buffer[] = [];
    call.on("data", (b: Buffer) => received.push(b));
    call.on("error", () => {});
    const hostileServer = await next();
    const atHostile = new Probe(hostileServer);
    call.write(Buffer.from([0x0a, 0x7f, 1, 2, 3]));
    await until("the hostile link closed", () => atHostile.closes.length === 1);
    assert.equal(atHostile.closes[0]!.code, CloseCode.PROTOCOL_ERROR);
    await until("a CLOSE frame to the hostile peer", () => received.length === 1);
    const close = decodeFrame(decodeFrameMessage(received[0]!));
    assert.equal(close.type, FrameType.CLOSE);
    assert.match(close.close?.message ?? "", /runs past the end/);
    good.send(testFrame(100));
    await until("the good link still works", () => atGood.received === 1);
    assert.equal(atGood.closes.length, 0);
    raw.close();
    good.close();
    await listener.close();
  });

  it("a frame far over the limit is refused by gRPC itself and reported as frame_too_large", async () => {
    const { listener, next } = await listen("grpc", { maxFrameBytes: 1024 });
    const client = await dialGrpc(new URL(listener.url), { maxFrameBytes: 1024 });
    const server = await next();
    const atServer = new Probe(server);
    const atClient = new Probe(client);
    client.send(testFrame(64 * 1024));
    await until("both closes", () => atServer.closes.length === 1 && atClient.closes.length === 1);
    assert.equal(atServer.closes[0]!.code, CloseCode.FRAME_TOO_LARGE);
    assert.equal(atServer.received, 0);
    await listener.close();
  });

  it("a frame over firstFrameMaxBytes is refused only as the first", async () => {
    const { listener, next } = await listen("grpc", { firstFrameMaxBytes: 100 });
    const a = await dialGrpc(new URL(listener.url), {});
    const atA = new Probe(await next());
    a.send(testFrame(200));
    await until("the first link closed", () => atA.closes.length === 1);
    assert.equal(atA.closes[0]!.code, CloseCode.FRAME_TOO_LARGE);
    const b = await dialGrpc(new URL(listener.url), {});
    const atB = new Probe(await next());
    b.send(testFrame(50));
    b.send(testFrame(5000, 1));
    await until("both frames on the second link", () => atB.received === 2);
    assert.equal(atB.closes.length, 0);
    b.close();
    await listener.close();
  });

  it("a dial to a port that is not listening, or a server without the service, fails with unavailable", async () => {
    const { listener } = await listen("grpc");
    const port = listener.port;
    await listener.close();
    await assert.rejects(dialGrpc(new URL(`grpc://127.0.0.1:${port}`), {}), (e: unknown) => {
      return (
        e instanceof MusterError &&
        e.code === ErrorCode.UNAVAILABLE &&
        /cannot reach grpc:\/\/127\.0\.0\.1/.test(e.message)
      );
    });
    const other = new grpc.Server();
    const bound = await new Promise<number>((resolve, reject) =>
      other.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    await assert.rejects(dialGrpc(new URL(`grpc://127.0.0.1:${bound}`), {}), (e: unknown) => {
      return (
        e instanceof MusterError &&
        e.code === ErrorCode.UNAVAILABLE &&
        /does not implement the method \/muster\.v1\.Link\/Connect/.test(e.message)
      );
    });
    other.forceShutdown();
  });

  it("an aborted dial rejects with cancelled", async () => {
    const { listener } = await listen("grpc");
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(dialGrpc(new URL(listener.url), { signal: ac.signal }), (e: unknown) => {
      return e instanceof MusterError && e.code === ErrorCode.CANCELLED;
    });
    await listener.close();
  });

  it("grpcs refuses a client that does not trust the server, and passes a trusted client certificate", async () => {
    const { listener, next } = await listen("grpcs", { ca: material.ca });
    await assert.rejects(dialGrpc(new URL(listener.url), {}), (e: unknown) => {
      return e instanceof MusterError && e.code === ErrorCode.UNAVAILABLE;
    });
    const client = await dialGrpc(new URL(listener.url), { tls: { ca: material.ca } });
    const server = await next();
    assert.equal(server.peerCertificate, undefined, "no client certificate was sent");
    client.close();
    await listener.close();
  });

  it("a listener closed with a link open leaves the link working", async () => {
    const { listener, next } = await listen("grpc");
    const client = await dialGrpc(new URL(listener.url), {});
    const atServer = new Probe(await next());
    await listener.close();
    client.send(testFrame(64));
    await until("a frame after the listener closed", () => atServer.received === 1);
    client.close();
    await until("the close", () => atServer.closes.length === 1);
  });

  it("a peer that stops reading is cut by close's grace (reset), not held for ever", async () => {
    // A raw HTTP/2 client that opens the call and never reads: the server's writes stall on
    // flow control; a close of the server's link must still end it.
    const { listener, next } = await listen("grpc");
    const session = http2Connect(`http://127.0.0.1:${listener.port}`);
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": LINK_METHOD,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.pause();
    const server = await next();
    const atServer = new Probe(server);
    const big = testFrame(512 * 1024);
    for (let i = 0; i < 8; i++) server.send(big);
    assert.ok(server.bufferedBytes > 1024 * 1024, `buffered ${server.bufferedBytes}`);
    server.close();
    await until("the server's close is reported", () => atServer.closes.length === 1, 10_000);
    assert.equal(atServer.closes[0]!.code, CloseCode.NORMAL);
    session.destroy();
    await listener.close();
  });
});
