import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { StreamHandler } from "../rpc/stream.js";
import type { Handler } from "../rpc/types.js";
import type { StageSpec } from "./engine/types.js";
import { prepareExecStage } from "./generic/exec-stage.js";
import { handlerPreparer, type RunHandler } from "./generic/handler-stage.js";
import { instanceHandlers } from "./instance-handlers.js";
import { InstanceHost, type Preparer } from "./instance-host.js";

/** The kinds of stage an instance may run. */
export type StageKind = "sql" | "exec" | "handler";

/**
 * Whether and how an agent takes part in coordinated runs (`muster run --server`). `exec`
 * runs whatever command the coordinator sends: enable it only where every operator allowed to
 * submit runs (grant `muster.run`) may run commands on this machine.
 */
export interface AgentRunOptions {
  /** @default ["sql", "handler"] */
  kinds?: StageKind[];
  /** Methods `handler` stages may call, by name. */
  handlers?: Record<string, RunHandler>;
  /**
   * Only stages this accepts are booted (others: PERMISSION_DENIED). The local instance of
   * `muster run --server` accepts the stages it submitted, and nothing a server made up.
   */
  accept?: (spec: StageSpec) => boolean;
}

/** SQL stages load the engine (and mysql2) only when one is booted. */
const prepareSql: Preparer = async (spec, files, o) => {
  const { prepareSqlStage } = await import("./engine/index.js");
  return prepareSqlStage(spec, files, o);
};

/** The preparers of `kinds`. */
export function preparersFor(
  kinds: StageKind[],
  handlers: Record<string, RunHandler> = {},
): Partial<Record<StageKind, Preparer>> {
  const out: Partial<Record<StageKind, Preparer>> = {};
  if (kinds.includes("sql")) out.sql = prepareSql;
  if (kinds.includes("exec")) out.exec = prepareExecStage;
  if (kinds.includes("handler"))
    out.handler = handlerPreparer((m) => (Object.hasOwn(handlers, m) ? handlers[m] : undefined));
  return out;
}

/** An instance host and the run methods over it, for an agent (or an operator's local instance). */
export function runInstance(
  o: AgentRunOptions,
  logger: Logger,
): { host: InstanceHost; handlers: Map<string, Handler>; streams: Map<string, StreamHandler> } {
  let preparers = preparersFor(o.kinds ?? ["sql", "handler"], o.handlers);
  const accept = o.accept;
  if (accept !== undefined)
    preparers = Object.fromEntries(
      Object.entries(preparers).map(([kind, prepare]) => [
        kind,
        ((spec, files, po) => {
          if (!accept(spec))
            throw new MusterError(
              ErrorCode.PERMISSION_DENIED,
              `stage ${spec.name} is not one this instance accepts`,
            );
          return prepare(spec, files, po);
        }) as Preparer,
      ]),
    );
  const host = new InstanceHost({ preparers, logger });
  return { host, ...instanceHandlers(host) };
}
