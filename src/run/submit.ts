import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { LoadedStage, StageSpec } from "./engine/types.js";
import { type FileRef, MAX_FILES, readFilesRequest } from "./protocol.js";

/** A stage as `muster run --server` submits it: its files are uploaded before (by sha256). */
export interface SubmittedStage {
  name: string;
  file: string;
  kind: LoadedStage["kind"];
  instances: number;
  disableLocal: boolean;
  runtimeMs?: number;
  stats: { disable: boolean; freqMs: number };
  spec: StageSpec;
  files: FileRef[];
}

/** Request of the operator stream `muster.run.submit`; its items are the run's events. */
export interface SubmitRequest {
  /** The run's id (chosen by the submitter, so that it can stop the run by it). */
  run: string;
  /** The agents the run may take: a target, as `muster call` takes. */
  select: string;
  /** The submitting operator takes part as the instance "local" (it serves the run methods). */
  local: boolean;
  bootTimeoutMs: number;
  onLoss: "abort" | "continue";
  stages: SubmittedStage[];
}

/** Stages one run may have. */
export const MAX_STAGES = 64;
/** Longest boot timeout a run may ask for. */
const MAX_BOOT_TIMEOUT_MS = 3_600_000;

function bad(what: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `muster.run.submit: ${what}`);
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max)
    throw bad(`${what} must be a whole number from ${min} to ${max}`);
  return v;
}

function str(v: unknown, what: string, max = 256): string {
  if (typeof v !== "string" || v.length === 0 || v.length > max)
    throw bad(`${what} must be 1 to ${max} characters`);
  return v;
}

function stage(v: unknown, i: number): SubmittedStage {
  if (v === null || typeof v !== "object") throw bad(`stage ${i} must be an object`);
  const s = v as Record<string, unknown>;
  if (s.kind !== "sql" && s.kind !== "exec" && s.kind !== "handler")
    throw bad(`stage ${i}: kind must be sql, exec or handler`);
  const spec = s.spec as Record<string, unknown> | null;
  if (spec === null || typeof spec !== "object" || spec.kind !== s.kind || typeof spec.name !== "string")
    throw bad(`stage ${i}: spec must be an object of the stage's kind, with its name`);
  const stats = s.stats as Record<string, unknown> | null;
  if (stats === null || typeof stats !== "object" || typeof stats.disable !== "boolean")
    throw bad(`stage ${i}: stats must be {disable, freqMs}`);
  if (typeof s.disableLocal !== "boolean") throw bad(`stage ${i}: disableLocal must be true or false`);
  const files = readFilesRequest({ run: "x", files: s.files }).files;
  return {
    name: str(s.name, `stage ${i}: name`),
    file: str(s.file, `stage ${i}: file`, 4096),
    kind: s.kind,
    instances: int(s.instances, `stage ${i}: instances`, 1, 100_000),
    disableLocal: s.disableLocal,
    ...(s.runtimeMs !== undefined && { runtimeMs: int(s.runtimeMs, `stage ${i}: runtimeMs`, 1, 2 ** 31) }),
    stats: { disable: stats.disable, freqMs: int(stats.freqMs, `stage ${i}: stats.freqMs`, 0, 86_400_000) },
    spec: spec as StageSpec,
    files,
  };
}

/** Checks a submission from an operator: every field, every bound. */
export function readSubmitRequest(v: unknown): SubmitRequest {
  if (v === null || typeof v !== "object") throw bad("the request must be an object");
  const r = v as Record<string, unknown>;
  if (!Array.isArray(r.stages) || r.stages.length === 0 || r.stages.length > MAX_STAGES)
    throw bad(`stages must be a list of 1 to ${MAX_STAGES}`);
  if (typeof r.local !== "boolean") throw bad("local must be true or false");
  if (r.onLoss !== "abort" && r.onLoss !== "continue") throw bad("onLoss must be abort or continue");
  const stages = r.stages.map(stage);
  if (stages.reduce((n, s) => n + s.files.length, 0) > MAX_FILES * 4) throw bad("too many files in all");
  return {
    run: readFilesRequest({ run: r.run, files: [] }).run,
    select: str(r.select, "select", 16 * 1024),
    local: r.local,
    bootTimeoutMs: int(r.bootTimeoutMs, "bootTimeoutMs", 1, MAX_BOOT_TIMEOUT_MS),
    onLoss: r.onLoss,
    stages,
  };
}

/** What `muster run --server` sends of a loaded stage (its files go first, by sha256). */
export function submittedStage(s: LoadedStage, files: FileRef[]): SubmittedStage {
  return {
    name: s.name,
    file: s.file,
    kind: s.kind,
    instances: s.instances,
    disableLocal: s.disableLocal,
    ...(s.runtimeMs !== undefined && { runtimeMs: s.runtimeMs }),
    stats: { disable: s.stats.disable, freqMs: s.stats.freqMs },
    spec: s.spec,
    files,
  };
}

/** The stage again, as the coordinator runs it, with its files from the server's store. */
export function loadedStage(s: SubmittedStage, files: Map<string, Uint8Array>): LoadedStage {
  return {
    name: s.name,
    file: s.file,
    instances: s.instances,
    disableLocal: s.disableLocal,
    ...(s.runtimeMs !== undefined && { runtimeMs: s.runtimeMs }),
    stats: { ...s.stats, report: {} },
    kind: s.kind,
    files,
    spec: s.spec,
  };
}
