export { loadStages } from "./load.js";
export { prepareSqlStage } from "./prepare.js";
export type { SqlSpec } from "./sql-spec.js";
export { parseTrxFile, type Statement } from "./trx-file.js";
export * from "./types.js";
