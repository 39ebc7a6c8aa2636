import { ErrorCode } from "../../errors/codes.js";
import { MusterError } from "../../errors/muster-error.js";
import type { PreparedStage, RunSummary, StageSpec } from "../engine/types.js";
import type { Preparer } from "../instance-host.js";
import { KIND, type Kind, type Recorder } from "../stats/types.js";

/**
 * A `handler` stage as instances receive it: each of `clients` loops calling one of the
 * agent's own methods (from `--handlers`) until the runtime, the iterations or a stop. Each
 * call is one event of trx `method` (kind total), timed by muster; a handler may record more
 * through `ctx.stats`.
 */
export interface HandlerSpec extends StageSpec {
  kind: "handler";
  method: string;
  request?: unknown;
  /** @default 1 */
  clients?: number;
  /** Calls per client; absent: until the runtime or a stop. */
  iterations?: number;
  runtimeMs?: number;
}

/** What a handler of a run gets besides its request. */
export interface RunContext {
  readonly signal: AbortSignal;
  /** The client (0-based) making this call, and its iteration (1-based). */
  readonly client: number;
  readonly iteration: number;
  readonly instance: string;
  /** Records extra events under the stage's one trx. */
  readonly stats: {
    record(kind: "read" | "write" | "commit" | "total", micros: number): void;
    error(code: string): void;
  };
}

/** A method as a run calls it. */
export type RunHandler = (request: unknown, ctx: RunContext) => unknown;

const MAX_CLIENTS = 10_000;
const KINDS: Record<string, Kind> = {
  read: KIND.READ,
  write: KIND.WRITE,
  commit: KIND.COMMIT,
  total: KIND.TOTAL,
};

function checkSpec(spec: StageSpec): HandlerSpec {
  const s = spec as Partial<HandlerSpec>;
  if (typeof s.method !== "string" || s.method.length === 0 || s.method.length > 256)
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, "handler stage: method must be a name");
  const n = s.clients ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_CLIENTS)
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `handler stage: clients must be 1 to ${MAX_CLIENTS}`);
  if (s.iterations !== undefined && !(Number.isInteger(s.iterations) && s.iterations >= 1))
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, "handler stage: iterations must be a whole number ≥ 1");
  if (s.runtimeMs !== undefined && !(typeof s.runtimeMs === "number" && s.runtimeMs > 0))
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, "handler stage: runtimeMs must be a positive number");
  if (s.iterations === undefined && s.runtimeMs === undefined)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      "handler stage: give a runtime or iterations, or it would never end",
    );
  return s as HandlerSpec;
}

function codeOf(err: unknown): string {
  return err instanceof MusterError ? err.code : "0";
}

/** Prepares `handler` stages with the methods `lookup` finds (an agent's handlers). */
export function handlerPreparer(lookup: (method: string) => RunHandler | undefined): Preparer {
  return async (spec, _files, o) => {
    const s = checkSpec(spec);
    const fn = lookup(s.method);
    if (fn === undefined)
      throw new MusterError(
        ErrorCode.UNIMPLEMENTED,
        `handler stage: this agent has no handler ${s.method} (give it with --handlers)`,
      );
    const clients = s.clients ?? 1;
    const prepared: PreparedStage = {
      clients,
      trx: [s.method],
      async run({ signal, recorder }): Promise<RunSummary> {
        const stop = new AbortController();
        const onAbort = (): void => stop.abort(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        const runtime = s.runtimeMs === undefined ? undefined : setTimeout(() => stop.abort(), s.runtimeMs);
        const clientErrors: Record<string, number> = {};
        try {
          await Promise.all(
            Array.from({ length: clients }, (_, client) =>
              loop(fn, s, client, o.instance, stop.signal, recorder, clientErrors),
            ),
          );
        } finally {
          clearTimeout(runtime);
          signal.removeEventListener("abort", onAbort);
        }
        return { clientErrors };
      },
      close: async () => {},
    };
    return prepared;
  };
}

async function loop(
  fn: RunHandler,
  s: HandlerSpec,
  client: number,
  instance: string,
  signal: AbortSignal,
  recorder: Recorder,
  clientErrors: Record<string, number>,
): Promise<void> {
  const stats = {
    record: (kind: string, micros: number) => {
      const k = KINDS[kind];
      if (k !== undefined && Number.isFinite(micros) && micros >= 0)
        recorder.record(0, k, Math.round(micros));
    },
    error: (code: string) => recorder.error(0, String(code).slice(0, 16)),
  };
  for (let iteration = 1; s.iterations === undefined || iteration <= s.iterations; iteration++) {
    if (signal.aborted) return;
    const t0 = performance.now();
    try {
      await fn(s.request, { signal, client, iteration, instance, stats });
      recorder.record(0, KIND.TOTAL, Math.round((performance.now() - t0) * 1000));
    } catch (err) {
      recorder.record(0, KIND.TOTAL, Math.round((performance.now() - t0) * 1000));
      if (signal.aborted) return;
      recorder.error(0, codeOf(err));
      const why = err instanceof Error ? err.message.slice(0, 200) : String(err).slice(0, 200);
      // Counted, and the loop goes on: one failing call does not end the client.
      if (Object.keys(clientErrors).length < 32 || clientErrors[why] !== undefined)
        clientErrors[why] = (clientErrors[why] ?? 0) + 1;
    }
    // A handler that never awaits would starve the event loop (and the stats ticker).
    if (iteration % 64 === 0) await new Promise((r) => setImmediate(r));
  }
}
