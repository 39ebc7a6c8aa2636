import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { LoadedStage } from "./engine/types.js";
import type { RunEvent } from "./events.js";
import type { StageRef } from "./protocol.js";
import type { BootedInstance } from "./stage-boot.js";
import { Merger } from "./stats/merger.js";
import type { MergedInterval, Reporter } from "./stats/types.js";

export interface RunPhase {
  ref: StageRef;
  loaded: LoadedStage;
  instances: BootedInstance[];
  onLoss: "abort" | "continue";
  /** Time the instances have to end after `stop` before their streams are cancelled. */
  stopGraceMs: number;
  /** Past the stage's runtime, how long to wait before stopping instances that go on. */
  overrunMs: number;
  emit(e: RunEvent): void;
  /** Aborted: stop every instance now (Ctrl-C, `muster run --stop`). */
  signal: AbortSignal;
  logger: Logger;
}

/**
 * Starts a booted stage on every instance at once, merges their statistics as they come, and
 * ends when every instance has ended. An instance lost mid-run is reported at once; with
 * `abort` the others are stopped (their stats still merged), with `continue` the stage goes
 * on without it. A stop ends every instance within `stopGraceMs`: asked first (they send their
 * last interval), cancelled after.
 */
export async function runStage(p: RunPhase): Promise<void> {
  const { ref, loaded } = p;
  const names = p.instances.map((b) => b.port.name);
  const events: Reporter = {
    report: (merged: MergedInterval) => p.emit({ t: "interval", stage: ref.stage, merged }),
    stop: async () => {},
  };
  const merger = loaded.stats.disable ? undefined : new Merger(names, [events]);
  const cancel = new AbortController();
  const startedAt = new Map<string, number>();
  let stopping: Promise<void> | undefined;
  let lostError: MusterError | undefined;
  let allEnded!: () => void;
  const ended = new Promise<void>((r) => {
    allEnded = r;
  });

  const stopAll = (why: string): Promise<void> => {
    if (stopping !== undefined) return stopping;
    p.emit({ t: "stopping", stage: ref.stage, why });
    stopping = (async () => {
      await Promise.allSettled(p.instances.map((b) => b.port.stop(ref)));
      await new Promise<void>((r) => {
        const t = setTimeout(r, p.stopGraceMs);
        t.unref();
        void ended.then(() => {
          clearTimeout(t);
          r();
        });
      });
      cancel.abort(new MusterError(ErrorCode.CANCELLED, `stopped: ${why}`));
    })();
    return stopping;
  };
  const onSignal = (): void =>
    void stopAll(MusterError.from(p.signal.reason, ErrorCode.CANCELLED).rawMessage);
  p.signal.addEventListener("abort", onSignal, { once: true });

  const one = async (b: BootedInstance): Promise<void> => {
    try {
      const s = b.port.start(ref, { signal: cancel.signal });
      for await (const item of s) {
        if (item.t === "started") {
          startedAt.set(b.port.name, item.atMs);
          if (startedAt.size === names.length) {
            const times = [...startedAt.values()];
            p.emit({
              t: "started",
              stage: ref.stage,
              instances: names,
              skewMs: Math.max(...times) - Math.min(...times),
            });
          }
        } else if (item.t === "report") {
          const refused = merger?.add(item.report);
          if (typeof refused === "string")
            p.logger.warn({ instance: b.port.name, why: refused }, "stats report refused");
        }
      }
      p.emit({
        t: "instance-done",
        stage: ref.stage,
        instance: b.port.name,
        summary: s.result ?? { clientErrors: {} },
      });
    } catch (err) {
      const e = MusterError.from(err);
      merger?.instanceLost(b.port.name);
      if (cancel.signal.aborted) return; // cancelled by us after the grace time
      p.emit({ t: "lost", stage: ref.stage, instance: b.port.name, error: e.toBody(), onLoss: p.onLoss });
      if (p.onLoss === "abort") {
        lostError ??= new MusterError(e.code, `instance ${b.port.name} was lost: ${e.rawMessage}`, {
          cause: e,
        });
        void stopAll(`instance ${b.port.name} was lost`);
      }
    }
  };

  let overrun: NodeJS.Timeout | undefined;
  if (loaded.runtimeMs !== undefined) {
    overrun = setTimeout(
      () => void stopAll(`still running ${p.overrunMs / 1000} s past the stage's runtime`),
      loaded.runtimeMs + p.overrunMs,
    );
    overrun.unref();
  }
  try {
    await Promise.all(p.instances.map(one));
  } finally {
    allEnded();
    clearTimeout(overrun);
    p.signal.removeEventListener("abort", onSignal);
    await merger?.finish();
    await Promise.allSettled(p.instances.map((b) => b.port.release(ref.run)));
  }
  if (lostError !== undefined) throw lostError;
  if (p.signal.aborted) throw MusterError.from(p.signal.reason, ErrorCode.CANCELLED);
}
