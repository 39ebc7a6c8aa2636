import type { Connection, ConnectionOptions } from "mysql2/promise";
import mysql from "mysql2/promise";
import { ErrorCode } from "../../errors/codes.js";
import { MusterError } from "../../errors/muster-error.js";
import { type Logger, silentLogger } from "../../internal/logger.js";
import type { Recorder } from "../stats/types.js";
import { type Generator, makeGenerator } from "./data/generators.js";
import { KeyBinder, type KeyDef, SCOPES } from "./data/keys.js";
import { ClientAbort, type ClientPlan, runClient, type StmtPlan } from "./sql/client.js";
import { Budget, type Rate, rate } from "./sql/rate.js";
import { tableWatch } from "./sql/table-size.js";
import type { ClientGroupSpec, SqlSpec, TrxSpec } from "./sql-spec.js";
import { parseTrxFile, type Statement } from "./trx-file.js";
import { type PreparedStage, type RunSummary, StageError, type StageSpec } from "./types.js";

/** Connections opened at once while a stage boots. */
const CONNECT_CONCURRENCY = 16;

interface Group extends ClientGroupSpec {
  execGroup: number;
}

/** Finch's workload rules: no workload → one group per run of trx (DDL alone, once); groups named into exec groups. */
function resolveGroups(spec: SqlSpec, ddl: Map<string, boolean>): Group[] {
  const names = spec.trx.map((t) => t.name);
  const dflt = (trx: string[], iter: number): ClientGroupSpec => ({
    clients: 1,
    trx,
    db: "",
    group: "",
    disableStats: false,
    iter,
    iterClients: 0,
    iterExecGroup: 0,
    qps: 0,
    qpsClients: 0,
    qpsExecGroup: 0,
    tps: 0,
    tpsClients: 0,
    tpsExecGroup: 0,
    runtimeMs: 0,
  });
  let groups: ClientGroupSpec[] = spec.workload.map((g) => ({ ...g, trx: [...g.trx] }));
  if (groups.length === 0) {
    groups = [];
    let prevDdl = true;
    for (const n of names) {
      if (ddl.get(n)) {
        groups.push(dflt([n], 1));
        prevDdl = true;
      } else {
        if (prevDdl) groups.push(dflt([n], 0));
        else groups[groups.length - 1]!.trx.push(n);
        prevDdl = false;
      }
    }
  }
  let auto = 0;
  let ddlNo = 0;
  let prevDdl = true;
  let prev = "";
  for (const [i, g] of groups.entries()) {
    if (g.trx.length === 0) g.trx = [...names];
    for (const t of g.trx)
      if (!names.includes(t))
        throw new StageError(
          spec.stageFile,
          undefined,
          `workload[${i}].trx names ${t}, which is not a trx of the stage (${names.join(", ")})`,
        );
    const hasDdl = g.trx.some((t) => ddl.get(t));
    if (hasDdl && g.iter === 0) g.iter = 1;
    if (g.group === "") {
      if (hasDdl) {
        g.group = `ddl${++ddlNo}`;
        prevDdl = true;
      } else if (prevDdl) {
        g.group = `dml${++auto}`;
        prevDdl = false;
      } else g.group = prev;
    }
    prev = g.group;
  }
  let eg = -1;
  let name: string | undefined;
  return groups.map((g) => {
    if (g.group !== name) {
      eg++;
      name = g.group;
    }
    return { ...g, execGroup: eg };
  });
}

function checkSpec(spec: StageSpec): SqlSpec {
  const s = spec as Partial<SqlSpec>;
  if (
    s.kind !== "sql" ||
    !Array.isArray(s.trx) ||
    !Array.isArray(s.workload) ||
    typeof s.mysql !== "object" ||
    s.mysql === null ||
    typeof s.params !== "object"
  )
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      "sql stage: malformed stage (trx, workload, mysql and params are required)",
    );
  return s as SqlSpec;
}

/** Where MySQL is, for messages: never the password. */
function where(m: SqlSpec["mysql"]): string {
  return `${m.socket ?? `${m.host}:${m.port}`} as ${m.user}${m.database ? ` (database ${m.database})` : ""}`;
}

/**
 * Prepares a Finch stage on this instance (Finch's Prepare): parses its trx files, builds its
 * data generators, connects every client to MySQL (a failure names the server, never the
 * password). The prepared stage runs exec groups one after another, each group's clients at once.
 */
export async function prepareSqlStage(
  raw: StageSpec,
  files: Map<string, Uint8Array>,
  o: { instance: string; signal?: AbortSignal; logger?: Logger },
): Promise<PreparedStage> {
  const spec = checkSpec(raw);
  const log = o.logger ?? silentLogger;
  const defs = new Map<string, Map<string, KeyDef>>();
  const stmts = new Map<string, Statement[]>();
  const ddl = new Map<string, boolean>();
  for (const t of spec.trx) {
    const d = new Map<string, KeyDef>();
    for (const [key, k] of Object.entries(t.data)) {
      if (k.scope !== "" && !(SCOPES as readonly string[]).includes(k.scope))
        throw new StageError(
          spec.stageFile,
          t.line,
          `trx ${t.name}: data key ${key}: scope "${k.scope}" is not one of ${SCOPES.join(", ")}`,
        );
      let gen: Generator;
      try {
        gen = makeGenerator(k.generator, k.params);
      } catch (err) {
        throw new StageError(
          spec.stageFile,
          t.line,
          `trx ${t.name}: data key ${key}: ${(err as Error).message}`,
        );
      }
      d.set(key, { gen, scope: k.scope });
    }
    defs.set(t.name, d);
    const bytes = files.get(t.file);
    if (bytes === undefined) throw new StageError(t.file, undefined, "the trx file was not received");
    const parsed = parseTrxFile(Buffer.from(bytes).toString("utf8"), {
      trx: t.name,
      file: t.file,
      data: Object.fromEntries([...d].map(([k, v]) => [k, { scope: v.scope }])),
      scope: { params: spec.params, cpuCores: spec.cpuCores, env: {} },
    });
    for (const st of parsed) checkValueCount(st, d);
    stmts.set(t.name, parsed);
    ddl.set(
      t.name,
      parsed.some((st) => st.ddl),
    );
  }
  const groups = resolveGroups(spec, ddl);
  const connect: ConnectionOptions = {
    host: spec.mysql.host,
    port: spec.mysql.port,
    user: spec.mysql.user,
    password: spec.mysql.password,
    ...(spec.mysql.socket !== undefined && { socketPath: spec.mysql.socket }),
    ...(spec.mysql.database && { database: spec.mysql.database }),
    connectTimeout: spec.mysql.connectTimeoutMs,
    supportBigNumbers: true,
  };
  const conns: Array<{ conn: Connection }> = [];
  const open = async (db: string): Promise<Connection> => {
    try {
      return await mysql.createConnection(db ? { ...connect, database: db } : connect);
    } catch (err) {
      throw new MusterError(
        ErrorCode.UNAVAILABLE,
        `cannot connect to MySQL at ${where(spec.mysql)}: ${(err as Error).message}`,
      );
    }
  };
  const binder = new KeyBinder((trx, key) => defs.get(trx)!.get(key)!);
  const rowBudgets = new Map<string, Budget>();
  const watchers = new Map<string, () => boolean>();
  const plans: Array<ClientPlan & { group: Group }> = [];
  const shared = { qps: rate(spec.qps), tps: rate(spec.tps) };
  const egRates = new Map<number, { qps: Rate[]; tps: Rate[]; iter: Budget[] }>();
  let client = 0;
  try {
    // One connection first: a wrong password or host fails the boot at once, with one message.
    conns.push({ conn: await open(groups[0]?.db ?? "") });
    for (const [gi, g] of groups.entries()) {
      let eg = egRates.get(g.execGroup);
      if (eg === undefined) {
        eg = {
          qps: rate(g.qpsExecGroup),
          tps: rate(g.tpsExecGroup),
          iter: g.iterExecGroup > 0 ? [new Budget(g.iterExecGroup)] : [],
        };
        egRates.set(g.execGroup, eg);
      }
      const cg = {
        qps: rate(g.qpsClients),
        tps: rate(g.tpsClients),
        iter: g.iterClients > 0 ? [new Budget(g.iterClients)] : [],
      };
      for (let k = 0; k < g.clients; k++) {
        const place = { client: client++, clientGroup: gi, execGroup: g.execGroup };
        const list = g.trx.map((name) => ({ name, stmts: stmts.get(name)! }));
        const flat = list.flatMap((t) => t.stmts);
        const { uses, saves } = binder.forClient(place, flat);
        let si = 0;
        const trx = list.map((t) => ({
          index: spec.trx.findIndex((x) => x.name === t.name),
          stmts: t.stmts.map((st, j): StmtPlan => {
            const i = si++;
            const id = `${t.name}:${j}`;
            const rowsPerExec = Math.max(1, ...st.uses.map((u) => u.row));
            let rows: Budget | undefined;
            if (st.rows !== undefined) {
              rows = rowBudgets.get(id) ?? new Budget(st.rows);
              rowBudgets.set(id, rows);
            }
            let tableFull: (() => boolean) | undefined;
            if (st.tableSize !== undefined) {
              tableFull = watchers.get(id) ?? tableWatch(st.tableSize, () => open(g.db), log);
              watchers.set(id, tableFull);
            }
            return {
              st,
              getters: uses[i]!,
              quote: st.uses.map((u, ui) => quoteOf(st, ui, u.key, defs.get(t.name)!)),
              ...(saves[i]!.insertId !== undefined && { insertId: saves[i]!.insertId }),
              ...(saves[i]!.columns !== undefined && { columns: saves[i]!.columns }),
              ...(rows !== undefined && { rows }),
              rowsPerExec,
              ...(tableFull !== undefined && { tableFull }),
              prepared: st.pieces.join("?"),
            };
          }),
        }));
        plans.push({
          group: g,
          place,
          trx,
          connect: g.db ? { ...connect, database: g.db } : connect,
          iter: g.iter,
          iterBudgets: [...cg.iter, ...eg.iter],
          qps: [...rate(g.qps), ...cg.qps, ...eg.qps, ...shared.qps],
          tps: [...rate(g.tps), ...cg.tps, ...eg.tps, ...shared.tps],
          record: !g.disableStats,
          deadline: 0,
        });
      }
    }
    // The other clients' connections, a few at a time.
    for (let i = 1; i < plans.length; i += CONNECT_CONCURRENCY) {
      if (o.signal?.aborted) throw new MusterError(ErrorCode.CANCELLED, "the boot was cancelled");
      const batch = plans.slice(i, i + CONNECT_CONCURRENCY);
      conns.push(...(await Promise.all(batch.map(async (p) => ({ conn: await open(p.group.db) })))));
    }
  } catch (err) {
    for (const h of conns) h.conn.destroy();
    throw err;
  }
  log.info({ clients: plans.length, groups: groups.length, mysql: where(spec.mysql) }, "sql stage prepared");
  let closed = false;
  return {
    clients: plans.filter((p) => p.record).length,
    trx: spec.trx.map((t: TrxSpec) => t.name),
    async run({ signal, recorder }: { signal: AbortSignal; recorder: Recorder }): Promise<RunSummary> {
      const clientErrors: Record<string, number> = {};
      const stageEnd = spec.runtimeMs > 0 ? performance.now() + spec.runtimeMs : 0;
      const execGroups = [...new Set(plans.map((p) => p.place.execGroup))];
      for (const eg of execGroups) {
        if (signal.aborted) break;
        const mine = plans.map((p, i) => ({ p, h: conns[i]! })).filter((x) => x.p.place.execGroup === eg);
        const groupRuntime = mine[0]!.p.group.runtimeMs;
        const groupEnd = groupRuntime > 0 ? performance.now() + groupRuntime : 0;
        const deadline =
          stageEnd > 0 && groupEnd > 0 ? Math.min(stageEnd, groupEnd) : Math.max(stageEnd, groupEnd);
        await Promise.all(
          mine.map(async ({ p, h }) => {
            try {
              await runClient({ ...p, deadline }, h, recorder, signal);
            } catch (err) {
              const why =
                err instanceof ClientAbort ? err.message : `client error: ${(err as Error).message}`;
              if (Object.keys(clientErrors).length < 32 || clientErrors[why] !== undefined)
                clientErrors[why] = (clientErrors[why] ?? 0) + 1;
            }
          }),
        );
        if (stageEnd > 0 && performance.now() >= stageEnd) break;
      }
      return { clientErrors };
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const h of conns) h.conn.destroy();
    },
  };
}

/** Whether a use's values are quoted in SQL text: its generator's say (@PREV: the key before it). */
function quoteOf(st: Statement, ui: number, key: string, defs: Map<string, KeyDef>): boolean {
  if (key !== "PREV") return defs.get(key)!.gen.quote;
  for (let j = ui - 1; j >= 0; j--)
    if (st.uses[j]!.key !== "PREV") return defs.get(st.uses[j]!.key)!.gen.quote;
  return false;
}

/** Every key use fills one placeholder: an int-range's two values need an @PREV after it. */
function checkValueCount(st: Statement, defs: Map<string, KeyDef>): void {
  let values = 0;
  for (const u of st.uses) if (u.key !== "PREV") values += defs.get(u.key)!.gen.name === "int-range" ? 2 : 1;
  if (values !== st.uses.length)
    throw new StageError(
      st.file,
      st.line,
      `the statement's data keys give ${values} values for ${st.uses.length} places: an int-range key gives two (use it as BETWEEN @d AND @PREV), @PREV takes the second`,
    );
}
