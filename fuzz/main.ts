// `npm run fuzz -- [options]`: the long fuzz run over the frame decoder, the length-prefix
// decoder and the handshake of a real server. Failing inputs are saved to
// test/fixtures/fuzz/ (replayed by test/fuzz.test.ts); the exit status is 1 when any input
// failed, 2 on a bad option.

import { randomInt } from "node:crypto";
import { relative } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { runHandshakeFuzz } from "./handshake.js";
import { runAuthHandshakeFuzz } from "./handshake-auth.js";
import {
  type DecoderRunStats,
  emptyStats,
  type Failure,
  inputsAt,
  loadFixtures,
  mergeStats,
  replayFixture,
  saveFailure,
  shortHash,
  signature,
} from "./run.js";
import { flat, oneLine } from "./targets.js";
import type { WorkerInput, WorkerMessage } from "./worker.js";

const USAGE = `usage: npm run fuzz -- [options]

Fuzzes the frame decoder (decodeFrame, decodeValue), the length-prefix decoder and the
handshake of a real server, without and with authentication. Failing inputs are saved to
test/fixtures/fuzz/.

options:
  --inputs N      decoder inputs (each runs the frame and the stream target) [1000000]
  --seed S        seed, an integer in 0..4294967295 [random, printed]
  --handshakes N  connections made to a real server with generated HELLOs [300]
  --auth-handshakes N  connections made to a real server with authentication and
                  enrolment on, with tokens valid, expired, forged, of the wrong algorithm,
                  oversized or mutated, and enrolment ids [300]
  --hang-ms N     an input still running after this long is a failure (hang) [10000]
  --no-save       report failures without writing fixture files
  --help          show this text

exit status: 0 no failure, 1 failures found, 2 bad options`;

const MAX_SAVED = 25;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function usageError(message: string): never {
  process.stderr.write(`fuzz: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function integer(name: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text))
    usageError(`--${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n > max) usageError(`--${name} must be at most ${max}, got ${text}`);
  return n;
}

interface Options {
  inputs: number;
  seed: number;
  handshakes: number;
  authHandshakes: number;
  hangMs: number;
  save: boolean;
}

function options(): Options {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        inputs: { type: "string" },
        seed: { type: "string" },
        handshakes: { type: "string" },
        "auth-handshakes": { type: "string" },
        "hang-ms": { type: "string" },
        "no-save": { type: "boolean" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usageError((err as Error).message);
  }
  if (values.help) {
    out(USAGE);
    process.exit(0);
  }
  return {
    inputs: integer("inputs", values.inputs as string | undefined, 1_000_000, 2 ** 31 - 1),
    seed: integer("seed", values.seed as string | undefined, randomInt(0, 2 ** 32 - 1), 2 ** 32 - 1),
    handshakes: integer("handshakes", values.handshakes as string | undefined, 300, 1_000_000),
    authHandshakes: integer(
      "auth-handshakes",
      values["auth-handshakes"] as string | undefined,
      300,
      1_000_000,
    ),
    hangMs: Math.max(100, integer("hang-ms", values["hang-ms"] as string | undefined, 10_000, 3_600_000)),
    save: values["no-save"] !== true,
  };
}

/** Collects failures: prints each, saves one input per kind of failure. */
class Failures {
  count = 0;
  readonly saved: string[] = [];
  readonly #seen = new Set<string>();

  constructor(readonly save: boolean) {}

  /** Counts and prints a failure; saves its input unless `known` (a fixture replayed). */
  add(f: Failure, known?: string): void {
    this.count++;
    if (known !== undefined) {
      out(`FAIL ${f.target}: ${flat(f.message).slice(0, 300)} (fixture ${known})`);
      return;
    }
    const sig = signature(f);
    if (this.#seen.has(sig)) return;
    this.#seen.add(sig);
    let where = "";
    if (this.save && this.saved.length < MAX_SAVED) {
      const file = relative(process.cwd(), saveFailure(f));
      this.saved.push(file);
      where = ` -> ${file}`;
    }
    out(`FAIL ${f.target}: ${flat(f.message).slice(0, 300)}${where}`);
  }
}

function rate(n: number, ms: number): string {
  return Math.round((n * 1000) / Math.max(1, ms)).toLocaleString("en-US");
}

/** Runs inputs [0, total) in worker threads, restarting after a hang or a crash. */
async function decoderPhase(o: Options, failures: Failures): Promise<DecoderRunStats> {
  const total = emptyStats();
  let start = 0;
  const began = Date.now();
  let lastReport = began;
  while (start < o.inputs) {
    const shared = new SharedArrayBuffer(8);
    const position = new Int32Array(shared);
    Atomics.store(position, 0, start);
    const input: WorkerInput = { seed: o.seed, start, end: o.inputs, position: shared };
    const worker = new Worker(new URL("./worker.js", import.meta.url), { workerData: input });
    let latest = emptyStats();
    const result = await new Promise<
      { done: true } | { done: false; index: number; target: 0 | 1; why: string }
    >((resolve) => {
      let lastIndex = -1;
      let lastChange = Date.now();
      let settled = false;
      const settle = (
        r: { done: true } | { done: false; index: number; target: 0 | 1; why: string },
      ): void => {
        if (settled) return;
        settled = true;
        clearInterval(watchdog);
        resolve(r);
      };
      const watchdog = setInterval(() => {
        const index = Atomics.load(position, 0);
        const now = Date.now();
        if (index !== lastIndex) {
          lastIndex = index;
          lastChange = now;
        } else if (now - lastChange > o.hangMs) {
          const target = Atomics.load(position, 1) as 0 | 1;
          settle({
            done: false,
            index,
            target,
            why: `hang: input ${index} still running after ${o.hangMs} ms`,
          });
          void worker.terminate();
        }
      }, 250);
      worker.on("message", (m: WorkerMessage) => {
        if (m.kind === "failure")
          failures.add({ target: m.target, input: Buffer.from(m.input), message: m.message });
        else if (m.kind === "progress") {
          latest = m.stats;
          const now = Date.now();
          if (now - lastReport >= 2000) {
            lastReport = now;
            const done = total.inputs + m.stats.inputs;
            out(
              `  ${done.toLocaleString("en-US")}/${o.inputs.toLocaleString("en-US")} inputs` +
                ` (${((100 * done) / o.inputs).toFixed(1)} %), ${rate(done, now - began)} inputs/s, ${failures.count} failures`,
            );
          }
        } else {
          latest = m.stats;
          settle({ done: true });
        }
      });
      worker.on("error", (err) => {
        const index = Atomics.load(position, 0);
        settle({
          done: false,
          index,
          target: Atomics.load(position, 1) as 0 | 1,
          why: `the worker died on input ${index}: ${oneLine(String(err), 200)}`,
        });
      });
      worker.on("exit", (code) => {
        const index = Atomics.load(position, 0);
        settle({
          done: false,
          index,
          target: Atomics.load(position, 1) as 0 | 1,
          why: `the worker exited with status ${code} on input ${index}`,
        });
      });
    });
    mergeStats(total, latest);
    if (result.done) break;
    const inputs = inputsAt(o.seed, result.index);
    failures.add(
      result.target === 0
        ? { target: "decode", input: inputs.frame, message: result.why }
        : { target: "stream", input: inputs.stream, message: result.why },
    );
    total.inputs = result.index + 1; // the counters of the lost worker are partial; the count is not
    start = result.index + 1;
  }
  return total;
}

async function main(): Promise<void> {
  const o = options();
  const failures = new Failures(o.save);
  out(
    `muster fuzz: seed ${o.seed}, ${o.inputs.toLocaleString("en-US")} decoder inputs, ${o.handshakes} handshakes, ${o.authHandshakes} authenticated handshakes`,
  );
  out(
    `  replay this run with: npm run fuzz -- --seed ${o.seed} --inputs ${o.inputs} --handshakes ${o.handshakes} --auth-handshakes ${o.authHandshakes}`,
  );

  // The regression fixtures first: what failed once must pass now.
  const fixtures = loadFixtures();
  for (const fixture of fixtures) {
    if (fixture.target === "handshake" || fixture.target === "auth") continue; // replayed with their phase
    const bad = replayFixture(fixture);
    if (bad !== undefined)
      failures.add({ target: fixture.target, input: fixture.input, message: bad }, fixture.file);
  }
  const handshakeFixtures = fixtures.filter((f) => f.target === "handshake");
  const authFixtures = fixtures.filter((f) => f.target === "auth");
  const known = new Map(
    [...handshakeFixtures, ...authFixtures].map((f) => [`${f.target}:${shortHash(f.input)}`, f.file]),
  );
  out(`fixtures: ${fixtures.length} in test/fixtures/fuzz/, ${failures.count} failing`);

  const t0 = Date.now();
  const stats = await decoderPhase(o, failures);
  const decoderMs = Date.now() - t0;
  const d = stats.decode;
  const decodedTotal = Object.values(d.decoded).reduce((a, b) => a + b, 0);
  out(
    `decoder: ${stats.inputs.toLocaleString("en-US")} inputs in ${(decoderMs / 1000).toFixed(1)} s, ${rate(stats.inputs, decoderMs)} inputs/s`,
  );
  out(
    `  decodeFrame: ${decodedTotal.toLocaleString("en-US")} frames, ${d.rejected.toLocaleString("en-US")} rejected;` +
      ` by type ${Object.entries(d.decoded)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`,
  );
  out(
    `  decodeValue: ${d.values.toLocaleString("en-US")} values, ${d.valuesRejected.toLocaleString("en-US")} rejected`,
  );
  const s = stats.stream;
  out(
    `  LengthPrefixDecoder: ${s.streams.toLocaleString("en-US")} streams, ${s.frames.toLocaleString("en-US")} frames,` +
      ` ${s.tooLarge} too large, ${s.tooShort} too short, ${s.partial} ending mid-frame`,
  );

  if (o.handshakes > 0) {
    const t1 = Date.now();
    let lastReport = t1;
    const h = await runHandshakeFuzz({
      seed: o.seed,
      connections: o.handshakes,
      extra: handshakeFixtures.map((f) => f.input),
      waitOnIncomplete: true,
      onFailure: (f) => failures.add(f, known.get(`${f.target}:${shortHash(f.input)}`)),
      onProgress: (done) => {
        if (Date.now() - lastReport >= 2000) {
          lastReport = Date.now();
          out(`  ${done}/${o.handshakes} connections`);
        }
      },
    });
    const ms = Date.now() - t1;
    out(
      `handshake: ${h.connections} connections in ${(ms / 1000).toFixed(1)} s (${rate(h.connections, ms)}/s):` +
        ` ${h.welcomed} welcomed, ${h.closedWithFrame} closed with CLOSE, ${h.closedClean} closed without a frame;` +
        ` control agent answered ${h.controlCalls} calls`,
    );
  }

  if (o.authHandshakes > 0) {
    const t2 = Date.now();
    let lastReport = t2;
    const a = await runAuthHandshakeFuzz({
      seed: o.seed,
      connections: o.authHandshakes,
      extra: authFixtures.map((f) => f.input),
      onFailure: (f) => failures.add(f, known.get(`${f.target}:${shortHash(f.input)}`)),
      onProgress: (done) => {
        if (Date.now() - lastReport >= 2000) {
          lastReport = Date.now();
          out(`  ${done}/${o.authHandshakes} authenticated connections`);
        }
      },
    });
    const ms = Date.now() - t2;
    out(
      `authenticated handshake: ${a.connections} connections in ${(ms / 1000).toFixed(1)} s (${rate(a.connections, ms)}/s):` +
        ` ${a.welcomed} welcomed, closed with ${Object.entries(a.closed)
          .map(([code, n]) => `${code} ${n}`)
          .join(", ")}; control agent answered ${a.controlCalls} calls`,
    );
  }

  out(`total: ${((Date.now() - t0) / 1000).toFixed(1)} s, seed ${o.seed}, ${failures.count} failures`);
  if (failures.count > 0) {
    for (const f of failures.saved) out(`  saved ${f}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`fuzz: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
