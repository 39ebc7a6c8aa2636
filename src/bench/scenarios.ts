import { fileURLToPath } from "node:url";

/** A system under benchmark, found by the child process: `systems` export of `module`, by `name`. */
export interface SystemRef {
  name: string;
  /** URL of the module exporting `systems: BenchSystem[]`. */
  module: string;
}

export const SCENARIOS = [
  "rtt",
  "pipe",
  "fanout-1k",
  "fanout-10k",
  "fanout-100k",
  "idle-mem",
  "stream",
  "storm",
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const SIZES = [64, 4096] as const;

/** One measured figure set: a scenario at a payload size on a system. */
export interface ResultRow {
  scenario: ScenarioName;
  system: string;
  /** Payload bytes (0 where no payload is involved). */
  size: number;
  metrics: Record<string, number>;
  /** Why the scenario failed on this system, when it did. */
  error?: string;
  /** Why the scenario was not run on this system (a limit of the machine), when it was not. */
  skipped?: string;
}

export interface RunOptions {
  /** Small counts and short durations: checks that everything completes and verifies. */
  quick: boolean;
  scenarios: readonly ScenarioName[];
  sizes: readonly number[];
  host: string;
  /** Progress lines. */
  log: (line: string) => void;
  /** Agents in the storm scenario, instead of the plan's count. */
  stormAgents?: number;
  /**
   * The storm with authentication on: every agent presents an Ed25519-signed token on every
   * attempt, resumes included (system `muster/<scheme>+auth`).
   */
  stormAuth?: boolean;
  /** Agents in fanout-100k, instead of 100,000 (for a machine whose descriptor limit is lower). */
  bigFanoutAgents?: number;
}

/** Counts and durations of each scenario, full and quick. */
export function plan(quick: boolean) {
  return {
    /** Interleaved measurement windows per system (rtt, pipe, stream). */
    rounds: quick ? 1 : 5,
    callWarmupMs: quick ? 100 : 300,
    callDurationMs: quick ? 300 : 2000,
    pipeInflight: 64,
    /** Client processes that share a fan-out scenario's clients. */
    fanoutProcesses: quick ? 2 : 4,
    /** Fleet scenarios (fanout-10k, idle-mem, fanout-100k): passes over the systems, order reversed each pass. */
    fleetPasses: quick ? 1 : 2,
    fanout1k: { n: quick ? 100 : 1000, rounds: quick ? 3 : 30, warmup: quick ? 1 : 3 },
    fanout10k: { n: quick ? 300 : 10_000, rounds: quick ? 2 : 10, warmup: 1 },
    /** Skipped by a quick run; at most this many clients per client process. */
    fanout100k: { n: 100_000, rounds: 3, warmup: 1, perProcess: 15_000 },
    idleSettleMs: quick ? 200 : 3000,
    streamItems: (size: number) => (size <= 64 ? (quick ? 5000 : 100_000) : quick ? 500 : 10_000),
    storm: { n: quick ? 200 : 5000 },
  };
}

export const CHILD_PATH = fileURLToPath(new URL("./child.js", import.meta.url));
