// Micro-benchmarks of the hot paths below the session: the frame codec, the length-prefix
// stream splitter and the replay window. One process, no I/O; each number is the cost of one
// operation on this machine's CPU, not an end-to-end latency.
//
// Method, for every benchmark:
// - it is built once, and its output is checked once before any timing (decode what was encoded
//   and compare, count what the decoder delivered, ...): a broken path throws instead of scoring;
// - every iteration returns a number (a length, a count) that is summed into a sink; the sum of
//   each timed batch must equal `iterations × perIter`, so V8 cannot drop the work and a path that
//   starts returning something else mid-run fails the run;
// - warm-up: batches of doubling size until one batch takes `batchMs` (2 ms; 0.5 ms quick) and
//   `warmupMs` (200 ms; 10 ms quick) have passed;
// - timing: batches of that size until the run's time is up, measured with performance.now();
//   full mode runs 1 s, three times, and keeps the fastest run; quick mode runs 50 ms once.
//   Under `node --expose-gc` a full collection runs before each run.
// `ns/op` is per operation as named in the row (per frame for the fan-out, the decoder and the
// push/ack cycle; per call for the rest).

import { ReplayBuffer } from "../src/session/replay-buffer.js";
import {
  decodeFrame,
  decodeValue,
  encodeCall,
  encodeFrame,
  encodeValue,
  withAck,
} from "../src/wire/codec.js";
import { FrameType, HEADER_BYTES, type Payload } from "../src/wire/frame.js";
import { LengthPrefixDecoder, lengthPrefix } from "../src/wire/length-prefix.js";

export interface MicroRow {
  name: string;
  /** Operations per second of the fastest run. */
  opsPerSec: number;
  /** Nanoseconds per operation of the fastest run (1e9 / opsPerSec). */
  nsPerOp: number;
  /** What one operation is: payload size, frame size, chunking. */
  note?: string;
}

export interface MicroOptions {
  /** Smoke mode: ~50 ms per benchmark, one run. Numbers are indicative only. */
  quick: boolean;
  /** Progress lines (one per benchmark); not part of the result. */
  log?: (line: string) => void;
}

/** A benchmark as the timing loop sees it. */
interface Bench {
  name: string;
  note: string;
  /** Operations one iteration of `loop` stands for (e.g. 1000 frames of one fan-out). */
  opsPerIter: number;
  /** What one iteration adds to the sink; the timing loop checks every batch against it. */
  perIter: number;
  /** Runs `n` iterations and returns the sum of what they produced. */
  loop: (n: number) => number;
}

interface Timing {
  runs: number;
  runMs: number;
  warmupMs: number;
  batchMs: number;
}

const FULL: Timing = { runs: 3, runMs: 1000, warmupMs: 200, batchMs: 2 };
const QUICK: Timing = { runs: 1, runMs: 50, warmupMs: 10, batchMs: 0.5 };

const METHOD = "echo";
const TIMEOUT_MS = 30_000;
const FANOUT = 1000;
const STREAM_FRAMES = 1000;
const MSS = 1460;
// Typed `number` so that checks against it do not narrow counters to the literal 32.
const CYCLE_FRAMES: number = 32;
const WINDOW_FRAMES = 4096;

/** Runs every micro-benchmark in order. Throws on the first check that fails. */
export async function runMicro(options: MicroOptions): Promise<MicroRow[]> {
  const timing = options.quick ? QUICK : FULL;
  const rows: MicroRow[] = [];
  for (const make of BENCHES) {
    const bench = make();
    const nsPerOp = measure(bench, timing);
    const row: MicroRow = { name: bench.name, opsPerSec: 1e9 / nsPerOp, nsPerOp, note: bench.note };
    rows.push(row);
    options.log?.(`${row.name}: ${formatNs(row.nsPerOp)} ns/op`);
    // Let pending I/O (the log) through between benchmarks.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return rows;
}

/** The rows as a markdown table: | benchmark | ops/s | ns/op | notes |. */
export function renderMicro(rows: readonly MicroRow[]): string {
  const cell = (s: string): string => s.replaceAll("|", "\\|");
  const lines = ["| benchmark | ops/s | ns/op | notes |", "| --- | ---: | ---: | --- |"];
  for (const r of rows) {
    lines.push(
      `| ${cell(r.name)} | ${formatOps(r.opsPerSec)} | ${formatNs(r.nsPerOp)} | ${cell(r.note ?? "")} |`,
    );
  }
  return lines.join("\n");
}

function formatOps(ops: number): string {
  const digits = Math.max(0, Math.floor(Math.log10(ops)) - 2);
  const rounded = Math.round(ops / 10 ** digits) * 10 ** digits;
  return rounded.toLocaleString("en-US");
}

function formatNs(ns: number): string {
  return ns < 10 ? ns.toFixed(2) : ns < 100 ? ns.toFixed(1) : Math.round(ns).toLocaleString("en-US");
}

// ---------------------------------------------------------------------------------------
// Timing

/** Returns the best ns per operation over `timing.runs` runs. */
function measure(bench: Bench, timing: Timing): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  let batch = 1;
  const warmupEnd = performance.now() + timing.warmupMs;
  for (;;) {
    const t0 = performance.now();
    checkBatch(bench, batch, bench.loop(batch));
    const t1 = performance.now();
    if (t1 - t0 >= timing.batchMs && t1 >= warmupEnd) break;
    if (t1 - t0 < timing.batchMs) batch *= 2;
  }
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < timing.runs; run++) {
    gc?.();
    let iterations = 0;
    const start = performance.now();
    let now = start;
    while (now - start < timing.runMs) {
      const sum = bench.loop(batch);
      now = performance.now();
      checkBatch(bench, batch, sum);
      iterations += batch;
    }
    best = Math.min(best, ((now - start) * 1e6) / (iterations * bench.opsPerIter));
  }
  return best;
}

function checkBatch(bench: Bench, iterations: number, sum: number): void {
  if (sum !== iterations * bench.perIter) {
    throw new Error(
      `${bench.name}: batch of ${iterations} produced ${sum}, expected ${iterations * bench.perIter}`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// Fixtures and checks

/** A JSON value whose text is exactly `bytes` bytes of ASCII. */
function jsonValue(bytes: number): { i: number; data: string } {
  const overhead = JSON.stringify({ i: 7, data: "" }).length;
  const value = { i: 7, data: "abcdefghijklmnopqrstuvwxyz0123456789".repeat(Math.ceil(bytes / 36)) };
  value.data = value.data.slice(0, bytes - overhead);
  expect(Buffer.byteLength(JSON.stringify(value)) === bytes, `fixture of ${bytes} B has the wrong size`);
  return value;
}

function expect(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(`micro-benchmark check failed: ${what}`);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** Throws unless `buf` decodes to the CALL that was encoded. */
function checkCall(buf: Uint8Array, seq: number, ack: number, id: number, value: unknown): void {
  const f = decodeFrame(buf);
  expect(f.type === FrameType.CALL, "encoded CALL decodes as a CALL");
  expect(f.seq === seq && f.ack === ack && f.id === id, "CALL header and id survive a round trip");
  expect(f.method === METHOD && f.timeoutMs === TIMEOUT_MS, "CALL method and timeout survive a round trip");
  expect(
    JSON.stringify(decodeValue(f.payload)) === JSON.stringify(value),
    "CALL payload survives a round trip",
  );
}

/** One CALL frame carrying a JSON payload of `bytes` bytes, and the value it carries. */
function callFrame(bytes: number, id = 1): { frame: Buffer; value: unknown } {
  const value = jsonValue(bytes);
  const frame = encodeCall(id, 0, id, TIMEOUT_MS, METHOD, encodeValue(value));
  checkCall(frame, id, 0, id, value);
  return { frame, value };
}

// ---------------------------------------------------------------------------------------
// Benchmarks

function encodeCallBench(bytes: number): Bench {
  const value = jsonValue(bytes);
  const size = callFrame(bytes).frame.length;
  return {
    name: `encode CALL ${sizeName(bytes)}`,
    note: `encodeValue + encodeCall; ${bytes} B JSON payload, ${size} B frame`,
    opsPerIter: 1,
    perIter: size,
    loop(n) {
      let sum = 0;
      for (let i = 1; i <= n; i++) sum += encodeCall(i, i, i, TIMEOUT_MS, METHOD, encodeValue(value)).length;
      return sum;
    },
  };
}

function encodeResultBench(bytes: number): Bench {
  const value = jsonValue(bytes);
  const payload: Payload = encodeValue(value);
  const sample = encodeFrame({ type: FrameType.RESULT, seq: 5, ack: 3, id: 9, payload });
  const f = decodeFrame(sample);
  expect(f.type === FrameType.RESULT && "payload" in f, "encoded RESULT decodes as an ok RESULT");
  expect(f.seq === 5 && f.ack === 3 && f.id === 9, "RESULT header and id survive a round trip");
  expect(JSON.stringify(decodeValue(f.payload)) === JSON.stringify(value), "RESULT payload survives");
  return {
    name: `encode RESULT ${sizeName(bytes)}`,
    note: `encodeFrame only (payload encoded beforehand); ${bytes} B JSON payload, ${sample.length} B frame`,
    opsPerIter: 1,
    perIter: sample.length,
    loop(n) {
      let sum = 0;
      for (let i = 1; i <= n; i++) {
        sum += encodeFrame({ type: FrameType.RESULT, seq: i, ack: i, id: i, payload }).length;
      }
      return sum;
    },
  };
}

function decodeCallBench(bytes: number): Bench {
  const { frame, value } = callFrame(bytes);
  const dataLength = (value as { data: string }).data.length;
  return {
    name: `decode CALL ${sizeName(bytes)}`,
    note: `decodeFrame + decodeValue (JSON.parse); ${bytes} B JSON payload, ${frame.length} B frame`,
    opsPerIter: 1,
    perIter: dataLength,
    loop(n) {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const f = decodeFrame(frame);
        if (f.type !== FrameType.CALL) throw new Error("decode CALL: wrong frame type");
        sum += (decodeValue(f.payload) as { data: string }).data.length;
      }
      return sum;
    },
  };
}

function fanoutBench(bytes: number): Bench {
  const value = jsonValue(bytes);
  const payload = encodeValue(value);
  const frames: Buffer[] = [];
  for (let id = 1; id <= FANOUT; id++) frames.push(encodeCall(id, 0, id, TIMEOUT_MS, METHOD, payload));
  for (const id of [1, 2, FANOUT / 2, FANOUT]) checkCall(frames[id - 1]!, id, 0, id, value);
  const size = frames[0]!.length;
  return {
    name: `fan-out encode CALL ${sizeName(bytes)}`,
    note: `one encodeValue, then encodeCall for ${FANOUT} ids; per frame; ${size} B frame`,
    opsPerIter: FANOUT,
    perIter: FANOUT * size,
    loop(n) {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const p = encodeValue(value);
        for (let id = 1; id <= FANOUT; id++) sum += encodeCall(id, i, id, TIMEOUT_MS, METHOD, p).length;
      }
      return sum;
    },
  };
}

function withAckBench(bytes: number): Bench {
  const { frame, value } = callFrame(bytes);
  const original = Buffer.from(frame);
  const copy = withAck(frame, 12345);
  checkCall(copy, 1, 12345, 1, value);
  expect(copy !== frame && sameBytes(frame, original), "withAck copies and leaves the original alone");
  expect(
    sameBytes(copy.subarray(0, 8), frame.subarray(0, 8)) &&
      sameBytes(copy.subarray(HEADER_BYTES), frame.subarray(HEADER_BYTES)),
    "withAck changes nothing but the ack field",
  );
  return {
    name: `withAck copy ${sizeName(bytes)}`,
    note: `replay path: copy of a stored frame with a new ack; CALL with ${bytes} B payload, ${frame.length} B frame`,
    opsPerIter: 1,
    perIter: frame.length,
    loop(n) {
      let sum = 0;
      for (let i = 1; i <= n; i++) sum += withAck(frame, i).length;
      return sum;
    },
  };
}

function lengthPrefixBench(bytes: number, chunkBytes: number | undefined): Bench {
  const value = jsonValue(bytes);
  const frames: Buffer[] = [];
  for (let id = 1; id <= STREAM_FRAMES; id++)
    frames.push(encodeCall(id, 0, id, TIMEOUT_MS, METHOD, encodeValue(value)));
  const stream = Buffer.concat(frames.map((f) => lengthPrefix(f)));
  const chunks: Buffer[] = [];
  const step = chunkBytes ?? stream.length;
  for (let at = 0; at < stream.length; at += step) chunks.push(stream.subarray(at, at + step));
  const frameBytes = frames[0]!.length;

  const decoder = new LengthPrefixDecoder(1 << 20);
  const seen: Buffer[] = [];
  for (const c of chunks) decoder.push(c, (f) => seen.push(Buffer.from(f)));
  expect(seen.length === STREAM_FRAMES, `decoder delivered ${seen.length} of ${STREAM_FRAMES} frames`);
  expect(decoder.bufferedBytes === 0, "decoder holds nothing after whole frames");
  for (let k = 0; k < STREAM_FRAMES; k++) {
    expect(sameBytes(seen[k]!, frames[k]!), `decoder delivered frame ${k + 1} intact`);
  }
  checkCall(seen[STREAM_FRAMES - 1]!, STREAM_FRAMES, 0, STREAM_FRAMES, value);

  let delivered = 0;
  const onFrame = (f: Buffer): void => {
    delivered += f.length;
  };
  const how = chunkBytes === undefined ? "one chunk" : `${chunkBytes} B chunks (${chunks.length} pushes)`;
  return {
    name: `LengthPrefixDecoder ${sizeName(bytes)}, ${chunkBytes === undefined ? "one chunk" : `${chunkBytes} B chunks`}`,
    note: `${STREAM_FRAMES} prefixed ${frameBytes} B CALL frames (${bytes} B payload) in ${how}; per frame`,
    opsPerIter: STREAM_FRAMES,
    perIter: STREAM_FRAMES * frameBytes,
    loop(n) {
      delivered = 0;
      for (let i = 0; i < n; i++) for (const c of chunks) decoder.push(c, onFrame);
      return delivered;
    },
  };
}

function replayCycleBench(bytes: number): Bench {
  const { frame } = callFrame(bytes);
  const rb = new ReplayBuffer(WINDOW_FRAMES, 64 << 20);
  for (let k = 0; k < CYCLE_FRAMES; k++) rb.push(frame);
  expect(
    rb.frames === CYCLE_FRAMES && rb.bytes === CYCLE_FRAMES * frame.length,
    "push counts frames and bytes",
  );
  expect(rb.ackTo(rb.firstSeq + CYCLE_FRAMES - 1) === CYCLE_FRAMES, "ackTo drops every acked frame");
  expect(rb.frames === 0 && rb.bytes === 0 && rb.firstSeq === CYCLE_FRAMES + 1, "ackTo empties the window");
  return {
    name: "ReplayBuffer push + ackTo",
    note: `hasRoom + push ${CYCLE_FRAMES} frames, then one ackTo of them all; per frame`,
    opsPerIter: CYCLE_FRAMES,
    perIter: CYCLE_FRAMES,
    loop(n) {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < CYCLE_FRAMES; k++) {
          if (!rb.hasRoom(frame.length)) throw new Error("ReplayBuffer: no room in an empty window");
          rb.push(frame);
        }
        sum += rb.ackTo(rb.firstSeq + CYCLE_FRAMES - 1);
      }
      return sum;
    },
  };
}

function replayAfterBench(bytes: number): Bench {
  const frames: Buffer[] = [];
  for (let seq = 1; seq <= WINDOW_FRAMES; seq++) frames.push(callFrame(bytes, seq).frame);
  const rb = new ReplayBuffer(WINDOW_FRAMES, 64 << 20);
  for (const f of frames) {
    expect(rb.hasRoom(f.length), "window takes 4096 frames");
    rb.push(f);
  }
  expect(!rb.hasRoom(frames[0]!.length), "window of 4096 frames is full");
  // Move the window off seq 1 so that `after` has to translate seqs.
  rb.ackTo(WINDOW_FRAMES / 2);
  for (let seq = WINDOW_FRAMES + 1; seq <= WINDOW_FRAMES * 1.5; seq++) {
    const f = callFrame(bytes, seq).frame;
    frames.push(f);
    rb.push(f);
  }
  expect(rb.frames === WINDOW_FRAMES && !rb.hasRoom(frames[0]!.length), "window is full again");
  const from = rb.firstSeq - 1;
  const all = rb.after(from);
  expect(all !== undefined && all.length === WINDOW_FRAMES, "after(firstSeq - 1) returns the whole window");
  for (let k = 0; k < WINDOW_FRAMES; k++)
    expect(all[k] === frames[from + k], `after returns frame ${k} in order`);
  expect(rb.after(from - 1) === undefined, "after() refuses a seq that was already dropped");
  expect(rb.after(from + WINDOW_FRAMES)?.length === 0, "after(last seq) is empty");
  return {
    name: "ReplayBuffer after(seq), full window",
    note: `resume path; ${WINDOW_FRAMES} frames held, peer has none of them (all ${WINDOW_FRAMES} returned); per call`,
    opsPerIter: 1,
    perIter: WINDOW_FRAMES,
    loop(n) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += rb.after(from)!.length;
      return sum;
    },
  };
}

function sizeName(bytes: number): string {
  return bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

/** Built lazily, one at a time, so that fixtures of one benchmark do not weigh on the next. */
const BENCHES: (() => Bench)[] = [
  () => encodeCallBench(64),
  () => encodeCallBench(4096),
  () => encodeResultBench(64),
  () => decodeCallBench(64),
  () => decodeCallBench(4096),
  () => fanoutBench(64),
  () => withAckBench(64),
  () => lengthPrefixBench(64, undefined),
  () => lengthPrefixBench(64, MSS),
  () => replayCycleBench(64),
  () => replayAfterBench(64),
];
