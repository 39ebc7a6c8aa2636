import { fileURLToPath } from "node:url";

/** A system under benchmark, found by the child process: `systems` export of `module`, by `name`. */
export interface SystemRef {
  name: string;
  /** URL of the module exporting `systems: BenchSystem[]`. */
  module: string;
}

export const SCENARIOS = ["rtt", "pipe", "fanout-1k", "fanout-10k", "idle-mem", "stream", "storm"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export const SIZES = [64, 4096] as const;

/** One measured figure set: a scenario at a payload size on a system. */
export interface ResultRow {
  scenario: ScenarioName;
  system: string;
  /** Payload bytes (0 where no payload is involved). */
  size: number;
  metrics: Record<string, number>;
  /** Why the scenario could not run on this system, when it could not. */
  error?: string;
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
}

/** Counts and durations of each scenario, full and quick. */
export function plan(quick: boolean) {
  return {
    /** Interleaved measurement windows per system (rtt, pipe, stream). */
    rounds: quick ? 1 : 5,
    callWarmupMs: quick ? 100 : 300,
    callDurationMs: quick ? 300 : 2000,
    pipeInflight: 64,
    fanout1k: { n: quick ? 100 : 1000, rounds: quick ? 3 : 30, warmup: quick ? 1 : 3 },
    fanout10k: { n: quick ? 300 : 10_000, rounds: quick ? 2 : 10, warmup: 1 },
    idleSettleMs: quick ? 200 : 3000,
    streamItems: (size: number) => (size <= 64 ? (quick ? 5000 : 100_000) : quick ? 500 : 10_000),
    storm: { n: quick ? 200 : 5000 },
  };
}

export const CHILD_PATH = fileURLToPath(new URL("./child.js", import.meta.url));
