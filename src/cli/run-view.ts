import { existsSync } from "node:fs";
import { extname } from "node:path";
import type { ReportConfig } from "../run/engine/types.js";
import type { RunEvent } from "../run/events.js";
import { createReporters } from "../run/stats/index.js";
import type { Reporter } from "../run/stats/types.js";

/** Where the view writes: the report tables (stdout) and what happens (stderr). */
export interface RunViewOutput {
  out: { write(s: string): unknown };
  err: { write(s: string): unknown };
  /** stderr is a terminal: a live progress line. */
  tty: boolean;
}

export interface StageInfo {
  name: string;
  runtimeMs?: number;
  report: ReportConfig;
  statsDisabled: boolean;
}

/** `--report stdout|csv=FILE|json=FILE`, repeatable: replaces the stages' stats.report. */
export function parseReports(specs: string[]): ReportConfig {
  const out: ReportConfig = {};
  for (const spec of specs) {
    const [kind, file] = spec.split("=", 2) as [string, string | undefined];
    if (kind === "stdout" && file === undefined)
      out.stdout = { combined: true, eachInstance: true, percentiles: [99.9], perTrx: false };
    else if (kind === "csv" && file) out.csv = { file, percentiles: [99.9] };
    else if (kind === "json" && file) out.json = { file };
    else throw new Error(`--report ${spec}: give stdout, csv=FILE or json=FILE`);
  }
  return out;
}

/** FILE for the first stage with stats; FILE-2-NAME.ext for the next ones (files are never overwritten). */
function fileFor(file: string, nth: number, stage: string): string {
  if (nth === 0) return file;
  const ext = extname(file);
  return `${file.slice(0, file.length - ext.length)}-${nth + 1}-${stage.replace(/[^A-Za-z0-9_.-]/g, "_")}${ext}`;
}

function secs(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}

/**
 * What `muster run` shows: the report tables of each stage on stdout (its reporters), the
 * run's events as lines on stderr, and on a terminal a live progress line (elapsed / runtime,
 * QPS, errors, instances). With `json`, every event is a JSON line on stdout instead.
 */
export class RunView {
  readonly #o: RunViewOutput;
  readonly #stages: StageInfo[];
  readonly #json: boolean;
  #reporters: Reporter[] = [];
  #withStats = 0;
  #stage = -1;
  #startedAt = 0;
  #instances = 0;
  #lost = 0;
  #qps = 0;
  #errors = 0;
  /** Over the stage so far: events, commits and the intervals' seconds (for its summary). */
  #events = 0;
  #commits = 0;
  #seconds = 0;
  #progress: NodeJS.Timeout | undefined;

  constructor(o: RunViewOutput, stages: StageInfo[], json: boolean) {
    this.#o = o;
    this.#stages = stages;
    this.#json = json;
  }

  async event(e: RunEvent): Promise<void> {
    if (this.#json) {
      this.#o.out.write(`${JSON.stringify(e)}\n`);
      // Report files are written all the same; the tables are what the JSON lines replace.
      if (e.t === "stage") this.#openReporters(e.stage, false);
      else if (e.t === "interval") for (const r of this.#reporters) r.report(e.merged);
      else if (e.t === "stage-done" || e.t === "run-done") await this.#stopReporters();
      return;
    }
    switch (e.t) {
      case "stage": {
        this.#stage = e.stage;
        this.#instances = 0;
        this.#lost = 0;
        this.#qps = 0;
        this.#errors = 0;
        this.#events = 0;
        this.#commits = 0;
        this.#seconds = 0;
        const info = this.#stages[e.stage];
        this.#line(
          `stage ${e.name}: ${e.instances} instance${e.instances === 1 ? "" : "s"}${e.local ? " (this one included)" : ""}`,
        );
        if (info !== undefined) this.#openReporters(e.stage, true);
        break;
      }
      case "waiting":
        this.#line(`waiting for agents matching ${e.selector}: ${e.have} of ${e.need}`);
        break;
      case "booted":
        this.#line(`  ${e.instance} booted (${e.clients} client${e.clients === 1 ? "" : "s"}, ${e.ms} ms)`);
        break;
      case "boot-failed":
        this.#line(`  ${e.instance} failed to boot: ${e.error.message}`);
        break;
      case "started":
        this.#instances = e.instances.length;
        this.#startedAt = performance.now();
        this.#line(`started on ${e.instances.join(", ")} (start skew ${e.skewMs} ms)`);
        this.#startProgress();
        break;
      case "interval": {
        const c = e.merged.combined;
        this.#qps = e.merged.seconds > 0 ? Math.round((c.total.n[3] ?? 0) / e.merged.seconds) : 0;
        this.#errors += Object.values(c.total.errors).reduce((a, b) => a + b, 0);
        this.#events += c.total.n[3] ?? 0;
        this.#commits += c.total.n[2] ?? 0;
        this.#seconds += e.merged.seconds;
        this.#clearProgress();
        for (const r of this.#reporters) r.report(e.merged);
        this.#drawProgress();
        break;
      }
      case "lost":
        this.#lost++;
        this.#line(
          `instance ${e.instance} lost: ${e.error.message} (${e.onLoss === "abort" ? "stopping the stage" : "going on without it"})`,
        );
        break;
      case "instance-done": {
        const errs = Object.entries(e.summary.clientErrors);
        if (errs.length > 0)
          this.#line(`  ${e.instance}: client errors: ${errs.map(([m, n]) => `${m} (×${n})`).join("; ")}`);
        if (e.summary.exit !== undefined && (e.summary.exit.code !== 0 || errs.length > 0))
          this.#line(
            `  ${e.instance}: exit ${e.summary.exit.code ?? e.summary.exit.signal}; output ends:\n${e.summary.exit.output}`,
          );
        break;
      }
      case "unreachable":
        this.#line(`instance ${e.instance} unreachable (${e.reason}): waiting for it to resume`);
        break;
      case "reachable":
        this.#line(`instance ${e.instance} back after ${Math.round(e.downtimeMs)} ms: nothing lost`);
        break;
      case "resubmitting":
        this.#line(
          `the server went away (${e.why}): stage ${e.from + 1} and those after it go again once it is back`,
        );
        break;
      case "stopping":
        this.#line(`stopping: ${e.why}`);
        break;
      case "stage-done":
        this.#stopProgress();
        await this.#stopReporters();
        if (this.#seconds > 0)
          this.#line(
            `summary: ${this.#events} events in ${this.#seconds.toFixed(1)} s (${Math.round(this.#events / this.#seconds)} QPS, ${Math.round(this.#commits / this.#seconds)} TPS), ${this.#errors} errors`,
          );
        this.#line(
          e.ok
            ? `stage done in ${e.seconds.toFixed(1)} s`
            : `stage failed after ${e.seconds.toFixed(1)} s: ${e.error?.message}`,
        );
        break;
      case "run-done":
        this.#stopProgress();
        await this.#stopReporters();
        break;
      default:
        break;
    }
  }

  /** Report files that exist already (a report never overwrites one): checked before the run. */
  existingFiles(): string[] {
    const out: string[] = [];
    let nth = 0;
    for (const info of this.#stages) {
      if (info.statsDisabled) continue;
      for (const f of [info.report.csv?.file, info.report.json?.file])
        if (f !== undefined && existsSync(fileFor(f, nth, info.name))) out.push(fileFor(f, nth, info.name));
      nth++;
    }
    return out;
  }

  /** The stage's reporters: its report files, and the stdout tables unless `tables` is false. */
  #openReporters(stage: number, tables: boolean): void {
    const info = this.#stages[stage];
    if (info === undefined || info.statsDisabled) return;
    const nth = this.#withStats++;
    const r = info.report;
    const none = r.stdout === undefined && r.csv === undefined && r.json === undefined;
    const cfg: ReportConfig = {
      ...(tables &&
        (r.stdout !== undefined || none) && {
          stdout: r.stdout ?? { combined: true, eachInstance: true, percentiles: [99.9], perTrx: false },
        }),
      ...(r.csv && { csv: { ...r.csv, file: fileFor(r.csv.file, nth, info.name) } }),
      ...(r.json && { json: { file: fileFor(r.json.file, nth, info.name) } }),
    };
    if (cfg.stdout === undefined && cfg.csv === undefined && cfg.json === undefined) return;
    this.#reporters = createReporters(cfg, this.#o.out);
  }

  /** Reporters stopped, progress line gone (also after a failure). */
  async close(): Promise<void> {
    this.#stopProgress();
    await this.#stopReporters();
  }

  async #stopReporters(): Promise<void> {
    const rs = this.#reporters;
    this.#reporters = [];
    for (const r of rs) await r.stop();
  }

  #line(s: string): void {
    this.#clearProgress();
    this.#o.err.write(`${s}\n`);
    this.#drawProgress();
  }

  #startProgress(): void {
    if (!this.#o.tty || this.#progress !== undefined) return;
    this.#progress = setInterval(() => this.#drawProgress(), 1000);
    this.#progress.unref();
  }

  #stopProgress(): void {
    if (this.#progress === undefined) return;
    clearInterval(this.#progress);
    this.#progress = undefined;
    this.#clearProgress();
  }

  #clearProgress(): void {
    if (this.#progress !== undefined) this.#o.err.write("\r\x1b[2K");
  }

  #drawProgress(): void {
    if (this.#progress === undefined) return;
    const info = this.#stages[this.#stage];
    const elapsed = performance.now() - this.#startedAt;
    const of = info?.runtimeMs !== undefined ? `/${secs(info.runtimeMs)}` : "";
    this.#o.err.write(
      `\r\x1b[2K${info?.name ?? ""} ${secs(elapsed)}${of}  QPS ${this.#qps}  errors ${this.#errors}  instances ${this.#instances - this.#lost}/${this.#instances}`,
    );
  }
}
