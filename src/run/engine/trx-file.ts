import { KIND, type Kind } from "../stats/types.js";
import { expand, type ParamScope } from "./params.js";
import { StageError } from "./types.js";
import { parseDuration, parseStringInt } from "./values.js";

/** One use of a data key in a statement: `@d`, `@d()` (explicit call) or `@PREV`. */
export interface KeyUse {
  /** Without the @. "PREV" for @PREV. */
  key: string;
  explicit: boolean;
  /** The row of a `/*!csv N …*\/` expansion it is in (1…N); 0 outside one. */
  row: number;
}

/** One statement of a trx file, as clients execute it. */
export interface Statement {
  trx: string;
  file: string;
  /** The statement's first line in the file. */
  line: number;
  /** SQL around the key uses: `pieces[i]` comes before `uses[i]`, the last piece after. */
  pieces: string[];
  uses: KeyUse[];
  prepare: boolean;
  kind: Kind;
  begin: boolean;
  commit: boolean;
  ddl: boolean;
  /** `-- rows: N`: rows this statement inserts at most (over every client of the instance). */
  rows?: number;
  /** `-- table-size: TABLE SIZE`: inserts stop once the table is that large. */
  tableSize?: { table: string; bytes: number };
  idleMs?: number;
  saveInsertId?: string;
  /** `-- save-columns`: a key per column, null for `_`. */
  saveColumns?: Array<string | null>;
}

/** Bounds on what one trx file may expand to. */
export const TRX_LIMITS = {
  statements: 10_000,
  copies: 10_000,
  csvRows: 100_000,
  statementBytes: 4 * 1024 * 1024,
} as const;

const KEY = /@[\w-]+(?:\(\))?/g;
const CSV = /\/\*!csv\s+(\S+)\s+([\s\S]+?)\s*\*\//;
const COPY_NUMBER = "/*!copy-number*/";

interface Block {
  line: number;
  mods: Array<{ text: string; line: number }>;
  sql: string[];
}

/** The blocks of a trx file: statements separated by blank lines, `-- ` lines as modifiers. */
function blocks(text: string): Block[] {
  const out: Block[] = [];
  let cur: Block | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.trim();
    if (line === "-- EOF") break;
    if (line === "") {
      if (cur !== undefined && cur.sql.length > 0) out.push(cur);
      if (cur?.sql.length !== 0) cur = undefined;
      continue;
    }
    cur ??= { line: i + 1, mods: [], sql: [] };
    if (line.startsWith("-- ") || line === "--") cur.mods.push({ text: line.slice(2).trim(), line: i + 1 });
    else {
      if (cur.sql.length === 0) cur.line = i + 1;
      cur.sql.push(raw);
    }
  }
  if (cur !== undefined && cur.sql.length > 0) out.push(cur);
  return out;
}

function kindOf(sql: string): { kind: Kind; begin: boolean; commit: boolean; ddl: boolean } {
  const word = (/^\s*(\w+)/.exec(sql)?.[1] ?? "").toUpperCase();
  switch (word) {
    case "SELECT":
      return { kind: KIND.READ, begin: false, commit: false, ddl: false };
    case "INSERT":
    case "UPDATE":
    case "DELETE":
    case "REPLACE":
      return { kind: KIND.WRITE, begin: false, commit: false, ddl: false };
    case "COMMIT":
      return { kind: KIND.COMMIT, begin: false, commit: true, ddl: false };
    case "BEGIN":
    case "START":
      return { kind: KIND.TOTAL, begin: true, commit: false, ddl: false };
    case "ALTER":
    case "CREATE":
    case "DROP":
    case "RENAME":
    case "TRUNCATE":
      return { kind: KIND.TOTAL, begin: false, commit: false, ddl: true };
    default:
      return { kind: KIND.TOTAL, begin: false, commit: false, ddl: false };
  }
}

/**
 * Parses one trx file into its statements: modifiers applied (`copies` repeat a statement with
 * `/*!copy-number*\/` numbered, `/*!csv N (…)*\/` expands to N rows), data keys found. Every
 * key must be bound in `data` (or be @PREV after another key). Errors name the file and line.
 */
export function parseTrxFile(
  text: string,
  o: { trx: string; file: string; data: Record<string, { scope: string }>; scope: ParamScope },
): Statement[] {
  const out: Statement[] = [];
  const err = (line: number, problem: string): StageError => new StageError(o.file, line, problem);
  const ex = (s: string, line: number): string => {
    try {
      return expand(s, o.scope);
    } catch (e) {
      throw err(line, (e as Error).message);
    }
  };
  for (const b of blocks(text)) {
    let copies = 1;
    const base: Omit<Statement, "pieces" | "uses" | "kind" | "begin" | "commit" | "ddl"> = {
      trx: o.trx,
      file: o.file,
      line: b.line,
      prepare: false,
    };
    for (const m of b.mods) {
      const mod = ex(m.text, m.line);
      const [, name = "", value = ""] = /^([\w-]+)\s*(?::\s*(.*))?$/.exec(mod) ?? [];
      const v = value.trim();
      switch (name) {
        case "prepare":
        case "prepared":
          base.prepare = true;
          break;
        case "rows": {
          const n = parseStringInt(v);
          if (n === undefined || n < 1)
            throw err(m.line, `-- rows: ${JSON.stringify(v)} is not a number of rows ≥ 1`);
          base.rows = n;
          break;
        }
        case "copies": {
          const n = parseStringInt(v);
          if (n === undefined || n > TRX_LIMITS.copies)
            throw err(
              m.line,
              `-- copies: ${JSON.stringify(v)} is not a number from 0 to ${TRX_LIMITS.copies}`,
            );
          copies = n;
          break;
        }
        case "table-size": {
          const [table, size] = v.split(/\s+/);
          const bytes = parseStringInt(size ?? "");
          if (!table || bytes === undefined || bytes < 1)
            throw err(m.line, "-- table-size: give TABLE SIZE, like xfers 1GiB");
          base.tableSize = { table, bytes };
          break;
        }
        case "idle": {
          const ms = parseDuration(v);
          if (ms === undefined) throw err(m.line, `-- idle: ${JSON.stringify(v)} is not a duration`);
          base.idleMs = ms;
          break;
        }
        case "save-insert-id": {
          const k = /^@([\w-]+)$/.exec(v);
          if (!k) throw err(m.line, "-- save-insert-id: give one data key, like @d");
          base.saveInsertId = k[1]!;
          break;
        }
        case "save-columns": {
          const cols = v.split(",").map((c) => c.trim());
          if (cols.length === 0 || cols.some((c) => c !== "_" && !/^@[\w-]+$/.test(c)))
            throw err(m.line, "-- save-columns: give a data key (@d) or _ per column, comma-separated");
          base.saveColumns = cols.map((c) => (c === "_" ? null : c.slice(1)));
          break;
        }
        default:
          throw err(
            m.line,
            `modifier "-- ${mod.slice(0, 40)}" is not supported (prepare, rows, copies, table-size, idle, save-insert-id, save-columns)`,
          );
      }
    }
    const sqlText = ex(b.sql.join("\n"), b.line);
    if (Buffer.byteLength(sqlText) > TRX_LIMITS.statementBytes)
      throw err(b.line, `the statement is more than ${TRX_LIMITS.statementBytes} bytes`);
    for (let c = 1; c <= copies; c++) {
      out.push(statement(sqlText.replaceAll(COPY_NUMBER, String(c)), base, o.data, err));
      if (out.length > TRX_LIMITS.statements)
        throw err(b.line, `more than ${TRX_LIMITS.statements} statements (copies included)`);
    }
  }
  if (out.length === 0)
    throw new StageError(o.file, undefined, "no statements (they are separated by blank lines)");
  return out;
}

function statement(
  sql: string,
  base: Omit<Statement, "pieces" | "uses" | "kind" | "begin" | "commit" | "ddl">,
  data: Record<string, { scope: string }>,
  err: (line: number, problem: string) => StageError,
): Statement {
  const pieces: string[] = [];
  const uses: KeyUse[] = [];
  /** SQL since the last key use. */
  let text = "";
  const scan = (part: string, row: number, firstInRow: Set<string> | undefined): void => {
    let at = 0;
    for (const m of part.matchAll(KEY)) {
      const explicit = m[0].endsWith("()");
      const key = m[0].slice(1, explicit ? -2 : undefined);
      if (key === "PREV") {
        if (uses.length === 0) throw err(base.line, "@PREV with no data key before it in the statement");
      } else if (!Object.hasOwn(data, key))
        throw err(
          base.line,
          `@${key} is not defined: bind it in the stage file (trx data: ${key}: {generator: …})`,
        );
      pieces.push(text + part.slice(at, m.index));
      text = "";
      // In a csv row, the first use of a row-scoped key makes the row's value (Finch's @d → @d()).
      const scope = key === "PREV" ? "" : data[key]!.scope;
      const rowScoped = firstInRow !== undefined && (scope === "" || scope === "row");
      const first = rowScoped && !firstInRow.has(key);
      if (first) firstInRow.add(key);
      uses.push({ key, explicit: explicit || first, row });
      at = m.index + m[0].length;
    }
    text += part.slice(at);
  };
  const csv = CSV.exec(sql);
  if (csv === null) scan(sql, 0, undefined);
  else {
    const n = parseStringInt(csv[1]);
    if (n === undefined || n < 1 || n > TRX_LIMITS.csvRows)
      throw err(base.line, `/*!csv N …*/: N must be 1 to ${TRX_LIMITS.csvRows}`);
    scan(sql.slice(0, csv.index), 0, undefined);
    for (let r = 1; r <= n; r++) {
      if (r > 1) text += ", ";
      scan(csv[2]!, r, new Set());
    }
    scan(sql.slice(csv.index + csv[0].length), 0, undefined);
  }
  pieces.push(text);
  return { ...base, pieces, uses, ...kindOf(sql) };
}
