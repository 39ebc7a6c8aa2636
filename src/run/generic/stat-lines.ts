import { KIND, type Kind, type Recorder } from "../stats/types.js";

/**
 * The stats lines a command of an `exec` stage may print on stdout, one event per line:
 *
 *     @stat trx=NAME kind=read|write|commit|total us=MICROS [err=CODE]
 *
 * `trx` names one of the stage's declared trx (`exec.trx`, default the one trx "exec"); other
 * lines are the command's output. A malformed `@stat` line is counted, not recorded.
 */
export const STAT_PREFIX = "@stat ";

const KINDS: Record<string, Kind> = {
  read: KIND.READ,
  write: KIND.WRITE,
  commit: KIND.COMMIT,
  total: KIND.TOTAL,
};

/** Reads one line; true when it was a well-formed stats line (recorded). */
export function recordStatLine(line: string, trx: Map<string, number>, recorder: Recorder): boolean {
  let name: string | undefined;
  let kind: Kind | undefined;
  let us = Number.NaN;
  let err: string | undefined;
  for (const field of line.slice(STAT_PREFIX.length).trim().split(/\s+/)) {
    const eq = field.indexOf("=");
    if (eq <= 0) return false;
    const k = field.slice(0, eq);
    const v = field.slice(eq + 1);
    if (k === "trx") name = v;
    else if (k === "kind") kind = KINDS[v];
    else if (k === "us") us = Number(v);
    else if (k === "err") err = v;
    else return false;
  }
  const i = name === undefined ? undefined : trx.get(name);
  if (i === undefined || kind === undefined || !Number.isFinite(us) || us < 0) return false;
  if (err !== undefined && !/^[0-9A-Za-z_]{1,16}$/.test(err)) return false;
  recorder.record(i, kind, Math.round(us));
  if (err !== undefined) recorder.error(i, err);
  return true;
}
