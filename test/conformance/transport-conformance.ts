import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { TrafficStats } from "../../src/transport/traffic.js";
import type {
  Transport,
  TransportCloseInfo,
  TransportHandler,
  TransportOptions,
} from "../../src/transport/types.js";
import { CloseCode } from "../../src/wire/frame.js";

/** A connected pair made by a transport under test; `options` apply to both ends. */
export interface TransportPair {
  client: Transport;
  server: Transport;
  /** Closes both ends and whatever listener made them. */
  cleanup(): Promise<void>;
}

/** Options for a pair: `options` apply to both ends; each end counts into its own stats. */
export interface PairOptions extends TransportOptions {
  /** Counters of the accepting end (given to the listener). */
  serverTraffic?: TrafficStats;
  /** Counters of the dialing end. */
  clientTraffic?: TrafficStats;
}

export type TransportPairFactory = (options?: PairOptions) => Promise<TransportPair>;

/** The self-signed test CA and the localhost certificate of test/fixtures/tls. */
export function testTls(): { ca: Buffer; cert: Buffer; key: Buffer } {
  const dir = new URL("../../../test/fixtures/tls/", import.meta.url);
  const read = (name: string): Buffer => readFileSync(new URL(name, dir));
  return { ca: read("ca.pem"), cert: read("cert.pem"), key: read("key.pem") };
}

/**
 * Records what a transport reports. Frames are copied (the transport may hand out views), or
 * passed to `check` instead of being kept, for big transfers.
 */
export class Probe implements TransportHandler {
  readonly frames: Buffer[] = [];
  readonly closes: TransportCloseInfo[] = [];
  received = 0;
  drains = 0;
  readonly #check: ((frame: Uint8Array, index: number) => void) | undefined;

  constructor(transport: Transport, check?: (frame: Uint8Array, index: number) => void) {
    this.#check = check;
    transport.setHandler(this);
  }

  onFrame(frame: Uint8Array): void {
    if (this.#check) this.#check(frame, this.received);
    else this.frames.push(Buffer.from(frame));
    this.received++;
  }

  onClose(info: TransportCloseInfo): void {
    this.closes.push(info);
  }

  onDrain(): void {
    this.drains++;
  }
}

/** Polls `pred` until it holds; fails with `what` after `timeoutMs`. */
export async function until(what: string, pred: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A frame of `size` bytes (at least 4) with random content and `index` in its first 4 bytes. */
export function testFrame(size: number, index = 0): Buffer {
  const f = randomBytes(size);
  f.writeUInt32BE(index, 0);
  return f;
}

const MIN_FRAME = 14; // the wire header: the smallest frame a length-prefix decoder accepts

function randomFrames(count: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    frames.push(testFrame(MIN_FRAME + Math.floor(Math.random() * (64 * 1024 - MIN_FRAME + 1)), i));
  }
  return frames;
}

/** A checker comparing frame i with expected[i]; mismatches are collected, not thrown. */
function checker(expected: Buffer[], mismatches: string[]) {
  return (frame: Uint8Array, i: number): void => {
    const want = expected[i];
    if (!want) mismatches.push(`extra frame #${i} of ${frame.length} bytes`);
    else if (!Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).equals(want)) {
      mismatches.push(`frame #${i}: ${frame.length} bytes differ from the ${want.length} sent`);
    }
  };
}

const T = { timeout: 60_000 };

/** The behaviour every Transport must show, run against pairs made by `factory`. */
export function describeTransportConformance(name: string, factory: TransportPairFactory): void {
  describe(`${name} transport conformance`, () => {
    it("delivers 1000 frames of random sizes whole and in order, both ways", T, async () => {
      const { client, server, cleanup } = await factory();
      try {
        const up = randomFrames(1000);
        const down = randomFrames(1000);
        const bad: string[] = [];
        const atServer = new Probe(server, checker(up, bad));
        const atClient = new Probe(client, checker(down, bad));
        for (const f of up) client.send(f);
        for (const f of down) server.send(f);
        await until("1000 frames each way", () => atServer.received >= 1000 && atClient.received >= 1000);
        await sleep(20);
        assert.deepEqual(bad, []);
        assert.equal(atServer.received, 1000);
        assert.equal(atClient.received, 1000);
        assert.deepEqual([...atServer.closes, ...atClient.closes], []);
      } finally {
        await cleanup();
      }
    });

    it("buffers frames that arrive before setHandler, then the close", T, async () => {
      const { client, server, cleanup } = await factory();
      try {
        const sent = [testFrame(20, 0), testFrame(3000, 1), testFrame(70_000, 2)];
        for (const f of sent) client.send(f);
        await sleep(100); // let them arrive with no handler set
        const atServer = new Probe(server);
        await until("early frames", () => atServer.received === 3);
        assert.deepEqual(atServer.frames, sent);
        const late = testFrame(50, 3);
        client.send(late);
        client.close();
        const atClient = new Probe(client);
        await until("closes", () => atServer.closes.length === 1 && atClient.closes.length === 1);
        assert.deepEqual(atServer.frames, [...sent, late], "frames sent before close() arrive first");
      } finally {
        await cleanup();
      }
    });

    it("sendMany delivers every frame in order, interleaved with send", T, async () => {
      const { client, server, cleanup } = await factory();
      try {
        const atServer = new Probe(server);
        new Probe(client);
        const frames = Array.from({ length: 60 }, (_, i) => testFrame(MIN_FRAME + i * 97, i));
        client.send(frames[0]!);
        assert.equal(client.sendMany(frames.slice(1, 40)), true);
        client.sendMany([]);
        client.send(frames[40]!);
        client.sendMany(frames.slice(41));
        await until("60 frames", () => atServer.received === 60);
        assert.deepEqual(atServer.frames, frames);
      } finally {
        await cleanup();
      }
    });

    it("accepts a 1 MiB frame at the default limit", T, async () => {
      const { client, server, cleanup } = await factory();
      try {
        const atServer = new Probe(server);
        const atClient = new Probe(client);
        const big = testFrame(1024 * 1024);
        client.send(big);
        server.send(big);
        await until("the big frames", () => atServer.received === 1 && atClient.received === 1);
        assert.ok(atServer.frames[0]!.equals(big));
        assert.ok(atClient.frames[0]!.equals(big));
        assert.equal(atServer.closes.length + atClient.closes.length, 0);
      } finally {
        await cleanup();
      }
    });

    it(
      "closes with frame_too_large on the receiving side when a frame exceeds maxFrameBytes",
      T,
      async () => {
        const { client, server, cleanup } = await factory({ maxFrameBytes: 1024 });
        try {
          const atServer = new Probe(server);
          const atClient = new Probe(client);
          const small = testFrame(1024);
          client.send(small);
          await until("the frame at the limit", () => atServer.received === 1);
          client.send(testFrame(2000, 1));
          client.send(testFrame(100, 2));
          await until("both closes", () => atServer.closes.length === 1 && atClient.closes.length === 1);
          assert.equal(atServer.closes[0]!.code, CloseCode.FRAME_TOO_LARGE);
          assert.deepEqual(atServer.frames, [small], "nothing arrives after the big frame");
          assert.equal(server.open, false);
          assert.equal(client.open, false);
          assert.notEqual(atClient.closes[0]!.code, CloseCode.NORMAL);
        } finally {
          await cleanup();
        }
        // The process (and the transport implementation) carries on: a new pair works.
        const next = await factory({ maxFrameBytes: 1024 });
        try {
          const atServer = new Probe(next.server);
          new Probe(next.client);
          const f = testFrame(1000);
          next.client.send(f);
          await until("a frame on a new pair", () => atServer.received === 1);
          assert.ok(atServer.frames[0]!.equals(f));
        } finally {
          await next.cleanup();
        }
      },
    );

    for (const code of [undefined, CloseCode.SHUTDOWN]) {
      it(
        `close(${code ?? ""}) reports ${code ?? "normal"} locally and remote_closed on the peer, once each`,
        T,
        async () => {
          const { client, server, cleanup } = await factory();
          try {
            const atServer = new Probe(server);
            const atClient = new Probe(client);
            client.close(code, "test is done");
            assert.equal(client.open, false, "not open once closing");
            client.close(); // a second close is a no-op
            await until("both closes", () => atServer.closes.length >= 1 && atClient.closes.length >= 1);
            await sleep(200);
            assert.equal(atClient.closes.length, 1);
            assert.equal(atServer.closes.length, 1);
            assert.equal(atClient.closes[0]!.code, code ?? CloseCode.NORMAL);
            const expected: CloseCode[] = code ? [CloseCode.REMOTE_CLOSED, code] : [CloseCode.REMOTE_CLOSED];
            assert.ok(expected.includes(atServer.closes[0]!.code), `peer saw ${atServer.closes[0]!.code}`);
            assert.equal(server.open, false);
          } finally {
            await cleanup();
          }
        },
      );
    }

    it("drops a send after close: returns false and does not throw", T, async () => {
      const { client, server, cleanup } = await factory();
      try {
        const atServer = new Probe(server);
        const atClient = new Probe(client);
        client.close();
        assert.equal(client.send(testFrame(100)), false);
        assert.equal(client.sendMany([testFrame(100), testFrame(100)]), false);
        await until("both closes", () => atServer.closes.length === 1 && atClient.closes.length === 1);
        assert.equal(server.send(testFrame(100)), false);
        assert.equal(client.send(testFrame(100)), false);
        await sleep(50);
        assert.equal(atServer.received, 0);
        assert.equal(atClient.received, 0);
      } finally {
        await cleanup();
      }
    });

    it("applies back-pressure: send returns false above the high-water mark, then onDrain", T, async () => {
      const highWaterMarkBytes = 64 * 1024;
      const { client, server, cleanup } = await factory({ highWaterMarkBytes });
      try {
        const atServer = new Probe(server);
        let bufferedAtDrain = -1;
        const atClient = new Probe(client);
        const onDrain = atClient.onDrain.bind(atClient);
        atClient.onDrain = () => {
          bufferedAtDrain = client.bufferedBytes;
          onDrain();
        };
        const frame = testFrame(64 * 1024);
        let sent = 0;
        let ok = true;
        // Nothing is read while this loop runs: the peer lives in this same event loop.
        while (ok && sent < 2048) {
          ok = client.send(frame);
          sent++;
        }
        assert.equal(ok, false, `send never returned false after ${sent} frames`);
        assert.ok(client.bufferedBytes > highWaterMarkBytes, `bufferedBytes ${client.bufferedBytes}`);
        assert.equal(atClient.drains, 0, "onDrain only once the peer has read");
        await until("onDrain", () => atClient.drains >= 1);
        assert.ok(bufferedAtDrain <= highWaterMarkBytes, `bufferedBytes at drain: ${bufferedAtDrain}`);
        await until(`${sent} frames at the peer`, () => atServer.received === sent);
        assert.equal(client.send(testFrame(1024)), true, "below the mark again");
      } finally {
        await cleanup();
      }
    });

    it("counts exactly the frames and bytes sent and received, on each end, under its kind", T, async () => {
      const serverTraffic = new TrafficStats();
      const clientTraffic = new TrafficStats();
      const { client, server, cleanup } = await factory({ serverTraffic, clientTraffic });
      try {
        assert.equal(client.kind, server.kind);
        const sizes = [MIN_FRAME, 100, 4096, 70_000, MIN_FRAME + 1];
        const up = sizes.map((n, i) => testFrame(n, i));
        const down = [...sizes, 1024 * 1024].map((n, i) => testFrame(n, i));
        const sum = (frames: Buffer[]): number => frames.reduce((n, f) => n + f.length, 0);
        const atServer = new Probe(server);
        const atClient = new Probe(client);
        client.send(up[0]!);
        client.sendMany(up.slice(1));
        for (const f of down) server.send(f);
        await until(
          "every frame",
          () => atServer.received === up.length && atClient.received === down.length,
        );
        const one = (stats: TrafficStats) => {
          const entries = stats.entries();
          assert.deepEqual(
            entries.map(([kind]) => kind),
            [server.kind],
          );
          return { ...entries[0]![1] };
        };
        assert.deepEqual(one(serverTraffic), {
          framesIn: up.length,
          bytesIn: sum(up),
          framesOut: down.length,
          bytesOut: sum(down),
        });
        assert.deepEqual(one(clientTraffic), {
          framesIn: down.length,
          bytesIn: sum(down),
          framesOut: up.length,
          bytesOut: sum(up),
        });
        // Sends after close are dropped, and not counted.
        client.close();
        client.send(testFrame(100));
        await until("the close", () => atServer.closes.length === 1);
        assert.equal(one(clientTraffic).framesOut, up.length);
        assert.equal(one(serverTraffic).framesIn, up.length);
      } finally {
        await cleanup();
      }
    });

    it("reports loopback and a remote address on both ends", T, async () => {
      const { client, server, cleanup } = await factory();
      try {
        for (const t of [client, server]) {
          assert.equal(t.isLoopback, true);
          assert.equal(typeof t.remoteAddress, "string");
          assert.ok(t.remoteAddress.length > 0);
          assert.equal(t.open, true);
        }
      } finally {
        await cleanup();
      }
    });
  });
}
