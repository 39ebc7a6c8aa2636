import type { Recorder } from "../stats/types.js";

/**
 * The engine runs one stage on one instance: Finch's stage and trx files (the subset of its
 * format that its published example benchmarks use) against MySQL or MariaDB via mysql2, and
 * the generic workloads. This file is the engine's boundary: the coordinator and the CLI use
 * nothing else of it.
 */

/** Command-line overrides, exactly as Finch's flags apply them. */
export interface StageOverrides {
  /** `--param`/`-p k=v`: override `params` of `_all.yaml` and the stage file. */
  params?: Record<string, string>;
  /** `--dsn` (Go DSN form `user:pass@tcp(host:port)/db`); else `FINCH_DSN` from `env`. */
  dsn?: string;
  /** `--database`/`-D`; else `FINCH_DB` from `env`. */
  database?: string;
  /** `--instances`: overrides `compute.instances`. */
  instances?: number;
  /** Where FINCH_DSN and FINCH_DB are read (process.env by default). */
  env?: Record<string, string | undefined>;
  /** `$sys.CPU_CORES` (os.availableParallelism() by default). */
  cpuCores?: number;
}

/** How stats are reported, from `stats.report` (validated, defaults applied). */
export interface ReportConfig {
  stdout?: { combined: boolean; eachInstance: boolean; percentiles: number[]; perTrx: boolean };
  csv?: { file: string; percentiles: number[] };
  json?: { file: string };
}

/**
 * A stage file loaded and validated on the coordinator's side. `spec` and `files` are what
 * every instance receives; nothing in `spec` refers to the coordinator's disk.
 */
export interface LoadedStage {
  /** stage.name, or the file's base name without `.yaml`. */
  name: string;
  /** The stage file as given. */
  file: string;
  /** compute.instances (after --instances), ≥ 1. */
  instances: number;
  disableLocal: boolean;
  /** stage.runtime in ms; undefined: until the workload ends (iterations, data limits). */
  runtimeMs?: number;
  stats: { disable: boolean; freqMs: number; report: ReportConfig };
  /** "sql" (Finch), "exec" (a command per instance) or "handler" (an agent method). */
  kind: "sql" | "exec" | "handler";
  /** The files instances need, by path relative to the stage's directory. */
  files: Map<string, Uint8Array>;
  /** The validated stage, JSON-safe; includes the MySQL password when the stage has one. */
  spec: StageSpec;
}

/** The validated stage as instances receive it: opaque outside the engine, JSON-safe. */
export interface StageSpec {
  readonly kind: "sql" | "exec" | "handler";
  readonly name: string;
  readonly [key: string]: unknown;
}

/** A stage prepared on an instance (files read, database reachable, generators built). */
export interface PreparedStage {
  /** Clients that record stats on this instance. */
  readonly clients: number;
  /** Trx names, in the order `Recorder` indexes them. */
  readonly trx: string[];
  /**
   * Runs until stage.runtime, the workload's iteration or data limits, or `signal`. Resolves
   * when every client has stopped; rejects only for a failure of the whole instance (client
   * errors are counted through the recorder and summarised in the result).
   */
  run(o: { signal: AbortSignal; recorder: Recorder }): Promise<RunSummary>;
  /** Frees what prepare took (connections). Idempotent. */
  close(): Promise<void>;
}

export interface RunSummary {
  /** Errors that stopped a client, with how often each happened (message → count). */
  clientErrors: Record<string, number>;
  /** For `exec`: the command's exit status and the tail of its output. */
  exit?: { code: number | null; signal: string | null; output: string };
}

/** A precise refusal of a stage or trx file: the file, the line, and what is wrong. */
export class StageError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly problem: string,
  ) {
    super(`${file}${line === undefined ? "" : `:${line}`}: ${problem}`);
    this.name = "StageError";
  }
}
