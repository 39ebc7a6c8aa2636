import type { RunEvent } from "../../run/events.js";
import { figuresOf } from "../../run/stats/figures.js";
import type { IntervalReport } from "../../run/stats/types.js";

/** Percentiles a run's intervals carry on the dashboard (of all events, in µs). */
export const RUN_PERCENTILES = [50, 95, 99, 99.9] as const;

/** One interval's figures: what the Runs page charts. */
export interface IntervalFigures {
  clients: number;
  qps: number;
  p50Us: number;
  p95Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  errors: number;
}

function figures(r: IntervalReport, seconds: number): IntervalFigures {
  const f = figuresOf(r.total, seconds, RUN_PERCENTILES);
  const [p50Us = 0, p95Us = 0, p99Us = 0, p999Us = 0] = f.total.p;
  return {
    clients: r.clients,
    qps: Math.round(f.total.rate * 10) / 10,
    p50Us,
    p95Us,
    p99Us,
    p999Us,
    maxUs: f.total.max,
    errors: f.errors,
  };
}

/**
 * A run's event as the dashboard's log keeps it: as the run reported it, but for an interval,
 * whose histograms (450 buckets per kind, per instance) become its figures — combined and per
 * instance — so that the log holds hours of a run's intervals in little room.
 */
export function liveRunEvent(run: string, e: RunEvent): Record<string, unknown> {
  if (e.t !== "interval") return { run, ...e };
  const m = e.merged;
  return {
    run,
    t: "interval",
    stage: e.stage,
    interval: m.interval,
    runtimeS: m.runtimeS,
    seconds: m.seconds,
    final: m.final,
    missing: m.missing,
    combined: figures(m.combined, m.seconds),
    instances: m.instances.map((i) => ({ instance: i.instance, ...figures(i, m.seconds) })),
  };
}
