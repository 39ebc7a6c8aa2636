// Runs the decoder targets in a worker thread, so that the main thread can watch for an
// input that hangs or kills the thread. Messages: progress, failure, done.

import { parentPort, workerData } from "node:worker_threads";
import { type DecoderRunStats, runDecoderFuzz } from "./run.js";

export interface WorkerInput {
  seed: number;
  start: number;
  end: number;
  /** Int32Array over a SharedArrayBuffer: [current index, current target]. */
  position: SharedArrayBuffer;
}

export type WorkerMessage =
  | { kind: "progress"; stats: DecoderRunStats }
  | { kind: "failure"; target: "decode" | "stream"; input: Uint8Array; message: string }
  | { kind: "done"; stats: DecoderRunStats };

const data = workerData as WorkerInput;
const post = (m: WorkerMessage): void => parentPort!.postMessage(m);

const stats: DecoderRunStats = runDecoderFuzz({
  seed: data.seed,
  start: data.start,
  end: data.end,
  position: new Int32Array(data.position),
  progressEvery: 20_000,
  onProgress: (_done, soFar) => post({ kind: "progress", stats: soFar }),
  onFailure: (f) =>
    post({ kind: "failure", target: f.target as "decode" | "stream", input: f.input, message: f.message }),
});
post({ kind: "done", stats });
