import { closeSync, openSync, writeSync } from "node:fs";
import type { ReportConfig } from "../engine/types.js";
import { columns, figuresOf, row } from "./figures.js";
import type { IntervalReport, MergedInterval, Reporter } from "./types.js";

/** Where the stdout reporter writes. */
export interface TextOut {
  write(s: string): unknown;
}

/** Pads the cells of rows to a common width per column (Finch's tab-aligned table). */
function aligned(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "))
    .join("\n");
}

function instanceRow(r: IntervalReport, seconds: number, ps: readonly number[], compute: string): string[] {
  return row(
    { interval: r.interval, seconds, runtimeS: r.runtimeS, clients: r.clients, compute },
    figuresOf(r.total, seconds, ps),
  );
}

/**
 * Finch's stdout table: per merged interval, a row per instance (`eachInstance`) and a
 * combined row (`combined`), both by default; with `perTrx`, a row per trx of the combined
 * figures too. A missing instance is named under the table.
 */
export class StdoutReporter implements Reporter {
  constructor(
    readonly out: TextOut,
    readonly o: { combined: boolean; eachInstance: boolean; percentiles: number[]; perTrx: boolean },
  ) {}

  report(m: MergedInterval): void {
    const ps = this.o.percentiles;
    const rows: string[][] = [columns(ps)];
    const secondsOf = (r: IntervalReport): number => (r.endMs - r.startMs) / 1000;
    if (this.o.eachInstance || m.instances.length === 1)
      for (const r of m.instances) rows.push(instanceRow(r, secondsOf(r), ps, r.instance));
    if (this.o.combined && m.instances.length > 1)
      rows.push(instanceRow(m.combined, m.seconds, ps, m.combined.instance));
    if (this.o.perTrx)
      for (const [name, d] of Object.entries(m.combined.trx))
        rows.push(
          row(
            {
              interval: m.interval,
              seconds: m.seconds,
              runtimeS: m.runtimeS,
              clients: m.combined.clients,
              compute: `trx ${name}`,
            },
            figuresOf(d, m.seconds, ps),
          ),
        );
    let text = `${aligned(rows)}\n`;
    if (m.missing.length > 0) text += `(no report from ${m.missing.join(", ")} for interval ${m.interval})\n`;
    this.out.write(`${text}\n`);
  }

  async stop(): Promise<void> {}
}

/** A file created for this report only (it must not exist: a report is never overwritten). */
function createExclusive(file: string, what: string): number {
  try {
    return openSync(file, "wx", 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === "EEXIST"
        ? `${what} report ${file} exists: give a new file (reports are never overwritten)`
        : `${what} report ${file}: ${(err as Error).message}`,
    );
  }
}

/** Finch's CSV: a header, then the combined row of every merged interval. */
export class CsvReporter implements Reporter {
  readonly #fd: number;
  #closed = false;
  constructor(
    file: string,
    readonly percentiles: number[],
  ) {
    this.#fd = createExclusive(file, "csv");
    writeSync(this.#fd, `${columns(percentiles).join(",")}\n`);
  }
  report(m: MergedInterval): void {
    if (this.#closed) return;
    const r = row(
      {
        interval: m.interval,
        seconds: m.seconds,
        runtimeS: m.runtimeS,
        clients: m.combined.clients,
        compute: m.combined.instance,
      },
      figuresOf(m.combined.total, m.seconds, this.percentiles),
    );
    writeSync(
      this.#fd,
      `${r.map((c) => (/[",\n]/.test(c) ? `"${c.replaceAll('"', '""')}"` : c)).join(",")}\n`,
    );
  }
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
  }
}

/** JSON lines: one object per merged interval (combined and per instance), then a summary. */
export class JsonReporter implements Reporter {
  static readonly PERCENTILES = [50, 95, 99, 99.9];
  readonly #fd: number;
  #closed = false;
  #intervals = 0;
  #n = 0;
  #errors = 0;
  #seconds = 0;
  constructor(file: string) {
    this.#fd = createExclusive(file, "json");
  }
  report(m: MergedInterval): void {
    if (this.#closed) return;
    const ps = JsonReporter.PERCENTILES;
    const figures = (r: IntervalReport, seconds: number) => ({
      instance: r.instance,
      clients: r.clients,
      seconds,
      ...figuresOf(r.total, seconds, ps),
      errorsByCode: r.total.errors,
    });
    const c = figuresOf(m.combined.total, m.seconds, ps);
    this.#intervals++;
    this.#n += c.total.n;
    this.#errors += c.errors;
    this.#seconds += m.seconds;
    const line = {
      interval: m.interval,
      runtimeS: m.runtimeS,
      percentiles: ps,
      combined: figures(m.combined, m.seconds),
      instances: m.instances.map((r) => figures(r, (r.endMs - r.startMs) / 1000)),
      missing: m.missing,
      final: m.final,
    };
    writeSync(this.#fd, `${JSON.stringify(line)}\n`);
  }
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const summary = {
      summary: { intervals: this.#intervals, events: this.#n, errors: this.#errors, seconds: this.#seconds },
    };
    writeSync(this.#fd, `${JSON.stringify(summary)}\n`);
    closeSync(this.#fd);
  }
}

/** The reporters a stage's `stats.report` (or `--report`) asks for; none: stdout, as Finch. */
export function createReporters(config: ReportConfig, out: TextOut): Reporter[] {
  const rs: Reporter[] = [];
  const none = config.stdout === undefined && config.csv === undefined && config.json === undefined;
  if (config.stdout !== undefined || none)
    rs.push(
      new StdoutReporter(
        out,
        config.stdout ?? { combined: true, eachInstance: true, percentiles: [99.9], perTrx: false },
      ),
    );
  try {
    if (config.csv !== undefined) rs.push(new CsvReporter(config.csv.file, config.csv.percentiles));
    if (config.json !== undefined) rs.push(new JsonReporter(config.json.file));
  } catch (err) {
    for (const r of rs) void r.stop();
    throw err;
  }
  return rs;
}
