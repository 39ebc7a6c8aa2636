import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ErrorCode } from "../../errors/codes.js";
import { MusterError } from "../../errors/muster-error.js";
import type { PreparedStage, RunSummary, StageSpec } from "../engine/types.js";
import type { Preparer } from "../instance-host.js";
import { checkRelativePath } from "../protocol.js";
import { recordStatLine, STAT_PREFIX } from "./stat-lines.js";

/**
 * An `exec` stage as instances receive it: a command each instance runs in a fresh directory
 * holding the stage's files, with `@stat` lines on its stdout merged as statistics.
 */
export interface ExecSpec extends StageSpec {
  kind: "exec";
  /** argv; the program is looked up in PATH, or is one of the stage's files (`./run.sh`). */
  command: string[];
  /** Names the `@stat` lines may use. @default ["exec"] */
  trx?: string[];
  /** The command is stopped (SIGTERM, then SIGKILL 1 s later) after this long. */
  runtimeMs?: number;
}

/** Bytes of the command's output kept for the summary (the tail). */
const OUTPUT_TAIL_BYTES = 4096;
/** A longer stdout line is not a stats line (and only its start is kept in the tail). */
const MAX_LINE_BYTES = 4096;
const KILL_AFTER_MS = 1000;

function checkSpec(spec: StageSpec): ExecSpec {
  const s = spec as Partial<ExecSpec>;
  if (
    !Array.isArray(s.command) ||
    s.command.length === 0 ||
    s.command.length > 256 ||
    s.command.some((a) => typeof a !== "string")
  )
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      "exec stage: command must be a list of 1 to 256 strings",
    );
  if (
    s.trx !== undefined &&
    (!Array.isArray(s.trx) || s.trx.length === 0 || s.trx.some((t) => typeof t !== "string"))
  )
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, "exec stage: trx must be a list of names");
  if (s.runtimeMs !== undefined && !(typeof s.runtimeMs === "number" && s.runtimeMs > 0))
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, "exec stage: runtimeMs must be a positive number");
  return s as ExecSpec;
}

/** Prepares an `exec` stage: its files written to a private directory (0700). */
export const prepareExecStage: Preparer = async (spec, files, o) => {
  const s = checkSpec(spec);
  const dir = await mkdtemp(join(tmpdir(), "muster-run-"));
  try {
    for (const [path, bytes] of files) {
      checkRelativePath(path);
      const to = join(dir, path);
      await mkdir(dirname(to), { recursive: true, mode: 0o700 });
      // Executable: a stage's script is run as a program.
      await writeFile(to, bytes, { mode: 0o700 });
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const trx = s.trx ?? ["exec"];
  const index = new Map(trx.map((t, i) => [t, i]));
  let closed = false;
  const prepared: PreparedStage = {
    clients: 1,
    trx,
    run: ({ signal, recorder }) =>
      new Promise<RunSummary>((resolve, reject) => {
        const [program, ...args] = s.command as [string, ...string[]];
        const child = spawn(program, args, {
          cwd: dir,
          env: { ...process.env, MUSTER_RUN_INSTANCE: o.instance, MUSTER_RUN_STAGE: s.name },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let tail = "";
        let malformed = 0;
        let partial = "";
        const keep = (text: string): void => {
          tail = (tail + text).slice(-OUTPUT_TAIL_BYTES);
        };
        child.stdout.setEncoding("utf8");
        child.stdout.on("data", (chunk: string) => {
          const lines = (partial + chunk).split("\n");
          partial = lines.pop() ?? "";
          if (partial.length > MAX_LINE_BYTES) {
            keep(`${partial.slice(0, 256)}…\n`);
            partial = "";
          }
          for (const line of lines) {
            if (line.startsWith(STAT_PREFIX)) {
              if (!recordStatLine(line, index, recorder)) malformed++;
            } else keep(`${line}\n`);
          }
        });
        child.stderr.setEncoding("utf8");
        child.stderr.on("data", (chunk: string) => keep(chunk));
        let killer: NodeJS.Timeout | undefined;
        // Stopped at its runtime or by the coordinator: how it exits then is no failure.
        let stopped = false;
        const stop = (): void => {
          stopped = true;
          child.kill("SIGTERM");
          killer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
          killer.unref();
        };
        const runtime = s.runtimeMs === undefined ? undefined : setTimeout(stop, s.runtimeMs);
        signal.addEventListener("abort", stop, { once: true });
        child.on("error", (err) => {
          clearTimeout(runtime);
          signal.removeEventListener("abort", stop);
          reject(new MusterError(ErrorCode.UNAVAILABLE, `exec stage: cannot run ${program}: ${err.message}`));
        });
        child.on("close", (code, sig) => {
          clearTimeout(runtime);
          clearTimeout(killer);
          signal.removeEventListener("abort", stop);
          if (malformed > 0) keep(`(${malformed} malformed ${STAT_PREFIX.trim()} lines ignored)\n`);
          const clientErrors: Record<string, number> = {};
          if (code !== 0 && !stopped) clientErrors[`exit status ${code ?? sig}`] = 1;
          resolve({ clientErrors, exit: { code, signal: sig, output: tail } });
        });
      }),
    async close() {
      if (closed) return;
      closed = true;
      await rm(dir, { recursive: true, force: true });
    },
  };
  return prepared;
};
