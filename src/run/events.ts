import type { ErrorBody } from "../errors/muster-error.js";
import type { RunSummary } from "./engine/types.js";
import type { MergedInterval } from "./stats/types.js";

/**
 * What a run tells whoever watches it (the `muster run` that submitted it, a dashboard): a
 * discriminated union, JSON-safe, in the order things happen. `stage` is the stage's index in
 * the run (0-based).
 */
export type RunEvent =
  | {
      t: "stage";
      stage: number;
      name: string;
      kind: string;
      /** Instances the stage takes, counting the local one unless disabled. */
      instances: number;
      local: boolean;
    }
  /** Fewer matching agents than the stage needs: the run waits for more, until the boot timeout. */
  | { t: "waiting"; stage: number; need: number; have: number; selector: string }
  | { t: "booting"; stage: number; instance: string }
  | { t: "booted"; stage: number; instance: string; clients: number; ms: number }
  /** The instance's slot is freed: another matching agent is tried, if any. */
  | { t: "boot-failed"; stage: number; instance: string; error: ErrorBody }
  | {
      t: "started";
      stage: number;
      instances: string[];
      /** Spread of the instances' own start times (their clocks). */
      skewMs: number;
    }
  | { t: "interval"; stage: number; merged: MergedInterval }
  /**
   * An instance's link dropped mid-run (reported at once): its session may resume within the
   * server's resume window, and nothing is lost; if not, `lost` follows.
   */
  | { t: "unreachable"; stage: number; instance: string; reason: string }
  /** Its session resumed: the run goes on as if nothing happened. */
  | { t: "reachable"; stage: number; instance: string; downtimeMs: number }
  /** An instance went away mid-run (its link, or its stage failed there). */
  | { t: "lost"; stage: number; instance: string; error: ErrorBody; onLoss: "abort" | "continue" }
  | { t: "instance-done"; stage: number; instance: string; summary: RunSummary }
  | { t: "stopping"; stage: number; why: string }
  | { t: "stage-done"; stage: number; ok: boolean; error?: ErrorBody; seconds: number }
  | { t: "run-done"; ok: boolean; error?: ErrorBody; stages: number }
  /** The coordinating server went away before stage `from` started: it is submitted again. */
  | { t: "resubmitting"; from: number; why: string };

/** What a run's state looks like in `muster runs`. */
export type RunState = "booting" | "running" | "stopping" | "done" | "failed";

export interface RunStatus {
  id: string;
  /** The stages' names, in order. */
  stages: string[];
  /** Index of the stage under way (or the last one). */
  stage: number;
  state: RunState;
  instances: string[];
  /** Seconds into the current stage, and its runtime when it has one. */
  elapsedS: number;
  runtimeS?: number;
  /** Of the last merged interval of the current stage. */
  qps?: number;
  errors?: number;
  submittedBy: string;
  startedAt: string;
  error?: string;
}
