/**
 * What a client does after a failed statement, as Finch does (its MySQL error handling table):
 * - `next-trx`: roll back if inside a transaction (when `rollback`), go on with the next trx;
 * - `abort`: the client stops (the error is counted in the instance's summary);
 * - `reconnect`: reconnect, go on with the next iteration.
 * DDL errors always abort. Every error is counted by its number in the stats either way.
 */
export type Action = { do: "next-trx"; rollback: boolean } | { do: "abort" } | { do: "reconnect" };

export function actionFor(errno: number | undefined, ddl: boolean): Action {
  if (ddl) return { do: "abort" };
  switch (errno) {
    case 1205: // lock wait timeout
    case 1290: // read-only
    case 1836: // read-only (super_read_only)
      return { do: "next-trx", rollback: true };
    case 1213: // deadlock: the server rolled the transaction back
    case 1317: // query killed
      return { do: "next-trx", rollback: false };
    case 1046: // no database selected
    case 1062: // duplicate key
    case 1064: // syntax error
    case 1146: // no such table
      return { do: "abort" };
    default:
      return { do: "reconnect" };
  }
}

/** The MySQL error number of an error as the stats count it ("0": not MySQL's). */
export function errorCode(err: unknown): string {
  const errno = (err as { errno?: unknown }).errno;
  return typeof errno === "number" && errno > 0 && errno < 100_000 ? String(errno) : "0";
}
