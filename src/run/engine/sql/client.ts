import type { Connection, ConnectionOptions } from "mysql2/promise";
import mysql from "mysql2/promise";
import type { Recorder } from "../../stats/types.js";
import type { Generator } from "../data/generators.js";
import type { ClientPlace, Getter, RunCounters } from "../data/keys.js";
import type { Statement } from "../trx-file.js";
import { actionFor, errorCode } from "./policy.js";
import { type Budget, type Rate, sleep, takeAll } from "./rate.js";

/** One statement as a client runs it. */
export interface StmtPlan {
  st: Statement;
  getters: Getter[];
  /** Per use: whether its values are quoted in SQL text (not prepared). */
  quote: boolean[];
  insertId?: Generator;
  columns?: Array<Generator | null>;
  /** `-- rows`: shared by every client of the instance; `rowsPerExec` rows each execution. */
  rows?: Budget;
  rowsPerExec: number;
  /** `-- table-size`: true once the table is large enough. */
  tableFull?: () => boolean;
  /** The SQL with `?` for every key use (prepared statements). */
  prepared: string;
}

export interface ClientPlan {
  place: ClientPlace;
  trx: Array<{ index: number; stmts: StmtPlan[] }>;
  connect: ConnectionOptions;
  /** Iterations of this client (0: no limit); budgets shared by its client group and exec group. */
  iter: number;
  iterBudgets: Budget[];
  qps: Rate[];
  tps: Rate[];
  record: boolean;
  /** Stops this client (runtime of its group). */
  deadline: number;
}

/** Why a client stopped early: the error and how often (the summary's `clientErrors`). */
export class ClientAbort extends Error {}

/** Delay before reconnecting after a lost connection (no busy loop against a dead server). */
const RECONNECT_MS = 200;

function sqlText(p: StmtPlan, vals: unknown[], quotes: boolean[]): string {
  let out = p.st.pieces[0]!;
  for (let i = 0; i < vals.length; i++) {
    const v = vals[i];
    out +=
      (v === null || v === undefined ? "NULL" : quotes[i] ? mysql.escape(v as string) : String(v)) +
      (p.st.pieces[i + 1] ?? "");
  }
  return out;
}

/**
 * One MySQL client (one connection): iterations of its trx, each statement's values from its
 * data keys, every execution timed and recorded (errors too, by MySQL error number), Finch's
 * error handling, rate limits, and the limits that end it (iterations, rows, table size, runtime,
 * the stop signal). Resolves when it ends; rejects (ClientAbort) when an error stops it.
 */
export async function runClient(
  plan: ClientPlan,
  holder: { conn: Connection },
  recorder: Recorder,
  signal: AbortSignal,
): Promise<void> {
  let conn = holder.conn;
  const c: RunCounters = { iter: 0, trx: 0, stmt: 0, conn: 1 };
  const vals: unknown[] = [];
  const quotes: boolean[] = [];
  const over = (): boolean => signal.aborted || (plan.deadline > 0 && performance.now() >= plan.deadline);
  for (let iter = 1; ; iter++) {
    if (over() || (plan.iter > 0 && iter > plan.iter) || !plan.iterBudgets.every((b) => b.take())) return;
    c.iter = iter;
    let reconnect = false;
    for (const t of plan.trx) {
      c.trx++;
      if (plan.tps.length > 0) await takeAll(plan.tps, signal);
      let inTrx = false;
      for (const p of t.stmts) {
        if (over()) return;
        if (p.rows !== undefined && !p.rows.take(p.rowsPerExec)) return;
        if (p.tableFull?.()) return;
        c.stmt++;
        if (plan.qps.length > 0) await takeAll(plan.qps, signal);
        vals.length = 0;
        quotes.length = 0;
        for (let u = 0; u < p.getters.length; u++) {
          const got = p.getters[u]!(c);
          for (const v of got) {
            vals.push(v);
            quotes.push(p.quote[u]!);
          }
        }
        const t0 = performance.now();
        try {
          const [result] = p.st.prepare
            ? await conn.execute({ sql: p.prepared, rowsAsArray: true }, vals as never[])
            : await conn.query({ sql: sqlText(p, vals, quotes), rowsAsArray: true });
          if (plan.record) recorder.record(t.index, p.st.kind, Math.round((performance.now() - t0) * 1000));
          if (p.st.begin) inTrx = true;
          if (p.st.commit) inTrx = false;
          if (p.insertId !== undefined)
            p.insertId.save?.((result as { insertId?: unknown }).insertId ?? null);
          if (p.columns !== undefined && Array.isArray(result) && result.length > 0) {
            const last = result[result.length - 1] as unknown[];
            for (const [i, g] of p.columns.entries()) g?.save?.(last[i] ?? null);
          }
        } catch (err) {
          if (plan.record) {
            recorder.record(t.index, p.st.kind, Math.round((performance.now() - t0) * 1000));
            recorder.error(t.index, errorCode(err));
          }
          if (signal.aborted) return;
          const errno = (err as { errno?: number }).errno;
          const action = actionFor(errno, p.st.ddl);
          if (action.do === "abort")
            throw new ClientAbort(`${p.st.file}:${p.st.line}: ${(err as Error).message}`.slice(0, 300));
          if (action.do === "next-trx") {
            if (action.rollback && inTrx) await conn.query("ROLLBACK").catch(() => {});
            break;
          }
          reconnect = true;
          break;
        }
        if (p.st.idleMs !== undefined) await sleep(p.st.idleMs, signal);
      }
      if (reconnect) break;
    }
    if (reconnect) {
      conn.destroy();
      for (;;) {
        if (over()) return;
        await sleep(RECONNECT_MS, signal);
        try {
          conn = await mysql.createConnection(plan.connect);
          holder.conn = conn;
          c.conn++;
          break;
        } catch {
          // The server is away: try again until it is back or the run ends.
        }
      }
    }
  }
}
