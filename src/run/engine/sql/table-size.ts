import type { Connection } from "mysql2/promise";
import type { Logger } from "../../../internal/logger.js";

/** How often a `-- table-size` limit looks at the table's size. */
const CHECK_MS = 1000;

/**
 * `-- table-size: TABLE SIZE`: true once the table (data and indexes, as information_schema
 * reports it) reaches SIZE bytes. Checked in the background once a second on a connection of
 * its own, so the size is approximate (a little over), as Finch's.
 */
export function tableWatch(
  limit: { table: string; bytes: number },
  open: () => Promise<Connection>,
  log: Logger,
): () => boolean {
  const [schema, table] = limit.table.includes(".")
    ? (limit.table.split(".", 2) as [string, string])
    : [undefined, limit.table];
  let full = false;
  let conn: Connection | undefined;
  let busy = false;
  let last = 0;
  const check = async (): Promise<void> => {
    busy = true;
    try {
      conn ??= await open();
      const [rows] = await conn.query(
        "SELECT COALESCE(SUM(data_length + index_length), 0) AS n FROM information_schema.TABLES WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?",
        [schema ?? null, table],
      );
      const n = Number((rows as Array<{ n: unknown }>)[0]?.n ?? 0);
      if (n >= limit.bytes) {
        full = true;
        conn.destroy();
        conn = undefined;
      }
    } catch (err) {
      log.warn(
        { table: limit.table, err: (err as Error).message },
        "table-size: cannot read the table's size",
      );
      conn?.destroy();
      conn = undefined;
    } finally {
      busy = false;
    }
  };
  return () => {
    if (full) return true;
    const now = performance.now();
    if (!busy && now - last >= CHECK_MS) {
      last = now;
      void check();
    }
    return false;
  };
}
