import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import { connectOperator, type MusterOperator } from "../operator/create-operator.js";
import { fileRefsOf, newRunId, type RunOutcome } from "../run/coordinator.js";
import type { LoadedStage } from "../run/engine/types.js";
import type { RunEvent } from "../run/events.js";
import type { FileRef } from "../run/protocol.js";
import { submittedStage } from "../run/submit.js";
import type { TlsClientOptions } from "../transport/types.js";

export interface RemoteRun {
  server: string;
  stages: LoadedStage[];
  select: string;
  bootTimeoutMs: number;
  onLoss: "abort" | "continue";
  token?: string;
  tls?: TlsClientOptions;
  logger: Logger;
  emit(e: RunEvent): void;
  signal: AbortSignal;
}

/** How often, and how long, `muster run` tries to reach a server that went away between stages. */
const RETRY_MS = 500;

/**
 * A run coordinated by a server: the stages' files are uploaded, the run submitted, and its
 * events passed on as they come (stage numbers as in the whole run). This process is the
 * instance "local" unless every stage disables it. If the server goes away before a stage has
 * started (its restart, say), the stages not yet started are submitted again once it is back
 * (within the boot timeout); a stage that had started is not run twice: the run fails.
 * Aborting `signal` asks the server to stop the run (the stats gathered still come).
 */
export async function runOnServer(r: RemoteRun): Promise<RunOutcome> {
  const id = newRunId();
  const local = r.stages.some((s) => !s.disableLocal);
  // The local instance boots only the stages submitted here, whatever a server would send.
  const mine = new Set(r.stages.map((s) => JSON.stringify(s.spec)));
  const connect = (): Promise<MusterOperator> =>
    connectOperator({
      server: r.server,
      connectTimeoutMs: 5000,
      name: `run-${id}`,
      logger: r.logger,
      ...(r.tls ? { tls: r.tls } : {}),
      ...(r.token !== undefined ? { token: r.token } : {}),
      ...(local && { runs: { kinds: ["sql", "exec"], accept: (spec) => mine.has(JSON.stringify(spec)) } }),
    });
  let from = 0;
  let lostAt = 0;
  for (let attempt = 0; ; attempt++) {
    const runId = attempt === 0 ? id : `${id}-${attempt}`;
    let op: MusterOperator;
    try {
      op = await connect();
    } catch (err) {
      const e = MusterError.from(err);
      if (attempt === 0 || e.code === ErrorCode.UNAUTHENTICATED || e.code === ErrorCode.PERMISSION_DENIED)
        throw e;
      if (performance.now() - lostAt > r.bootTimeoutMs) {
        const error = new MusterError(
          ErrorCode.UNAVAILABLE,
          `the server at ${r.server} did not come back within the boot timeout (${r.bootTimeoutMs / 1000} s): ${e.rawMessage}`,
        );
        r.emit({ t: "run-done", ok: false, stages: from, error: error.toBody() });
        return { id, ok: false, error };
      }
      await new Promise((res) => setTimeout(res, RETRY_MS));
      if (r.signal.aborted)
        return { id, ok: false, error: MusterError.from(r.signal.reason, ErrorCode.CANCELLED) };
      continue;
    }
    const rest = r.stages.slice(from);
    const files: Array<FileRef & { bytes: Uint8Array }> = [];
    const submitted = rest.map((s) => {
      const refs = fileRefsOf(s);
      for (const f of refs) files.push({ ...f, bytes: s.files.get(f.path)! });
      return submittedStage(s, refs);
    });
    const onStop = (): void => void op.stopRun(runId).catch(() => {});
    r.signal.addEventListener("abort", onStop, { once: true });
    let started = false;
    let current = from;
    try {
      const events = await op.submitRun(
        {
          run: runId,
          select: r.select,
          local,
          bootTimeoutMs: r.bootTimeoutMs,
          onLoss: r.onLoss,
          stages: submitted,
        },
        files,
      );
      for await (const e of events) {
        const shifted = "stage" in e && typeof e.stage === "number" ? { ...e, stage: e.stage + from } : e;
        if (shifted.t === "stage") {
          current = shifted.stage;
          started = false;
        } else if (shifted.t === "started") started = true;
        else if (shifted.t === "stage-done" && shifted.ok) current = shifted.stage + 1;
        if (shifted.t === "run-done") r.emit({ ...shifted, stages: shifted.stages + from });
        else r.emit(shifted as RunEvent);
      }
      const result = events.result as { ok?: boolean } | undefined;
      return { id, ok: result?.ok === true };
    } catch (err) {
      const error = MusterError.from(err);
      const lost = error.code === ErrorCode.UNAVAILABLE || error.code === ErrorCode.CLOSED;
      if (!lost || started || r.signal.aborted) {
        r.emit({ t: "run-done", ok: false, stages: current, error: error.toBody() });
        return { id, ok: false, error };
      }
      // Nothing of stage `current` ran: it and the ones after it go again once the server is back.
      from = current;
      lostAt = performance.now();
      r.emit({ t: "resubmitting", from, why: error.rawMessage });
    } finally {
      r.signal.removeEventListener("abort", onStop);
      await op.close().catch(() => {});
    }
  }
}
