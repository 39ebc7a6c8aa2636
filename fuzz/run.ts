// Runs the decoder targets over generated inputs, and saves and replays failing inputs as
// regression fixtures in test/fixtures/fuzz/.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chunkSizes, decoderInput, STREAM_LIMITS, seedFrames, streamInput, trickleStream } from "./inputs.js";
import { Rng } from "./rng.js";
import {
  checkDecode,
  checkStream,
  type DecodeStats,
  describeThrown,
  flat,
  newDecodeStats,
  newStreamStats,
  type StreamStats,
  TARGETS,
  type Target,
} from "./targets.js";

/** A failing input. */
export interface Failure {
  target: Target;
  input: Uint8Array;
  message: string;
}

export interface DecoderRunStats {
  inputs: number;
  decode: DecodeStats;
  stream: StreamStats;
}

/** Where `runDecoderFuzz` is: the current input and target (0 decode, 1 stream). */
export interface Position {
  index: number;
  target: 0 | 1;
}

export interface DecoderRunOptions {
  seed: number;
  /** Inputs [start, end) are run. */
  start?: number;
  end: number;
  onFailure?(failure: Failure): void;
  /** Called every `progressEvery` inputs with the number done so far and the counters. */
  onProgress?(done: number, stats: DecoderRunStats): void;
  progressEvery?: number;
  /** Updated before each input, for a watchdog in another thread: [index, target]. */
  position?: Int32Array;
}

let cachedSeeds: Buffer[] | undefined;
function seeds(): Buffer[] {
  cachedSeeds ??= seedFrames();
  return cachedSeeds;
}

/** The inputs of index `i` of a run with seed `seed`: the frame, and the stream around it. */
export function inputsAt(
  seed: number,
  i: number,
): { frame: Buffer; stream: Buffer; sizes: number[]; maxFrameBytes: number } {
  const rng = new Rng(seed, i);
  const frame = decoderInput(rng, seeds());
  if (rng.chance(1 / 20_000)) return { frame, ...trickleStream(rng), maxFrameBytes: STREAM_LIMITS[3] };
  const stream = streamInput(rng, frame, seeds());
  const sizes = chunkSizes(rng, stream.length);
  const maxFrameBytes = rng.weighted([
    [60, STREAM_LIMITS[3]],
    [10, STREAM_LIMITS[0]],
    [10, STREAM_LIMITS[1]],
    [10, STREAM_LIMITS[2]],
    [10, STREAM_LIMITS[4]],
  ]);
  return { frame, stream, sizes, maxFrameBytes };
}

/** Runs a check; an exception escaping the oracle itself is a failure too. */
function guarded(check: () => string | undefined): string | undefined {
  try {
    return check();
  } catch (err) {
    return `unexpected exception: ${describeThrown(err)}`;
  }
}

/** Runs the decode and stream targets on inputs [start, end) of `seed`. */
export function runDecoderFuzz(o: DecoderRunOptions): DecoderRunStats {
  const stats: DecoderRunStats = { inputs: 0, decode: newDecodeStats(), stream: newStreamStats() };
  const every = o.progressEvery ?? 10_000;
  for (let i = o.start ?? 0; i < o.end; i++) {
    if (o.position) {
      Atomics.store(o.position, 0, i);
      Atomics.store(o.position, 1, 0);
    }
    const { frame, stream, sizes, maxFrameBytes } = inputsAt(o.seed, i);
    const a = guarded(() => checkDecode(frame, stats.decode));
    if (a !== undefined) o.onFailure?.({ target: "decode", input: frame, message: a });
    if (o.position) Atomics.store(o.position, 1, 1);
    const b = guarded(() => checkStream(stream, sizes, maxFrameBytes, stats.stream));
    if (b !== undefined) o.onFailure?.({ target: "stream", input: stream, message: b });
    stats.inputs++;
    if (stats.inputs % every === 0) o.onProgress?.(stats.inputs, stats);
  }
  return stats;
}

/** Adds the counters of `b` into `a`. */
export function mergeStats(a: DecoderRunStats, b: DecoderRunStats): void {
  a.inputs += b.inputs;
  for (const [k, v] of Object.entries(b.decode.decoded)) a.decode.decoded[k] = (a.decode.decoded[k] ?? 0) + v;
  a.decode.rejected += b.decode.rejected;
  a.decode.values += b.decode.values;
  a.decode.valuesRejected += b.decode.valuesRejected;
  for (const k of Object.keys(b.stream) as (keyof StreamStats)[]) a.stream[k] += b.stream[k];
}

export function emptyStats(): DecoderRunStats {
  return { inputs: 0, decode: newDecodeStats(), stream: newStreamStats() };
}

// ---------------------------------------------------------------------------------------
// Fixtures

/** test/fixtures/fuzz/ of this repository. */
export const FIXTURE_DIR = fileURLToPath(new URL("../../test/fixtures/fuzz/", import.meta.url));

export function shortHash(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 12);
}

/** Saves a failure as `<target>-<hash>.bin` plus a one-line `.txt`; returns the .bin path. */
export function saveFailure(failure: Failure, dir = FIXTURE_DIR): string {
  mkdirSync(dir, { recursive: true });
  const base = `${dir}${dir.endsWith("/") ? "" : "/"}${failure.target}-${shortHash(failure.input)}`;
  writeFileSync(`${base}.bin`, failure.input);
  writeFileSync(`${base}.txt`, `${flat(failure.message).slice(0, 400)}\n`);
  return `${base}.bin`;
}

export interface Fixture {
  file: string;
  target: Target;
  input: Buffer;
  /** The first line of the .txt: the failure the input once caused. */
  note: string;
}

/** Every `<target>-<hash>.bin` of `dir`, with its note. */
export function loadFixtures(dir = FIXTURE_DIR): Fixture[] {
  if (!existsSync(dir)) return [];
  const out: Fixture[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith(".bin")) continue;
    const target = file.slice(0, file.indexOf("-")) as Target;
    if (!TARGETS.includes(target))
      throw new Error(`fixture ${file}: unknown target ${JSON.stringify(target)}`);
    const path = `${dir}${dir.endsWith("/") ? "" : "/"}${file}`;
    const txt = path.replace(/\.bin$/, ".txt");
    const note = existsSync(txt) ? (readFileSync(txt, "utf8").split("\n")[0] ?? "") : "";
    out.push({ file, target, input: readFileSync(path), note });
  }
  return out;
}

/**
 * Replays a decode or stream fixture. Stream fixtures run with every limit the fuzzer uses,
 * in one chunk, byte by byte and in seeded random chunks.
 */
export function replayFixture(fixture: Fixture): string | undefined {
  if (fixture.target === "decode") return guarded(() => checkDecode(fixture.input));
  if (fixture.target !== "stream") throw new Error(`${fixture.file}: replayed by the handshake runner`);
  const input = fixture.input;
  for (const max of STREAM_LIMITS) {
    const splits: number[][] = [Array.from({ length: input.length }, () => 1)];
    const rng = new Rng(input.length, max);
    for (let k = 0; k < 4; k++) splits.push(chunkSizes(rng, input.length));
    for (const sizes of splits) {
      const bad = guarded(() => checkStream(input, sizes, max));
      if (bad !== undefined) return `maxFrameBytes ${max}: ${bad}`;
    }
  }
  return undefined;
}

/**
 * The kind of a failure: its message up to the first quote, with numbers blanked. One
 * fixture is kept per kind.
 */
export function signature(failure: Failure): string {
  const head = failure.message.split(/["'`]/, 1)[0]!.replace(/\d+/g, "N");
  return `${failure.target}:${head.slice(0, 100)}`;
}
