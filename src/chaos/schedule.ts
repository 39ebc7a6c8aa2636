/**
 * Fault schedules: steps at fixed times since the proxy started, given as objects or as a
 * compact text spec such as `"5s blackhole 3s; 12s cut; 20s reset; 25s latency 200ms"`.
 *
 * Grammar (tokens are separated by spaces; keywords are lower case):
 *
 *   spec     = step *(";" step) [";"]
 *   step     = time action
 *   time     = duration                       since the proxy started; steps in time order
 *   action   = "cut"                          close every connection (FIN both ways)
 *            | "reset"                        reset every connection (RST both ways)
 *            | "blackhole" [duration]         forward nothing, close nothing; for a while or until "restore"
 *            | "restore"                      lift every black-hole
 *            | "latency" duration ["jitter" duration]
 *            | "jitter" duration
 *            | "bandwidth" (rate | "off")
 *   duration = number unit                    ms, s, m, h, d: 500ms, 3s, 1.5m
 *   rate     = number unit ["/s"]             B, KB, MB, GB, KiB, MiB, GiB: 64KB/s, 1MB/s
 */
import { formatDuration, formatRate, parseDurationText, parseRateText } from "./units.js";

/** What a step does. */
export type ScheduleAction =
  | { kind: "cut" }
  | { kind: "reset" }
  /** Without `forMs`, until a `restore`. */
  | { kind: "blackhole"; forMs?: number }
  | { kind: "restore" }
  /** Sets the added latency, and the jitter when given (otherwise the jitter is kept). */
  | { kind: "latency"; ms: number; jitterMs?: number }
  /** Sets the jitter, keeping the latency. */
  | { kind: "jitter"; ms: number }
  /** `null` lifts the limit. */
  | { kind: "bandwidth"; bytesPerSec: number | null };

/** One step of a schedule: an action at `atMs` milliseconds after the proxy started. */
export type ScheduleStep = { atMs: number } & ScheduleAction;

/** A malformed schedule: which step (1-based), its text, and what was expected. */
export class ScheduleError extends Error {
  override readonly name = "ScheduleError";
  constructor(
    readonly step: number,
    readonly text: string,
    readonly reason: string,
  ) {
    super(step > 0 ? `schedule step ${step} "${text}": ${reason}` : `schedule: ${reason}`);
  }
}

const ACTIONS = "cut, reset, blackhole, restore, latency, jitter or bandwidth";

/** Parses a text spec; throws a `ScheduleError` naming the step and what was expected. */
export function parseSchedule(spec: string): ScheduleStep[] {
  const parts = spec.split(";");
  if (parts.length > 1 && parts[parts.length - 1]!.trim() === "") parts.pop();
  if (parts.length === 1 && parts[0]!.trim() === "")
    throw new ScheduleError(0, "", 'the spec is empty; expected steps such as "5s blackhole 3s; 12s cut"');
  const steps: ScheduleStep[] = [];
  parts.forEach((raw, i) => {
    const text = raw.trim();
    const step = parseStep(text, i + 1);
    const prev = steps[steps.length - 1];
    if (prev && step.atMs < prev.atMs) {
      throw new ScheduleError(
        i + 1,
        text,
        `at ${formatDuration(step.atMs)}, before step ${i} at ${formatDuration(prev.atMs)}; steps must be in time order`,
      );
    }
    steps.push(step);
  });
  return steps;
}

function parseStep(text: string, n: number): ScheduleStep {
  const fail = (reason: string): never => {
    throw new ScheduleError(n, text, reason);
  };
  if (text === "") fail('the step is empty; expected a time and an action, e.g. "12s cut"');
  const tokens = text.split(/\s+/);
  let at = 0;
  const next = (): string | undefined => tokens[at++];
  const duration = (what: string, token: string | undefined): number => {
    if (token === undefined) return fail(`expected ${what} after "${tokens[at - 2]}", e.g. 3s`);
    try {
      return parseDurationText(token);
    } catch (err) {
      return fail(`${what}: ${(err as Error).message}`);
    }
  };
  const atMs = duration("the time", next());
  const action = next();
  if (action === undefined) fail(`expected an action after the time: ${ACTIONS}`);
  let step: ScheduleStep;
  switch (action) {
    case "cut":
    case "reset":
    case "restore":
      step = { atMs, kind: action };
      break;
    case "blackhole": {
      const token = next();
      if (token === undefined) step = { atMs, kind: "blackhole" };
      else {
        const forMs = duration("the black-hole duration", token);
        if (forMs === 0)
          fail("a black-hole of 0 lasts no time; give a duration above 0, or none (until restore)");
        step = { atMs, kind: "blackhole", forMs };
      }
      break;
    }
    case "latency": {
      const ms = duration("the latency", next());
      const word = next();
      if (word === undefined) step = { atMs, kind: "latency", ms };
      else if (word === "jitter")
        step = { atMs, kind: "latency", ms, jitterMs: duration("the jitter", next()) };
      else
        return fail(
          `unexpected "${word}" after the latency; expected "jitter <duration>" or the end of the step`,
        );
      break;
    }
    case "jitter":
      step = { atMs, kind: "jitter", ms: duration("the jitter", next()) };
      break;
    case "bandwidth": {
      const token = next();
      if (token === undefined) return fail('expected a rate after "bandwidth", e.g. 1MB/s, or "off"');
      if (token === "off") step = { atMs, kind: "bandwidth", bytesPerSec: null };
      else {
        try {
          step = { atMs, kind: "bandwidth", bytesPerSec: parseRateText(token) };
        } catch (err) {
          return fail(`the bandwidth: ${(err as Error).message}, or "off"`);
        }
      }
      break;
    }
    default:
      return fail(`unknown action "${action}"; expected ${ACTIONS}`);
  }
  const extra = next();
  if (extra !== undefined) fail(`unexpected "${extra}" after "${tokens.slice(1, at - 1).join(" ")}"`);
  return step;
}

/** The canonical text of a schedule; `parseSchedule(formatSchedule(s))` gives `s` back. */
export function formatSchedule(steps: readonly ScheduleStep[]): string {
  return steps.map((s) => `${formatDuration(s.atMs)} ${formatAction(s)}`).join("; ");
}

/** The text of one action, e.g. `blackhole 3s`, `latency 200ms jitter 50ms`, `bandwidth off`. */
export function formatAction(a: ScheduleAction): string {
  switch (a.kind) {
    case "blackhole":
      return a.forMs === undefined ? "blackhole" : `blackhole ${formatDuration(a.forMs)}`;
    case "latency":
      return a.jitterMs === undefined
        ? `latency ${formatDuration(a.ms)}`
        : `latency ${formatDuration(a.ms)} jitter ${formatDuration(a.jitterMs)}`;
    case "jitter":
      return `jitter ${formatDuration(a.ms)}`;
    case "bandwidth":
      return a.bytesPerSec === null ? "bandwidth off" : `bandwidth ${formatRate(a.bytesPerSec)}`;
    default:
      return a.kind;
  }
}

/**
 * Checks a schedule given as objects (a spec given as text is checked by `parseSchedule`);
 * throws a `ScheduleError` for the first bad step.
 */
export function checkSchedule(steps: readonly ScheduleStep[]): void {
  const ms = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v) && v >= 0;
  steps.forEach((s, i) => {
    const fail = (reason: string): never => {
      throw new ScheduleError(i + 1, JSON.stringify(s), reason);
    };
    if (!ms(s.atMs)) fail("atMs must be a number of milliseconds ≥ 0");
    if (i > 0 && s.atMs < steps[i - 1]!.atMs) fail("steps must be in time order");
    switch (s.kind) {
      case "cut":
      case "reset":
      case "restore":
        break;
      case "blackhole":
        if (s.forMs !== undefined && !(ms(s.forMs) && s.forMs > 0)) fail("forMs must be above 0 or absent");
        break;
      case "latency":
        if (!ms(s.ms)) fail("ms must be a number of milliseconds ≥ 0");
        if (s.jitterMs !== undefined && !ms(s.jitterMs))
          fail("jitterMs must be a number of milliseconds ≥ 0");
        break;
      case "jitter":
        if (!ms(s.ms)) fail("ms must be a number of milliseconds ≥ 0");
        break;
      case "bandwidth":
        if (s.bytesPerSec !== null && !(ms(s.bytesPerSec) && s.bytesPerSec > 0))
          fail("bytesPerSec must be above 0, or null for no limit");
        break;
      default:
        fail(`unknown kind "${(s as { kind: unknown }).kind}"; expected ${ACTIONS}`);
    }
  });
}
