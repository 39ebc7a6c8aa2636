import { Accumulator, checkStats } from "./accumulator.js";
import type { IntervalReport, MergedInterval, Reporter, StatsData } from "./types.js";

/** Intervals an instance may be ahead of the slowest before the slowest's is merged without it. */
export const LATE_INTERVALS = 2;
const MAX_TRX = 1000;
const MAX_NAME = 256;

/** One instance's report, checked and copied into accumulators of our own. */
interface Part {
  report: IntervalReport;
}

/**
 * The coordinator's side of a stage's statistics: reports from every instance, merged per
 * interval number (instances start together, behind the barrier) by adding their histograms.
 * An interval is reported once every instance still running has sent it, or once another
 * instance is `LATE_INTERVALS` ahead (then the late one is listed missing): memory holds at most
 * that many intervals. A report that comes after its interval was reported is counted
 * (`late`), never merged twice. `finish` reports what is left, the partial last interval
 * included, and stops every reporter exactly once.
 */
export class Merger {
  readonly #expected: string[];
  readonly #alive: Set<string>;
  readonly #reporters: Reporter[];
  readonly #pending = new Map<number, Map<string, Part>>();
  /** The last interval each instance sent. */
  readonly #last = new Map<string, number>();
  /** Instances that sent their last report. */
  readonly #ended = new Set<string>();
  #reported = 0;
  #newest = 0;
  #stopped = false;
  /** Reports that came after their interval was reported. */
  late = 0;

  constructor(expected: string[], reporters: Reporter[]) {
    this.#expected = expected;
    this.#alive = new Set(expected);
    this.#reporters = reporters;
  }

  /**
   * Takes one instance's report; returns why it was refused (a malformed or unexpected
   * report: nothing from a peer throws out of here), or undefined.
   */
  add(report: unknown): string | undefined {
    let part: Part;
    try {
      part = checkReport(report);
    } catch (err) {
      return (err as Error).message;
    }
    const r = part.report;
    if (!this.#expected.includes(r.instance))
      return `report from ${r.instance}, not an instance of this stage`;
    const last = this.#last.get(r.instance) ?? 0;
    if (r.interval !== last + 1)
      return `interval ${r.interval} from ${r.instance} after its interval ${last}`;
    this.#last.set(r.instance, r.interval);
    if (r.final === true) this.#ended.add(r.instance);
    if (this.#stopped) return "the stage's statistics are closed";
    if (r.interval <= this.#reported) {
      this.late++;
      return `interval ${r.interval} from ${r.instance} came after it was reported`;
    }
    let parts = this.#pending.get(r.interval);
    if (parts === undefined) {
      parts = new Map();
      this.#pending.set(r.interval, parts);
    }
    parts.set(r.instance, part);
    this.#newest = Math.max(this.#newest, r.interval);
    this.#flush(false);
    return undefined;
  }

  /** The instance is gone: its intervals are no longer waited for. */
  instanceLost(name: string): void {
    this.#alive.delete(name);
    this.#flush(false);
  }

  /** Reports every interval left and stops the reporters (once). */
  async finish(): Promise<void> {
    if (this.#stopped) return;
    this.#flush(true);
    this.#stopped = true;
    for (const r of this.#reporters) {
      try {
        await r.stop();
      } catch {
        // One reporter failing to close must not keep the others open.
      }
    }
  }

  #flush(all: boolean): void {
    for (;;) {
      const i = this.#reported + 1;
      const parts = this.#pending.get(i);
      // Each instance sends its intervals in order: nothing for i means nothing newer either.
      if (parts === undefined) return;
      const waiting = [...this.#alive].filter((n) => !parts.has(n) && !this.#ended.has(n));
      const ahead = this.#newest - i >= LATE_INTERVALS;
      if (waiting.length > 0 && !all && !ahead) return;
      this.#pending.delete(i);
      this.#reported = i;
      const last = this.#pending.size === 0 && [...this.#alive].every((n) => this.#ended.has(n));
      this.#report(i, parts, last || (all && this.#pending.size === 0));
    }
  }

  #report(interval: number, parts: Map<string, Part>, final: boolean): void {
    const ordered = this.#expected.filter((n) => parts.has(n)).map((n) => parts.get(n)!);
    const total = new Accumulator();
    const trx = new Map<string, Accumulator>();
    let clients = 0;
    let seconds = 0;
    let runtimeS = 0;
    for (const p of ordered) {
      total.addData(p.report.total);
      for (const name in p.report.trx) {
        let t = trx.get(name);
        if (t === undefined) {
          t = new Accumulator();
          trx.set(name, t);
        }
        t.addData(p.report.trx[name]!);
      }
      clients += p.report.clients;
      seconds = Math.max(seconds, (p.report.endMs - p.report.startMs) / 1000);
      runtimeS = Math.max(runtimeS, p.report.runtimeS);
    }
    const merged: MergedInterval = {
      interval,
      seconds,
      runtimeS,
      instances: ordered.map((p) => p.report),
      missing: this.#expected.filter((n) => !parts.has(n)),
      combined: {
        instance: `(${ordered.length} combined)`,
        interval,
        startMs: Math.min(...ordered.map((p) => p.report.startMs)),
        endMs: Math.max(...ordered.map((p) => p.report.endMs)),
        runtimeS,
        clients,
        total: total.toData(),
        trx: Object.fromEntries([...trx].map(([n, a]) => [n, a.toData()])),
        ...(final && { final: true }),
      },
      final,
    };
    for (const r of this.#reporters) r.report(merged);
  }
}

/** A report from the wire, checked field by field and copied (nothing of it kept by reference). */
export function checkReport(v: unknown): Part {
  if (v === null || typeof v !== "object") throw new Error("a report must be an object");
  const r = v as Record<string, unknown>;
  if (typeof r.instance !== "string" || r.instance.length === 0 || r.instance.length > MAX_NAME)
    throw new Error("report.instance: a name");
  const instance = r.instance;
  if (!Number.isSafeInteger(r.interval) || (r.interval as number) < 1)
    throw new Error("report.interval: a whole number ≥ 1");
  for (const k of ["startMs", "endMs", "runtimeS", "clients"] as const)
    if (typeof r[k] !== "number" || !Number.isFinite(r[k]) || (r[k] as number) < 0)
      throw new Error(`report.${k}: a number ≥ 0`);
  if ((r.endMs as number) < (r.startMs as number)) throw new Error("report.endMs: before startMs");
  const total = checkStats(r.total, "report.total");
  if (r.trx === null || typeof r.trx !== "object" || Array.isArray(r.trx))
    throw new Error("report.trx: an object");
  const entries = Object.entries(r.trx as Record<string, unknown>);
  if (entries.length > MAX_TRX) throw new Error(`report.trx: at most ${MAX_TRX} trx`);
  const trx: Record<string, StatsData> = {};
  for (const [name, d] of entries) {
    if (name.length === 0 || name.length > MAX_NAME || name === "__proto__")
      throw new Error("report.trx: names of 1 to 256 characters");
    trx[name] = checkStats(d, `report.trx[${JSON.stringify(name.slice(0, 40))}]`);
  }
  const report: IntervalReport = {
    instance,
    interval: r.interval as number,
    startMs: r.startMs as number,
    endMs: r.endMs as number,
    runtimeS: r.runtimeS as number,
    clients: r.clients as number,
    total,
    trx,
    ...(r.final === true && { final: true }),
  };
  return { report };
}
