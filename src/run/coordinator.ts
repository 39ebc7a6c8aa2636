import { randomBytes } from "node:crypto";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import type { LoadedStage } from "./engine/types.js";
import type { RunEvent } from "./events.js";
import { sha256Of } from "./file-store.js";
import type { InstancePort } from "./instance-port.js";
import { checkRelativePath, type FileRef, MAX_FILE_BYTES, MAX_FILES } from "./protocol.js";
import { bootStage, type RunFleet } from "./stage-boot.js";
import { runStage } from "./stage-run.js";

/** Defaults of a run; each is an option of `coordinateRun` and a flag of `muster run`. */
export const RUN_DEFAULTS = {
  /** Time for a stage's instances to boot, replacements included. */
  bootTimeoutMs: 60_000,
  /** Time instances have to end after a stop before they are cancelled. */
  stopGraceMs: 1000,
  /** How long past its runtime a stage may go on before its instances are stopped. */
  overrunMs: 10_000,
  onLoss: "abort",
} as const;

export interface RunOptions {
  /** The run's id (letters, digits, _ and -). @default 16 random hex digits */
  id?: string;
  stages: LoadedStage[];
  /** The local instance; absent when the coordinator runs none (a server). */
  local?: InstancePort;
  /** The agents the run may take; absent: local only. */
  fleet?: RunFleet;
  bootTimeoutMs?: number;
  onLoss?: "abort" | "continue";
  stopGraceMs?: number;
  overrunMs?: number;
  emit(e: RunEvent): void;
  /** Aborting stops the run: the stage under way ends (its stats still merged), no other starts. */
  signal?: AbortSignal;
  logger?: Logger;
}

export interface RunOutcome {
  id: string;
  ok: boolean;
  error?: MusterError;
}

/** A new run id. */
export function newRunId(): string {
  return randomBytes(8).toString("hex");
}

/** The files of a stage as instances are told them: each path with its hash and size. */
export function fileRefsOf(stage: LoadedStage): FileRef[] {
  if (stage.files.size > MAX_FILES)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `stage ${stage.name} has ${stage.files.size} files, more than ${MAX_FILES}`,
    );
  return [...stage.files].map(([path, bytes]) => {
    checkRelativePath(path);
    if (bytes.length > MAX_FILE_BYTES)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `file ${path} of stage ${stage.name} is ${bytes.length} bytes, more than ${MAX_FILE_BYTES}`,
      );
    return { path, sha256: sha256Of(bytes), size: bytes.length };
  });
}

/**
 * Runs stages strictly one after another, each booted on its instances, started together and
 * merged; the first stage that fails ends the run. Every event goes to `emit`; the outcome
 * says whether every stage completed.
 */
export async function coordinateRun(o: RunOptions): Promise<RunOutcome> {
  const id = o.id ?? newRunId();
  const logger = (o.logger ?? silentLogger).child({ run: id });
  const signal = o.signal ?? new AbortController().signal;
  const onLoss = o.onLoss ?? RUN_DEFAULTS.onLoss;
  const bootTimeoutMs = o.bootTimeoutMs ?? RUN_DEFAULTS.bootTimeoutMs;
  let done = 0;
  let failure: MusterError | undefined;
  for (const [stage, loaded] of o.stages.entries()) {
    if (signal.aborted) {
      failure = MusterError.from(signal.reason, ErrorCode.CANCELLED);
      break;
    }
    const t0 = performance.now();
    const useLocal = o.local !== undefined && !loaded.disableLocal;
    o.emit({
      t: "stage",
      stage,
      name: loaded.name,
      kind: loaded.kind,
      instances: loaded.instances,
      local: useLocal,
    });
    try {
      const files = fileRefsOf(loaded);
      const instances = await bootStage({
        run: id,
        stage,
        loaded,
        files,
        local: o.local,
        fleet: o.fleet,
        bootTimeoutMs,
        // Every instance of a stage is booted within the boot timeout; the start follows.
        startWithinMs: bootTimeoutMs + 30_000,
        emit: o.emit,
        signal,
      });
      await runStage({
        ref: { run: id, stage },
        loaded,
        instances,
        onLoss,
        stopGraceMs: o.stopGraceMs ?? RUN_DEFAULTS.stopGraceMs,
        overrunMs: o.overrunMs ?? RUN_DEFAULTS.overrunMs,
        emit: o.emit,
        signal,
        logger,
      });
      done++;
      o.emit({ t: "stage-done", stage, ok: true, seconds: (performance.now() - t0) / 1000 });
    } catch (err) {
      failure = MusterError.from(err);
      logger.warn({ stage: loaded.name, err: failure.message }, "stage failed");
      o.emit({
        t: "stage-done",
        stage,
        ok: false,
        error: failure.toBody(),
        seconds: (performance.now() - t0) / 1000,
      });
      break;
    }
  }
  const ok = failure === undefined && done === o.stages.length;
  o.emit({ t: "run-done", ok, stages: done, ...(failure !== undefined && { error: failure.toBody() }) });
  return { id, ok, ...(failure !== undefined && { error: failure }) };
}
