import type { Statement } from "../trx-file.js";
import type { Generator } from "./generators.js";

/** Finch's data scopes, narrowest first. */
export const SCOPES = [
  "value",
  "row",
  "statement",
  "trx",
  "iter",
  "client",
  "client-group",
  "exec-group",
  "workload",
  "stage",
  "global",
] as const;
export type Scope = (typeof SCOPES)[number];

/** Where a client runs: its number in the instance, its client group's and exec group's. */
export interface ClientPlace {
  client: number;
  clientGroup: number;
  execGroup: number;
}

/** A client's run counters: a scope's value changes when its counter moves. */
export interface RunCounters {
  iter: number;
  trx: number;
  stmt: number;
  /** Connections made (client scope: a new value per connection, as Finch). */
  conn: number;
}

/** The values of one use of a data key in a statement execution. */
export type Getter = (c: RunCounters) => unknown[];

/** A data key of the stage: its generator (never called itself: each scope copy is a copy of it). */
export interface KeyDef {
  gen: Generator;
  /** As configured ("" for the default). */
  scope: string;
}

interface Slot {
  gen: Generator;
  vals: unknown[];
  last: number;
}

/** A generator shared by several clients, each with its own current value per iteration. */
interface SharedSlot {
  gen: Generator;
  byClient: Map<number, { iter: number; vals: unknown[] }>;
  once?: unknown[];
}

/** The scope a key has in a statement: the configured one, else column → trx, csv → row, statement. */
export function effectiveScope(def: KeyDef, inCsv: boolean): Scope {
  if (def.scope !== "") return def.scope as Scope;
  if (def.gen.name === "column") return "trx";
  return inCsv ? "row" : "statement";
}

/**
 * Binds data keys to generator copies by scope, for one instance: "a data key is unique within
 * its scope, and its generator is called once per scope iteration" (Finch). Copies for shared
 * scopes (client-group and wider) are kept here; a client's own are made in `forClient`.
 */
export class KeyBinder {
  readonly #shared = new Map<string, SharedSlot>();
  constructor(readonly defs: (trx: string, key: string) => KeyDef) {}

  /**
   * For one client: a getter per key use of every statement, and the generators that
   * `save-insert-id` and `save-columns` write into (the same copies later uses read).
   */
  forClient(
    place: ClientPlace,
    stmts: Statement[],
  ): { uses: Getter[][]; saves: Array<{ insertId?: Generator; columns?: Array<Generator | null> }> } {
    const own = new Map<string, Slot>();
    const slotOf = (id: string, def: KeyDef): Slot => {
      let s = own.get(id);
      if (s === undefined) {
        s = { gen: def.gen.copy(), vals: [], last: -1 };
        own.set(id, s);
      }
      return s;
    };
    const sharedOf = (id: string, def: KeyDef): SharedSlot => {
      let s = this.#shared.get(id);
      if (s === undefined) {
        s = { gen: def.gen.copy(), byClient: new Map() };
        this.#shared.set(id, s);
      }
      return s;
    };
    /** The slot id of a key by its scope (statement-wide ones include the statement). */
    const idOf = (scope: Scope, si: number, st: Statement, key: string): string => {
      switch (scope) {
        case "value":
        case "row":
        case "statement":
          return `s${si}:${key}`;
        case "trx":
          return `t${st.trx}:${key}`;
        case "client-group":
          return `cg${place.clientGroup}:${key}`;
        case "exec-group":
          return `eg${place.execGroup}:${key}`;
        default:
          return `c:${key}`;
      }
    };
    const uses: Getter[][] = [];
    const saves: Array<{ insertId?: Generator; columns?: Array<Generator | null> }> = [];
    stmts.forEach((st, si) => {
      const inCsv = new Set(st.uses.filter((u) => u.row > 0).map((u) => u.key));
      const getters: Getter[] = [];
      for (const u of st.uses) {
        if (u.key === "PREV") {
          getters.push(() => []);
          continue;
        }
        const def = this.defs(st.trx, u.key);
        const scope = effectiveScope(def, inCsv.has(u.key));
        if (scope === "value") {
          const gen = def.gen.copy();
          getters.push(() => gen.values());
          continue;
        }
        if (
          scope === "client-group" ||
          scope === "exec-group" ||
          scope === "workload" ||
          scope === "stage" ||
          scope === "global"
        ) {
          const s = sharedOf(`${idOf(scope, si, st, u.key)}`, def);
          const client = place.client;
          if (scope === "stage" || scope === "global")
            getters.push(() => {
              s.once ??= s.gen.values();
              return s.once;
            });
          else
            getters.push((c) => {
              const mine = s.byClient.get(client);
              if (mine !== undefined && mine.iter === c.iter && !u.explicit) return mine.vals;
              const vals = s.gen.values();
              s.byClient.set(client, { iter: c.iter, vals });
              return vals;
            });
          continue;
        }
        const slot = slotOf(idOf(scope, si, st, u.key), def);
        if (def.gen.name === "column") {
          // A saved value is read as it is now (a later save in the same scope replaces it).
          getters.push(() => slot.gen.values());
          continue;
        }
        // Which counter moves the value: per row, the csv expansion marks the row's first use.
        const counter: (c: RunCounters) => number =
          scope === "row" || scope === "statement"
            ? (c) => c.stmt
            : scope === "trx"
              ? (c) => c.trx
              : scope === "iter"
                ? (c) => c.iter
                : (c) => c.conn;
        const explicit = u.explicit;
        getters.push((c) => {
          const n = counter(c);
          if (explicit || n !== slot.last) {
            slot.last = n;
            slot.vals = slot.gen.values();
          }
          return slot.vals;
        });
      }
      uses.push(getters);
      const save: { insertId?: Generator; columns?: Array<Generator | null> } = {};
      const target = (key: string): Generator => {
        const def = this.defs(st.trx, key);
        if (def.gen.name !== "column")
          throw new Error(`@${key} receives saved values: its generator must be column, not ${def.gen.name}`);
        const scope = effectiveScope(def, false);
        if (scope !== "trx" && scope !== "iter" && scope !== "client")
          throw new Error(
            `@${key} receives saved values: its scope must be trx, iter or client (its value is read by later statements)`,
          );
        return slotOf(idOf(scope, si, st, key), def).gen;
      };
      if (st.saveInsertId !== undefined) save.insertId = target(st.saveInsertId);
      if (st.saveColumns !== undefined)
        save.columns = st.saveColumns.map((k) => (k === null ? null : target(k)));
      saves.push(save);
    });
    return { uses, saves };
  }
}
