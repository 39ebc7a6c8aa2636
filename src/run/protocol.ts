import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { RunSummary, StageSpec } from "./engine/types.js";
import type { IntervalReport } from "./stats/types.js";

/**
 * The coordinator ⇄ instance protocol of a run: methods every agent answers (built-ins, which
 * operators cannot relay) and the local instance serves in-process. One run is a sequence of
 * stages; for each, the coordinator
 *
 *   1. `files`   tells the instance the files of the stage (sha256, size); it answers those it lacks;
 *   2. `put`     sends each missing file in chunks; the instance verifies the sha256;
 *   3. `boot`    hands over the stage; the instance prepares it (database, generators) or fails;
 *   4. `start`   (a stream) starts it: the first item says when it started, then one item per
 *                stats interval; the stream's value is the instance's summary;
 *   5. `stop`    (optional) ends it early: the instance stops its clients, sends its last
 *                (partial) interval and ends the stream;
 *   6. `release` forgets the run's prepared stage.
 *
 * Every request names its run and stage, so that a late or repeated message of an earlier run
 * or stage is refused (Finch's stage ids), never applied to the current one.
 */
export const RUN_METHODS = {
  FILES: "muster.run.files",
  PUT: "muster.run.put",
  BOOT: "muster.run.boot",
  START: "muster.run.start",
  STOP: "muster.run.stop",
  RELEASE: "muster.run.release",
} as const;

/** Bytes of file data in one `put` (sent as base64 in JSON: a third more on the wire). */
export const PUT_CHUNK_BYTES = 192 * 1024;
/** Largest file a stage may distribute. */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Most files one stage may distribute. */
export const MAX_FILES = 256;

/** One file of a stage: where the stage reads it, and what it must hash to. */
export interface FileRef {
  /** Relative to the stage's directory, `/`-separated, no `..`. */
  path: string;
  sha256: string;
  size: number;
}

export interface FilesRequest {
  run: string;
  files: FileRef[];
}
export interface FilesReply {
  /** sha256 of the files the instance has not got. */
  missing: string[];
}

export interface PutRequest {
  run: string;
  sha256: string;
  size: number;
  offset: number;
  /** base64 of the chunk. */
  data: string;
}

export interface BootRequest {
  run: string;
  stage: number;
  /** The instance's name in this run's reports. */
  instance: string;
  spec: StageSpec;
  files: FileRef[];
  /** Stats interval, ms; 0: one interval for the whole stage. */
  freqMs: number;
  statsDisabled: boolean;
  /** The instance forgets a booted stage not started within this time. */
  startWithinMs: number;
  /** The stage's runtime, when it has one: no interval is closed just before it ends. */
  runtimeMs?: number;
}
export interface BootReply {
  clients: number;
  trx: string[];
}

export interface StageRef {
  run: string;
  stage: number;
}

/** Items of the `start` stream. */
export type StartItem = { t: "started"; atMs: number } | { t: "report"; report: IntervalReport };

export type StartResult = RunSummary;

const SHA256 = /^[0-9a-f]{64}$/;
const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;

function bad(what: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `run protocol: ${what}`);
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw bad(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function runId(v: unknown): string {
  if (typeof v !== "string" || !RUN_ID.test(v))
    throw bad("run must be an id of 1 to 64 letters, digits, _ or -");
  return v;
}

function count(v: unknown, what: string, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max)
    throw bad(`${what} must be an integer from 0 to ${max}`);
  return v;
}

/** A relative path inside the stage's directory: no absolute path, no `..`, no NUL. */
export function checkRelativePath(p: unknown): string {
  if (typeof p !== "string" || p.length === 0 || p.length > 512)
    throw bad("a file path must be 1 to 512 characters");
  if (p.startsWith("/") || p.includes("\\") || p.includes("\0") || /^[A-Za-z]:/.test(p))
    throw bad(`file path ${JSON.stringify(p)} must be relative, with / separators`);
  if (p.split("/").some((s) => s === ".." || s === "" || s === "."))
    throw bad(`file path ${JSON.stringify(p)} must not contain empty, . or .. parts`);
  return p;
}

function fileRefs(v: unknown): FileRef[] {
  if (!Array.isArray(v) || v.length > MAX_FILES) throw bad(`files must be a list of at most ${MAX_FILES}`);
  return v.map((x) => {
    const r = record(x, "a file");
    if (typeof r.sha256 !== "string" || !SHA256.test(r.sha256)) throw bad("sha256 must be 64 hex digits");
    return { path: checkRelativePath(r.path), sha256: r.sha256, size: count(r.size, "size", MAX_FILE_BYTES) };
  });
}

export function readFilesRequest(v: unknown): FilesRequest {
  const r = record(v, "the request");
  return { run: runId(r.run), files: fileRefs(r.files) };
}

export function readPutRequest(v: unknown): PutRequest {
  const r = record(v, "the request");
  if (typeof r.sha256 !== "string" || !SHA256.test(r.sha256)) throw bad("sha256 must be 64 hex digits");
  const size = count(r.size, "size", MAX_FILE_BYTES);
  const offset = count(r.offset, "offset", size);
  if (typeof r.data !== "string" || r.data.length > Math.ceil(PUT_CHUNK_BYTES / 3) * 4)
    throw bad(`data must be base64 of at most ${PUT_CHUNK_BYTES} bytes`);
  return { run: runId(r.run), sha256: r.sha256, size, offset, data: r.data };
}

export function readStageRef(v: unknown): StageRef {
  const r = record(v, "the request");
  return { run: runId(r.run), stage: count(r.stage, "stage", 10_000) };
}

export function readBootRequest(v: unknown): BootRequest {
  const r = record(v, "the request");
  const spec = record(r.spec, "spec");
  if (spec.kind !== "sql" && spec.kind !== "exec" && spec.kind !== "handler")
    throw bad("spec.kind must be sql, exec or handler");
  if (typeof spec.name !== "string") throw bad("spec.name must be a string");
  if (typeof r.instance !== "string" || r.instance.length === 0 || r.instance.length > 128)
    throw bad("instance must be a name of 1 to 128 characters");
  if (typeof r.statsDisabled !== "boolean") throw bad("statsDisabled must be true or false");
  return {
    run: runId(r.run),
    stage: count(r.stage, "stage", 10_000),
    instance: r.instance,
    spec: spec as StageSpec,
    files: fileRefs(r.files),
    freqMs: count(r.freqMs, "freqMs", 24 * 3600_000),
    statsDisabled: r.statsDisabled,
    startWithinMs: count(r.startWithinMs, "startWithinMs", 24 * 3600_000),
    ...(r.runtimeMs !== undefined && { runtimeMs: count(r.runtimeMs, "runtimeMs", 2 ** 31) }),
  };
}
