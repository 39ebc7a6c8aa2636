import type { StageSpec } from "./types.js";

/** Where and how the clients of a SQL stage connect (the password only in here, never logged). */
export interface MySqlTarget {
  host: string;
  port: number;
  socket?: string;
  user: string;
  password: string;
  database: string;
  connectTimeoutMs: number;
}

/** One data key of a trx file, as the stage file binds it. */
export interface DataKeySpec {
  generator: string;
  /** Empty: the generator's default (statement; column: trx). */
  scope: string;
  params: Record<string, string>;
}

export interface TrxSpec {
  /** The name workloads use (default: the file's base name). */
  name: string;
  /** Relative to the stage's directory (the key of the stage's files). */
  file: string;
  /** Line of this trx in the stage file (for errors on the instance). */
  line?: number;
  data: Record<string, DataKeySpec>;
}

/** A client group of the workload; 0 means no limit. */
export interface ClientGroupSpec {
  clients: number;
  trx: string[];
  db: string;
  group: string;
  disableStats: boolean;
  iter: number;
  iterClients: number;
  iterExecGroup: number;
  qps: number;
  qpsClients: number;
  qpsExecGroup: number;
  tps: number;
  tpsClients: number;
  tpsExecGroup: number;
  runtimeMs: number;
}

/** A Finch stage, validated, as instances receive it. */
export interface SqlSpec extends StageSpec {
  kind: "sql";
  name: string;
  /** The stage file's name (for errors on the instance). */
  stageFile: string;
  runtimeMs: number;
  qps: number;
  tps: number;
  mysql: MySqlTarget;
  /** Final params: trx files' `$params.x` are expanded on the instance with these. */
  params: Record<string, string>;
  cpuCores: number;
  trx: TrxSpec[];
  workload: ClientGroupSpec[];
  statsDisabled: boolean;
}
