import { availableParallelism } from "node:os";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { parseDsn } from "./dsn.js";
import { expand, type ParamScope } from "./params.js";
import type { ClientGroupSpec, DataKeySpec, MySqlTarget, SqlSpec, TrxSpec } from "./sql-spec.js";
import {
  type LoadedStage,
  type ReportConfig,
  StageError,
  type StageOverrides,
  type StageSpec,
} from "./types.js";
import { parseDuration, parsePercentiles, parseStringBool, parseStringInt } from "./values.js";
import { mapAt, readBounded, readYaml, stringMap, type YamlFile } from "./yaml-file.js";

const STAGE_KEYS = [
  "disable",
  "name",
  "qps",
  "tps",
  "runtime",
  "compute",
  "mysql",
  "params",
  "stats",
  "trx",
  "workload",
  "exec",
  "handler",
] as const;
const ALL_KEYS = ["mysql", "params", "stats"] as const;
const MYSQL_KEYS = [
  "db",
  "dsn",
  "hostname",
  "password",
  "password-file",
  "socket",
  "timeout-connect",
  "username",
] as const;
const STATS_KEYS = ["disable", "freq", "report"] as const;
const TRX_KEYS = ["file", "name", "data"] as const;
const DATA_KEYS = ["generator", "scope", "params", "data-type"] as const;
const GROUP_KEYS = [
  "clients",
  "db",
  "disable-stats",
  "group",
  "iter",
  "iter-clients",
  "iter-exec-group",
  "qps",
  "qps-clients",
  "qps-exec-group",
  "runtime",
  "tps",
  "tps-clients",
  "tps-exec-group",
  "trx",
] as const;
/** Trx files one stage may load, and client groups one workload may have. */
const MAX_TRX = 256;
const MAX_GROUPS = 256;
const MAX_CLIENTS = 100_000;

type Path = Array<string | number>;

/** One value with `$…` expanded, or a StageError at its line. */
function ex(y: YamlFile, path: Path, v: unknown, scope: ParamScope): string {
  if (v === undefined || v === null) return "";
  try {
    return expand(String(v), scope);
  } catch (err) {
    throw y.error(path, (err as Error).message);
  }
}

function int(
  y: YamlFile,
  path: Path,
  v: unknown,
  scope: ParamScope,
  what: string,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const text = ex(y, path, v, scope);
  const n = parseStringInt(text);
  if (n === undefined || n > max)
    throw y.error(
      path,
      `${what}: ${JSON.stringify(text)} is not a whole number (like 1000, "1,000", 10k or 1GiB)${n !== undefined ? ` of at most ${max}` : ""}`,
    );
  return n;
}

function duration(y: YamlFile, path: Path, v: unknown, scope: ParamScope, what: string): number {
  const text = ex(y, path, v, scope);
  const ms = parseDuration(text);
  if (ms === undefined)
    throw y.error(path, `${what}: ${JSON.stringify(text)} is not a duration (like 60s, 500ms or 1m30s)`);
  return ms;
}

/** A path relative to the stage's directory, inside it (instances get the files by that name). */
function inside(y: YamlFile, path: Path, dir: string, file: string, what: string): string {
  const rel = relative(dir, resolve(dir, file)).split(sep).join("/");
  if (rel === "" || rel.startsWith("../") || rel === ".." || resolve(dir, file) !== join(dir, rel))
    throw y.error(
      path,
      `${what} ${JSON.stringify(file)} is outside the stage's directory: instances get the stage's directory only`,
    );
  return rel;
}

function reportConfig(y: YamlFile, path: Path, v: unknown): ReportConfig {
  const r = mapAt(y, path, v, "stats.report");
  const out: ReportConfig = {};
  for (const [name, raw] of Object.entries(r)) {
    const p = [...path, name];
    const o = stringMap(y, p, raw, `stats.report.${name}`);
    const ps = (key: string, dflt: number[]): number[] => {
      if (o[key] === undefined) return dflt;
      const got = parsePercentiles(o[key]);
      if (got === undefined)
        throw y.error([...p, key], `stats.report.${name}.${key}: give percentiles like "P95,P99" or "99.9"`);
      return got;
    };
    if (name === "stdout") {
      y.checkKeys(p, o, ["combined", "each-instance", "percentiles", "per-trx"], "stats.report.stdout");
      // Finch prints no combined row when neither is set; muster prints both (docs say so).
      const neither = o.combined === undefined && o["each-instance"] === undefined;
      out.stdout = {
        combined: neither || parseStringBool(o.combined),
        eachInstance: neither || parseStringBool(o["each-instance"]),
        percentiles: ps("percentiles", [99.9]),
        perTrx: parseStringBool(o["per-trx"]),
      };
    } else if (name === "csv") {
      y.checkKeys(p, o, ["file", "percentiles"], "stats.report.csv");
      if (!o.file) throw y.error(p, "stats.report.csv needs file: the CSV file to create");
      out.csv = { file: o.file, percentiles: ps("percentiles", [99.9]) };
    } else if (name === "json") {
      y.checkKeys(p, o, ["file"], "stats.report.json");
      if (!o.file) throw y.error(p, "stats.report.json needs file: the JSON lines file to create");
      out.json = { file: o.file };
    } else throw y.error(p, `stats.report: reporter "${name}" is not supported (stdout, csv, json)`);
  }
  return out;
}

/** Loads stage files in order (each with its directory's `_all.yaml`), validated. */
export async function loadStages(paths: string[], o: StageOverrides = {}): Promise<LoadedStage[]> {
  if (paths.length === 0) throw new StageError("(command line)", undefined, "give at least one stage file");
  const out: LoadedStage[] = [];
  for (const p of paths) out.push(await loadStage(p, o));
  return out;
}

async function loadStage(file: string, o: StageOverrides): Promise<LoadedStage> {
  const dir = dirname(resolve(file));
  const y = await readYaml(file, "stage file");
  const top = mapAt(y, [], y.value, "a stage file");
  y.checkKeys([], top, ["stage"], "a stage file (its one section is stage:)");
  if (top.stage === undefined) throw y.error([], "no stage: section");
  const st = mapAt(y, ["stage"], top.stage, "stage");
  y.checkKeys(["stage"], st, STAGE_KEYS, "stage");
  let all: YamlFile | undefined;
  let allTop: Record<string, unknown> = {};
  const allFile = join(dir, "_all.yaml");
  try {
    all = await readYaml(allFile, "_all.yaml");
    allTop = mapAt(all, [], all.value, "_all.yaml");
    all.checkKeys([], allTop, ALL_KEYS, "_all.yaml");
  } catch (err) {
    if (!(err instanceof StageError && /ENOENT/.test(err.problem))) throw err;
  }
  // Params: _all.yaml, then the stage's, then -p; each value expanded once all are known.
  const params: Record<string, string> = {
    ...(all ? stringMap(all, ["params"], allTop.params, "params") : {}),
    ...stringMap(y, ["stage", "params"], st.params, "stage.params"),
    ...o.params,
  };
  const scope: ParamScope = {
    params,
    cpuCores: o.cpuCores ?? availableParallelism(),
    env: o.env ?? process.env,
  };
  for (const k of Object.keys(params)) params[k] = ex(y, ["stage", "params", k], params[k], scope);

  const name = ex(y, ["stage", "name"], st.name, scope) || basename(file).replace(/\.ya?ml$/, "");
  const compute = mapAt(y, ["stage", "compute"], st.compute, "stage.compute");
  y.checkKeys(["stage", "compute"], compute, ["instances", "disable-local"], "stage.compute");
  const instances =
    o.instances ??
    (compute.instances === undefined
      ? 1
      : int(y, ["stage", "compute", "instances"], compute.instances, scope, "compute.instances", 100_000));
  if (instances < 1)
    throw y.error(
      ["stage", "compute", "instances"],
      "compute.instances must be at least 1: it counts every instance, this one included unless disable-local",
    );
  const runtimeMs =
    st.runtime === undefined ? 0 : duration(y, ["stage", "runtime"], st.runtime, scope, "stage.runtime");

  // Stats: the stage's section wins over _all.yaml's.
  const statsSrc =
    st.stats !== undefined
      ? { y, path: ["stage", "stats"] as Path, v: st.stats }
      : all && allTop.stats !== undefined
        ? { y: all, path: ["stats"] as Path, v: allTop.stats }
        : undefined;
  let stats: LoadedStage["stats"] = { disable: false, freqMs: 0, report: {} };
  if (statsSrc !== undefined) {
    const s = mapAt(statsSrc.y, statsSrc.path, statsSrc.v, "stats");
    statsSrc.y.checkKeys(statsSrc.path, s, STATS_KEYS, "stats");
    stats = {
      disable: parseStringBool(s.disable),
      freqMs:
        s.freq === undefined
          ? 0
          : duration(statsSrc.y, [...statsSrc.path, "freq"], s.freq, scope, "stats.freq"),
      report: reportConfig(statsSrc.y, [...statsSrc.path, "report"], s.report),
    };
  }
  const base = {
    file,
    instances,
    disableLocal: parseStringBool(compute["disable-local"]),
    stats,
    ...(runtimeMs > 0 && { runtimeMs }),
  };

  if (st.exec !== undefined || st.handler !== undefined) return mustersStage(y, st, dir, name, base, scope);
  if (st.trx === undefined)
    throw y.error(["stage"], "stage has no trx: list the trx files to run (or give exec: or handler:)");
  const files = new Map<string, Uint8Array>();
  const trx = await trxList(y, st.trx, dir, scope, files);
  const workload = groups(y, st.workload, scope, o.database);
  const mysql = mysqlTarget(y, all, allTop.mysql, st.mysql, scope, o);
  const spec: SqlSpec = {
    kind: "sql",
    name,
    stageFile: basename(file),
    runtimeMs,
    qps: st.qps === undefined ? 0 : int(y, ["stage", "qps"], st.qps, scope, "stage.qps"),
    tps: st.tps === undefined ? 0 : int(y, ["stage", "tps"], st.tps, scope, "stage.tps"),
    mysql,
    params,
    cpuCores: scope.cpuCores,
    trx,
    workload,
    statsDisabled: stats.disable,
  };
  return { name, kind: "sql", files, spec, ...base };
}

async function trxList(
  y: YamlFile,
  v: unknown,
  dir: string,
  scope: ParamScope,
  files: Map<string, Uint8Array>,
): Promise<TrxSpec[]> {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_TRX)
    throw y.error(["stage", "trx"], `stage.trx must list 1 to ${MAX_TRX} trx files`);
  const out: TrxSpec[] = [];
  for (const [i, raw] of v.entries()) {
    const p: Path = ["stage", "trx", i];
    const t = mapAt(y, p, raw, "a trx");
    y.checkKeys(p, t, TRX_KEYS, "stage.trx[]");
    const fileText = ex(y, [...p, "file"], t.file, scope);
    if (!fileText) throw y.error(p, "a trx needs file: the trx (SQL) file");
    const rel = inside(y, [...p, "file"], dir, fileText, "trx file");
    if (!files.has(rel)) files.set(rel, await readBounded(join(dir, rel), `trx file ${rel}`));
    const name = ex(y, [...p, "name"], t.name, scope) || basename(rel);
    if (out.some((x) => x.name === name))
      throw y.error([...p, "name"], `two trx are named ${name}: give one a name:`);
    const data: Record<string, DataKeySpec> = {};
    for (const [key, d] of Object.entries(mapAt(y, [...p, "data"], t.data, "trx data"))) {
      const dp: Path = [...p, "data", key];
      const dm = mapAt(y, dp, d, `data key ${key}`);
      y.checkKeys(dp, dm, DATA_KEYS, `data key ${key}`);
      const generator = ex(y, [...dp, "generator"], dm.generator, scope);
      if (!generator) throw y.error(dp, `data key ${key} needs a generator`);
      const params = stringMap(y, [...dp, "params"], dm.params, `data key ${key} params`);
      for (const k of Object.keys(params)) params[k] = ex(y, [...dp, "params", k], params[k], scope);
      data[key] = { generator, scope: ex(y, [...dp, "scope"], dm.scope, scope), params };
    }
    const line = y.line(p);
    out.push({ name, file: rel, data, ...(line !== undefined && { line }) });
  }
  return out;
}

function groups(y: YamlFile, v: unknown, scope: ParamScope, database: string | undefined): ClientGroupSpec[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > MAX_GROUPS)
    throw y.error(
      ["stage", "workload"],
      `stage.workload must be a list of at most ${MAX_GROUPS} client groups`,
    );
  return v.map((raw, i) => {
    const p: Path = ["stage", "workload", i];
    const g = mapAt(y, p, raw, "a client group");
    y.checkKeys(p, g, GROUP_KEYS, "stage.workload[]");
    const n = (k: string): number =>
      g[k] === undefined ? 0 : int(y, [...p, k], g[k], scope, `workload.${k}`);
    const trx =
      g.trx === undefined
        ? []
        : Array.isArray(g.trx)
          ? g.trx.map((t, j) => ex(y, [...p, "trx", j], t, scope))
          : undefined;
    if (trx === undefined) throw y.error([...p, "trx"], "workload.trx must be a list of trx names");
    const clients =
      g.clients === undefined
        ? 1
        : int(y, [...p, "clients"], g.clients, scope, "workload.clients", MAX_CLIENTS);
    if (clients < 1) throw y.error([...p, "clients"], "workload.clients must be at least 1");
    return {
      clients,
      trx,
      db: database ?? ex(y, [...p, "db"], g.db, scope),
      group: ex(y, [...p, "group"], g.group, scope),
      disableStats: parseStringBool(g["disable-stats"]),
      iter: n("iter"),
      iterClients: n("iter-clients"),
      iterExecGroup: n("iter-exec-group"),
      qps: n("qps"),
      qpsClients: n("qps-clients"),
      qpsExecGroup: n("qps-exec-group"),
      tps: n("tps"),
      tpsClients: n("tps-clients"),
      tpsExecGroup: n("tps-exec-group"),
      runtimeMs:
        g.runtime === undefined ? 0 : duration(y, [...p, "runtime"], g.runtime, scope, "workload.runtime"),
    };
  });
}

function mysqlTarget(
  y: YamlFile,
  all: YamlFile | undefined,
  allMy: unknown,
  stageMy: unknown,
  scope: ParamScope,
  o: StageOverrides,
): MySqlTarget {
  const a = all ? stringMap(all, ["mysql"], allMy, "mysql") : {};
  if (all) all.checkKeys(["mysql"], a, MYSQL_KEYS, "mysql");
  const s = stringMap(y, ["stage", "mysql"], stageMy, "stage.mysql");
  y.checkKeys(["stage", "mysql"], s, MYSQL_KEYS, "stage.mysql");
  const pick = (k: string): string => ex(y, ["stage", "mysql", k], s[k] || a[k] || "", scope);
  const env = o.env ?? process.env;
  const dsnText = o.dsn ?? env.FINCH_DSN ?? pick("dsn");
  const database = o.database ?? env.FINCH_DB ?? pick("db");
  const timeout = pick("timeout-connect");
  const connectTimeoutMs = timeout ? parseDuration(timeout) : 10_000;
  if (connectTimeoutMs === undefined)
    throw y.error(["stage", "mysql", "timeout-connect"], "mysql.timeout-connect: give a duration like 10s");
  if (pick("password-file"))
    throw y.error(
      ["stage", "mysql", "password-file"],
      "mysql.password-file is not supported: give password (or --dsn)",
    );
  if (dsnText) {
    const d = parseDsn(dsnText);
    if ("error" in d)
      throw y.error(["stage", "mysql", "dsn"], `mysql.dsn (or --dsn, $FINCH_DSN): ${d.error}`);
    return { ...d, database: database || d.database, connectTimeoutMs };
  }
  const user = pick("username");
  const [host, port] = (pick("hostname") || "127.0.0.1").split(":") as [string, string | undefined];
  return {
    host,
    port: port ? Number(port) : 3306,
    ...(pick("socket") && { socket: pick("socket") }),
    // Finch's defaults: user finch, password amazing (only when no user is given).
    user: user || "finch",
    password: pick("password") || (user ? "" : "amazing"),
    database,
    connectTimeoutMs,
  };
}

/** The stage kinds muster adds: a command (`exec`) or an agent's method (`handler`). */
async function mustersStage(
  y: YamlFile,
  st: Record<string, unknown>,
  dir: string,
  name: string,
  base: Omit<LoadedStage, "name" | "kind" | "files" | "spec">,
  scope: ParamScope,
): Promise<LoadedStage> {
  if (st.exec !== undefined && st.handler !== undefined)
    throw y.error(["stage"], "give exec: or handler:, not both");
  for (const k of ["trx", "workload", "mysql", "qps", "tps"])
    if (st[k] !== undefined)
      throw y.error(["stage", k], `${k} goes with trx files, not with exec: or handler:`);
  const files = new Map<string, Uint8Array>();
  const runtime = base.runtimeMs !== undefined ? { runtimeMs: base.runtimeMs } : {};
  if (st.exec !== undefined) {
    const e = mapAt(y, ["stage", "exec"], st.exec, "stage.exec");
    y.checkKeys(["stage", "exec"], e, ["command", "files", "trx"], "stage.exec");
    if (!Array.isArray(e.command) || e.command.length === 0)
      throw y.error(
        ["stage", "exec", "command"],
        "exec.command must be a list: the program and its arguments",
      );
    const command = e.command.map((a, i) => ex(y, ["stage", "exec", "command", i], a, scope));
    for (const [i, f] of (Array.isArray(e.files) ? e.files : e.files === undefined ? [] : [null]).entries()) {
      if (typeof f !== "string")
        throw y.error(["stage", "exec", "files"], "exec.files must be a list of file names");
      const rel = inside(
        y,
        ["stage", "exec", "files", i],
        dir,
        ex(y, ["stage", "exec", "files", i], f, scope),
        "file",
      );
      files.set(rel, await readBounded(join(dir, rel), `file ${rel}`));
    }
    const trx = e.trx === undefined ? undefined : Array.isArray(e.trx) ? e.trx.map(String) : null;
    if (trx === null) throw y.error(["stage", "exec", "trx"], "exec.trx must be a list of names");
    const spec: StageSpec = { kind: "exec", name, command, ...(trx && { trx }), ...runtime };
    return { name, kind: "exec", files, spec, ...base };
  }
  const h = mapAt(y, ["stage", "handler"], st.handler, "stage.handler");
  y.checkKeys(["stage", "handler"], h, ["method", "request", "clients", "iterations"], "stage.handler");
  const method = ex(y, ["stage", "handler", "method"], h.method, scope);
  if (!method) throw y.error(["stage", "handler"], "handler.method: the agent's method to call");
  const spec: StageSpec = {
    kind: "handler",
    name,
    method,
    ...(h.request !== undefined && { request: h.request }),
    clients:
      h.clients === undefined
        ? 1
        : int(y, ["stage", "handler", "clients"], h.clients, scope, "handler.clients", 10_000),
    ...(h.iterations !== undefined && {
      iterations: int(y, ["stage", "handler", "iterations"], h.iterations, scope, "handler.iterations"),
    }),
    ...runtime,
  };
  return { name, kind: "handler", files, spec, ...base };
}
