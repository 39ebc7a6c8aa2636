import { Accumulator } from "./accumulator.js";
import type { IntervalReport, Kind, Recorder } from "./types.js";

/**
 * The recording side of one instance for one stage: events go into the current interval's
 * per-trx stats (no allocation per event); `collect` closes the interval into a report and
 * starts the next one from zero (Finch's stats do not carry over from interval to interval).
 */
export class IntervalCollector implements Recorder {
  readonly #instance: string;
  readonly #trx: string[];
  readonly #clients: number;
  readonly #now: () => number;
  readonly #acc: Accumulator[];
  readonly #total = new Accumulator();
  readonly #startedAt: number;
  #intervalStart: number;
  #interval = 0;

  constructor(instance: string, trx: string[], clients: number, now: () => number = Date.now) {
    this.#instance = instance;
    this.#trx = trx;
    this.#clients = clients;
    this.#now = now;
    this.#acc = trx.map(() => new Accumulator());
    this.#startedAt = now();
    this.#intervalStart = this.#startedAt;
  }

  record(trx: number, kind: Kind, micros: number): void {
    this.#acc[trx]?.add(kind, micros);
  }

  error(trx: number, code: string): void {
    this.#acc[trx]?.addError(code);
  }

  /** Intervals collected so far. */
  get intervals(): number {
    return this.#interval;
  }

  /** The interval since the last collect, as a report; the next one starts now. */
  collect(final: boolean): IntervalReport {
    const end = this.#now();
    this.#total.reset();
    const trx: IntervalReport["trx"] = {};
    for (let i = 0; i < this.#trx.length; i++) {
      const a = this.#acc[i]!;
      this.#total.combine(a);
      trx[this.#trx[i]!] = a.toData();
      a.reset();
    }
    const report: IntervalReport = {
      instance: this.#instance,
      interval: ++this.#interval,
      startMs: this.#intervalStart,
      endMs: end,
      runtimeS: (end - this.#startedAt) / 1000,
      clients: this.#clients,
      total: this.#total.toData(),
      trx,
      ...(final && { final: true }),
    };
    this.#intervalStart = end;
    return report;
  }
}
