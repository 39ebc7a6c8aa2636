import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isMusterError } from "../../test/support/errors.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { decodeFrame, encodeFrame, encodeValue } from "./codec.js";
import { type Frame, FrameType, HEADER_BYTES, PayloadKind } from "./frame.js";
import { LENGTH_PREFIX_BYTES, LengthPrefixDecoder, lengthPrefix } from "./length-prefix.js";

const MAX = 1024 * 1024;

/** A few real frames of different sizes and types. */
const FRAMES: Buffer[] = [
  encodeFrame({ type: FrameType.ACK, seq: 0, ack: 3 }),
  encodeFrame({
    type: FrameType.CALL,
    seq: 1,
    ack: 0,
    id: 1,
    timeoutMs: 5000,
    method: "sys.ping",
    payload: encodeValue({ hello: "wörld" }),
  }),
  encodeFrame({ type: FrameType.PING, seq: 0, ack: 0, time: 1.5 }),
  encodeFrame({
    type: FrameType.ITEM,
    seq: 2,
    ack: 1,
    id: 1,
    payload: encodeValue(new Uint8Array(300).fill(7)),
  }),
  encodeFrame({ type: FrameType.CANCEL, seq: 3, ack: 1, id: 1 }),
];

const STREAM = Buffer.concat(FRAMES.map(lengthPrefix));

/** Feeds `chunks` to a fresh decoder; returns the frames (as hex) and the decoder. */
function feed(chunks: Buffer[], max = MAX): { frames: string[]; decoder: LengthPrefixDecoder } {
  const decoder = new LengthPrefixDecoder(max);
  const frames: string[] = [];
  for (const chunk of chunks) decoder.push(chunk, (f) => frames.push(f.toString("hex")));
  return { frames, decoder };
}

const EXPECTED = FRAMES.map((f) => f.toString("hex"));

function prefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

describe("lengthPrefix", () => {
  it("prepends the length as u32 big-endian", () => {
    assert.equal(LENGTH_PREFIX_BYTES, 4);
    const frame = Buffer.from("0105000000000000000000000007", "hex");
    assert.equal(lengthPrefix(frame).toString("hex"), "0000000e0105000000000000000000000007");
    const big = Buffer.alloc(0x010203);
    const out = lengthPrefix(big);
    assert.equal(out.length, 4 + 0x010203);
    assert.equal(out.subarray(0, 4).toString("hex"), "00010203");
  });
});

describe("LengthPrefixDecoder", () => {
  it("the whole stream in one chunk yields every frame, in order", () => {
    const { frames, decoder } = feed([STREAM]);
    assert.deepEqual(frames, EXPECTED);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("several frames in one chunk, with a partial frame at the end", () => {
    const cut = STREAM.length - 10;
    const decoder = new LengthPrefixDecoder(MAX);
    const frames: string[] = [];
    decoder.push(STREAM.subarray(0, cut), (f) => frames.push(f.toString("hex")));
    assert.deepEqual(frames, EXPECTED.slice(0, -1), "all whole frames come out of the first push");
    assert.equal(decoder.bufferedBytes, lengthPrefix(FRAMES.at(-1)!).length - 10);
    decoder.push(STREAM.subarray(cut), (f) => frames.push(f.toString("hex")));
    assert.deepEqual(frames, EXPECTED);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("the stream split at every possible point yields exactly the original frames", () => {
    for (let at = 0; at <= STREAM.length; at++) {
      const { frames, decoder } = feed([STREAM.subarray(0, at), STREAM.subarray(at)]);
      assert.deepEqual(frames, EXPECTED, `split at ${at}`);
      assert.equal(decoder.bufferedBytes, 0, `split at ${at}`);
    }
  });

  it("the stream fed one byte at a time yields exactly the original frames", () => {
    const decoder = new LengthPrefixDecoder(MAX);
    const frames: string[] = [];
    const deliveredAt: number[] = [];
    for (let i = 0; i < STREAM.length; i++) {
      decoder.push(STREAM.subarray(i, i + 1), (f) => {
        frames.push(f.toString("hex"));
        deliveredAt.push(i + 1);
      });
    }
    assert.deepEqual(frames, EXPECTED);
    assert.equal(decoder.bufferedBytes, 0);
    // Each frame comes out on the push of its last byte, not later.
    let end = 0;
    const ends = FRAMES.map((f) => (end += LENGTH_PREFIX_BYTES + f.length));
    assert.deepEqual(deliveredAt, ends);
  });

  it("one byte at a time, then the rest: bufferedBytes counts what is held", () => {
    const frame = lengthPrefix(FRAMES[1]!);
    const decoder = new LengthPrefixDecoder(MAX);
    let got = 0;
    for (let i = 0; i < frame.length - 1; i++) {
      decoder.push(frame.subarray(i, i + 1), () => got++);
      assert.equal(decoder.bufferedBytes, i + 1);
    }
    assert.equal(got, 0);
    decoder.push(frame.subarray(frame.length - 1), () => got++);
    assert.equal(got, 1);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("empty chunks change nothing", () => {
    const e = Buffer.alloc(0);
    const { frames, decoder } = feed([
      e,
      STREAM.subarray(0, 2),
      e,
      e,
      STREAM.subarray(2, 40),
      e,
      STREAM.subarray(40),
      e,
    ]);
    assert.deepEqual(frames, EXPECTED);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("a large frame in many small chunks comes out whole", () => {
    const body = Buffer.alloc(200_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const frame = encodeFrame({
      type: FrameType.RESULT,
      seq: 1,
      ack: 0,
      id: 9,
      payload: { kind: PayloadKind.BYTES, bytes: body },
    });
    const stream = lengthPrefix(frame);
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 1000) chunks.push(stream.subarray(i, i + 1000));
    const { frames } = feed(chunks);
    assert.equal(frames.length, 1);
    const decoded = decodeFrame(Buffer.from(frames[0]!, "hex"));
    assert.ok(decoded.type === FrameType.RESULT && "payload" in decoded);
    assert.ok(Buffer.from(decoded.payload.bytes).equals(body));
  });

  it("accepts a frame of exactly maxFrameBytes and of exactly the header size", () => {
    const atLimit = Buffer.alloc(64, 1);
    const header = Buffer.alloc(HEADER_BYTES, 2);
    const { frames } = feed([lengthPrefix(atLimit), lengthPrefix(header)], 64);
    assert.deepEqual(frames, [atLimit.toString("hex"), header.toString("hex")]);
  });

  describe("a prefix over the limit", () => {
    const tooLarge = (len: number, max: number) =>
      isMusterError(
        ErrorCode.FRAME_TOO_LARGE,
        new RegExp(`^frame of ${len} bytes announced, limit is ${max} bytes$`),
      );

    it("throws FRAME_TOO_LARGE on the 4-byte prefix alone, holding nothing", () => {
      const decoder = new LengthPrefixDecoder(1024);
      assert.throws(() => decoder.push(prefix(1025), () => assert.fail("no frame")), tooLarge(1025, 1024));
      assert.equal(decoder.bufferedBytes, 0);
    });

    it("throws as soon as the 4th prefix byte arrives, one byte at a time", () => {
      const decoder = new LengthPrefixDecoder(MAX);
      const p = prefix(0xffffffff);
      for (let i = 0; i < 3; i++) {
        decoder.push(p.subarray(i, i + 1), () => assert.fail("no frame"));
        assert.equal(decoder.bufferedBytes, i + 1);
      }
      assert.throws(
        () => decoder.push(p.subarray(3), () => assert.fail("no frame")),
        tooLarge(0xffffffff, MAX),
      );
      assert.ok(decoder.bufferedBytes <= LENGTH_PREFIX_BYTES, `held ${decoder.bufferedBytes} bytes`);
    });

    it("throws when the prefix is split 1 + 3 and 2 + 2", () => {
      for (const at of [1, 2, 3]) {
        const decoder = new LengthPrefixDecoder(MAX);
        const p = prefix(MAX + 1);
        decoder.push(p.subarray(0, at), () => assert.fail("no frame"));
        assert.throws(
          () => decoder.push(p.subarray(at), () => assert.fail("no frame")),
          tooLarge(MAX + 1, MAX),
        );
        assert.ok(decoder.bufferedBytes <= LENGTH_PREFIX_BYTES);
      }
    });

    it("throws after delivering the good frames before it in the same chunk", () => {
      const decoder = new LengthPrefixDecoder(1024);
      const frames: string[] = [];
      const chunk = Buffer.concat([
        STREAM.subarray(0, lengthPrefix(FRAMES[0]!).length),
        prefix(5000),
        Buffer.alloc(100),
      ]);
      assert.throws(() => decoder.push(chunk, (f) => frames.push(f.toString("hex"))), tooLarge(5000, 1024));
      assert.deepEqual(frames, [EXPECTED[0]]);
      assert.ok(decoder.bufferedBytes <= 104, "only the bytes already delivered to it");
    });

    it("throws without waiting for the body, even when buffered bytes precede the prefix", () => {
      const decoder = new LengthPrefixDecoder(1024);
      const frames: string[] = [];
      const first = lengthPrefix(FRAMES[1]!);
      decoder.push(first.subarray(0, 5), (f) => frames.push(f.toString("hex")));
      assert.throws(
        () =>
          decoder.push(Buffer.concat([first.subarray(5), prefix(2000)]), (f) =>
            frames.push(f.toString("hex")),
          ),
        tooLarge(2000, 1024),
      );
      assert.deepEqual(frames, [FRAMES[1]!.toString("hex")]);
      assert.ok(decoder.bufferedBytes <= LENGTH_PREFIX_BYTES);
    });
  });

  for (const len of [0, 1, HEADER_BYTES - 1]) {
    it(`a prefix of ${len} (< ${HEADER_BYTES}) → PROTOCOL_ERROR`, () => {
      const decoder = new LengthPrefixDecoder(MAX);
      assert.throws(
        () => decoder.push(Buffer.concat([prefix(len), Buffer.alloc(len)]), () => assert.fail("no frame")),
        isMusterError(
          ErrorCode.PROTOCOL_ERROR,
          new RegExp(`^frame of ${len} bytes announced, shorter than the 14-byte header$`),
        ),
      );
    });
  }

  it("refuses any use after an error", () => {
    for (const bad of [prefix(MAX + 1), prefix(3)]) {
      const decoder = new LengthPrefixDecoder(MAX);
      assert.throws(() => decoder.push(bad, () => {}), MusterError);
      for (const next of [STREAM, Buffer.alloc(0), Buffer.from([0])]) {
        assert.throws(
          () => decoder.push(next, () => assert.fail("no frame after an error")),
          isMusterError(ErrorCode.PROTOCOL_ERROR, /^decoder used after an error$/),
        );
      }
    }
  });

  it("fast-check: random frame sequences split at random points round-trip", () => {
    const frameArb = fc.oneof(
      fc.tuple(fc.integer({ min: 1, max: 2 ** 40 }), fc.nat(), fc.uint8Array({ maxLength: 500 })).map(
        ([seq, id, bytes]): Frame => ({
          type: FrameType.ITEM,
          seq,
          ack: 0,
          id,
          payload: { kind: PayloadKind.BYTES, bytes },
        }),
      ),
      fc.nat().map((ack): Frame => ({ type: FrameType.ACK, seq: 0, ack })),
      fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.string({ minLength: 1, maxLength: 30 }), fc.json()).map(
        ([seq, method, json]): Frame => ({
          type: FrameType.CALL,
          seq,
          ack: 0,
          id: seq,
          timeoutMs: 1000,
          method,
          payload: { kind: PayloadKind.JSON, bytes: Buffer.from(json) },
        }),
      ),
    );
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (frames, cutSeeds) => {
          const encoded = frames.map((f) => encodeFrame(f));
          const stream = Buffer.concat(encoded.map(lengthPrefix));
          const cuts = [...new Set(cutSeeds.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let from = 0;
          for (const c of [...cuts, stream.length]) {
            chunks.push(stream.subarray(from, c));
            from = c;
          }
          const { frames: out, decoder } = feed(chunks);
          assert.deepEqual(
            out,
            encoded.map((e) => e.toString("hex")),
          );
          assert.equal(decoder.bufferedBytes, 0);
          for (const [i, hex] of out.entries()) {
            assert.equal(decodeFrame(Buffer.from(hex, "hex")).type, frames[i]!.type);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("LengthPrefixDecoder facing a hostile peer", () => {
  /** Records the size of every Buffer allocation made while `fn` runs. */
  function allocations(fn: () => void): number[] {
    const sizes: number[] = [];
    const saved = {
      allocUnsafe: Buffer.allocUnsafe,
      allocUnsafeSlow: Buffer.allocUnsafeSlow,
      alloc: Buffer.alloc,
    };
    Buffer.allocUnsafe = (size: number) => {
      sizes.push(size);
      return saved.allocUnsafe(size);
    };
    Buffer.allocUnsafeSlow = (size: number) => {
      sizes.push(size);
      return saved.allocUnsafeSlow(size);
    };
    Buffer.alloc = ((size: number, fill?: string | Uint8Array | number, encoding?: BufferEncoding) => {
      sizes.push(size);
      return saved.alloc(size, fill, encoding);
    }) as typeof Buffer.alloc;
    try {
      fn();
    } finally {
      Object.assign(Buffer, saved);
    }
    return sizes;
  }

  it("a length prefix of 4 GiB − 1 (ff ff ff ff) is refused at once, nothing allocated for it", () => {
    for (const max of [MAX, 0xffffffff - 1]) {
      for (const split of [4, 1]) {
        const decoder = new LengthPrefixDecoder(max);
        const stream = Buffer.concat([prefix(0xffffffff), Buffer.alloc(64, 0x61)]);
        let thrownAt = -1;
        const started = process.hrtime.bigint();
        const sizes = allocations(() => {
          for (let i = 0; i < stream.length; i += split) {
            try {
              decoder.push(stream.subarray(i, i + split), () => assert.fail("no frame"));
            } catch (err) {
              isMusterError(
                ErrorCode.FRAME_TOO_LARGE,
                new RegExp(`^frame of 4294967295 bytes announced, limit is ${max} bytes$`),
              )(err);
              thrownAt = i + split;
              break;
            }
          }
        });
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        assert.equal(thrownAt, 4, "refused with the 4th byte of the prefix");
        assert.ok(
          sizes.every((s) => s <= 4096),
          `allocations: ${sizes.join(", ")}`,
        );
        assert.ok(decoder.bufferedBytes <= LENGTH_PREFIX_BYTES);
        assert.ok(ms < 500, `took ${ms} ms`);
      }
    }
  });

  it("firstFrameMaxBytes holds the first frame to a lower limit, checked from its prefix", () => {
    const refused = new LengthPrefixDecoder(1024, 64);
    assert.throws(
      () => refused.push(prefix(65), () => assert.fail("no frame")),
      isMusterError(
        ErrorCode.FRAME_TOO_LARGE,
        /^first frame of 65 bytes announced, limit before the handshake is 64 bytes$/,
      ),
    );
    // Split over chunks: the first frame at its limit passes, then the full limit applies.
    const decoder = new LengthPrefixDecoder(1024, 64);
    const first = Buffer.alloc(64, 1);
    const second = Buffer.alloc(1000, 2);
    const stream = Buffer.concat([lengthPrefix(first), lengthPrefix(second)]);
    const got: string[] = [];
    for (let i = 0; i < stream.length; i += 7)
      decoder.push(stream.subarray(i, i + 7), (f) => got.push(f.toString("hex")));
    assert.deepEqual(got, [first.toString("hex"), second.toString("hex")]);
    assert.throws(
      () => new LengthPrefixDecoder(1024, 3),
      isMusterError(
        ErrorCode.INVALID_ARGUMENT,
        /^firstFrameMaxBytes must be a number of at least 14, got 3$/,
      ),
    );
  });

  it("maxFrameBytes must be a number, at least the header: NaN would disable the check", () => {
    for (const bad of [
      Number.NaN,
      0,
      HEADER_BYTES - 1,
      "1024" as unknown as number,
      undefined as unknown as number,
    ]) {
      assert.throws(
        () => new LengthPrefixDecoder(bad),
        isMusterError(ErrorCode.INVALID_ARGUMENT, /^maxFrameBytes must be a number of at least 14, got /),
      );
    }
    for (const good of [HEADER_BYTES, 1024, 0xffffffff, Number.POSITIVE_INFINITY])
      new LengthPrefixDecoder(good);
  });

  it("a frame trickled in 1-byte chunks costs linear time and bounded memory", () => {
    // Regression (test/fixtures/fuzz/stream-4b2dd8da8ce1.bin): the held chunks were dropped one
    // shift() at a time, quadratic in their number; and every 1-byte chunk stayed a Buffer.
    const frame = encodeFrame({
      type: FrameType.ITEM,
      seq: 1,
      ack: 0,
      id: 1,
      payload: encodeValue(new Uint8Array(1024 * 1024 - 40).fill(9)),
    });
    const stream = lengthPrefix(frame);
    const decoder = new LengthPrefixDecoder(MAX);
    const got: Buffer[] = [];
    const heapBefore = process.memoryUsage().heapUsed;
    let heapPeak = heapBefore;
    const started = Date.now();
    for (let i = 0; i < stream.length; i++) {
      decoder.push(stream.subarray(i, i + 1), (f) => got.push(f));
      if ((i & 0xffff) === 0) heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    }
    const ms = Date.now() - started;
    assert.equal(got.length, 1);
    assert.ok(got[0]!.equals(frame), "the frame comes out intact");
    assert.equal(decoder.bufferedBytes, 0);
    assert.ok(ms < 10_000, `${stream.length} one-byte pushes took ${ms} ms`);
    const grewMiB = (heapPeak - heapBefore) / 2 ** 20;
    assert.ok(grewMiB < 32, `the heap grew by ${grewMiB.toFixed(1)} MiB while holding a 1 MiB frame`);
  });

  it("frames delivered as views stay intact while later small chunks arrive", () => {
    const decoder = new LengthPrefixDecoder(MAX);
    const views: Buffer[] = [];
    const stream = Buffer.concat([STREAM, STREAM, STREAM]);
    for (const size of [1, 3, 7, 100, 511, 513]) {
      views.length = 0;
      for (let i = 0; i < stream.length; i += size)
        decoder.push(stream.subarray(i, i + size), (f) => views.push(f));
      assert.deepEqual(
        views.map((v) => v.toString("hex")),
        [...EXPECTED, ...EXPECTED, ...EXPECTED],
        `chunks of ${size}`,
      );
    }
  });
});
