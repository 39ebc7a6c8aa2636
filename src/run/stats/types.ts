/**
 * Statistics of a coordinated run: what each instance records, sends every `stats.freq`, and
 * what the coordinator merges. Everything here is plain data (JSON-safe) so that it crosses a
 * muster link as a call's request.
 */

/** Event kinds, in Finch's order: the index into every per-kind array. */
export const KIND = { READ: 0, WRITE: 1, COMMIT: 2, TOTAL: 3 } as const;
export type Kind = (typeof KIND)[keyof typeof KIND];
export const KIND_NAMES = ["read", "write", "commit", "total"] as const;

/**
 * One set of statistics (one trx, or all trx combined) over one interval: a latency histogram
 * per kind in Finch's layout (MySQL 8 performance_schema buckets: 450 buckets, 10 µs base,
 * ×1.0471285480508996 per bucket), exact min, max and count per kind, and error counts by code
 * (MySQL error number as a decimal string; "0" for an error that is not MySQL's).
 */
export interface StatsData {
  /** 4 kinds; each a sparse list of [bucket index, count] for the non-empty buckets, ascending. */
  buckets: Array<Array<[number, number]>>;
  /** Exact minimum latency (µs) per kind; meaningful only where n > 0. */
  min: number[];
  /** Exact maximum latency (µs) per kind. */
  max: number[];
  /** Events per kind. */
  n: number[];
  errors: Record<string, number>;
}

/** What one instance sends for one interval. */
export interface IntervalReport {
  /** The instance's name: "local", or the agent's. */
  instance: string;
  /** 1, 2, 3… The last interval of a stage may be partial (`final`). */
  interval: number;
  /** Wall-clock ms (epoch) when the interval started and ended on the instance. */
  startMs: number;
  endMs: number;
  /** Seconds since the stage started on the instance, at the end of the interval. */
  runtimeS: number;
  /** Clients recording stats on the instance. */
  clients: number;
  total: StatsData;
  /** Per trx file name. */
  trx: Record<string, StatsData>;
  /** True for the instance's last report of the stage. */
  final?: boolean;
}

/**
 * Records events on one instance, on the hot path of every query: no allocation per event.
 * `trx` is the index of the trx file in the stage's list.
 */
export interface Recorder {
  /**
   * One event of `micros` µs. READ, WRITE and COMMIT are also counted in TOTAL; TOTAL alone is
   * for statements of no other kind (BEGIN, SET, DDL…). Recorded even when the query failed.
   */
  record(trx: number, kind: Kind, micros: number): void;
  /** One error, by MySQL error number ("0" when not a MySQL error). */
  error(trx: number, code: string): void;
}

/** A reporter's view of one merged interval. */
export interface MergedInterval {
  interval: number;
  /** Seconds the interval lasted (the longest of its instances'). */
  seconds: number;
  /** Seconds since the stage started, at the end of the interval. */
  runtimeS: number;
  /** Every instance's report that arrived for this interval, in instance order. */
  instances: IntervalReport[];
  /** Names of the instances expected and missing (lost, or their report never came). */
  missing: string[];
  /** All instances combined (clients summed, histograms added). */
  combined: IntervalReport;
  /** True for a stage's last interval. */
  final: boolean;
}

/** Where merged intervals go: stdout, CSV, JSON, the live progress line, a dashboard. */
export interface Reporter {
  report(m: MergedInterval): void;
  /** The stage is over: flush and close (called exactly once, even after a failure). */
  stop(): Promise<void>;
}
