import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { LoadedStage } from "./engine/types.js";
import type { RunEvent } from "./events.js";
import type { InstancePort } from "./instance-port.js";
import { type FileRef, PUT_CHUNK_BYTES } from "./protocol.js";

/** The agents a run may take, as the coordinator sees them now. */
export interface RunFleet {
  /** Names of connected agents matching the run's selector, best first. */
  candidates(): string[];
  port(name: string): InstancePort;
  /** The selector, as the user gave it (for messages). */
  readonly selector: string;
}

export interface BootContext {
  run: string;
  stage: number;
  loaded: LoadedStage;
  files: FileRef[];
  local: InstancePort | undefined;
  fleet: RunFleet | undefined;
  bootTimeoutMs: number;
  /** How long a booted instance waits for the start before it forgets the stage. */
  startWithinMs: number;
  emit(e: RunEvent): void;
  signal: AbortSignal;
}

export interface BootedInstance {
  port: InstancePort;
  clients: number;
}

/** How often the boot phase looks for new agents while it waits for more. */
const POLL_MS = 250;

/**
 * Boots a stage on as many instances as it takes: the local one (unless disabled) and agents
 * of the fleet. An agent whose boot fails frees its slot and the next matching agent is tried
 * (Finch keeps a failed slot for ever); the phase ends when every slot is booted, or fails at
 * the boot timeout naming every failure and what it still waited for. Instances booted before
 * a failure are released.
 */
export async function bootStage(c: BootContext): Promise<BootedInstance[]> {
  const { loaded } = c;
  const useLocal = c.local !== undefined && !loaded.disableLocal;
  const needRemote = loaded.instances - (useLocal ? 1 : 0);
  if (needRemote > 0 && c.fleet === undefined)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `stage ${loaded.name} takes ${loaded.instances} instances${useLocal ? " (this one and " : " ("}${needRemote} agents): give --server to run it on a fleet, or set compute.instances to 1`,
    );
  if (loaded.disableLocal && c.fleet === undefined)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `stage ${loaded.name} has compute.disable-local: it runs on agents only: give --server`,
    );
  const started = performance.now();
  const deadline = started + c.bootTimeoutMs;
  const booted: BootedInstance[] = [];
  const failures: string[] = [];
  const tried = new Set<string>();
  const inflight = new Map<string, Promise<void>>();
  const abort = new AbortController();
  const onAbort = (): void => abort.abort(c.signal.reason);
  c.signal.addEventListener("abort", onAbort, { once: true });

  const bootOne = (port: InstancePort, remote: boolean): Promise<void> => {
    c.emit({ t: "booting", stage: c.stage, instance: port.name });
    const t0 = performance.now();
    const p = (async () => {
      try {
        const reply = await boot(c, port, Math.max(1, deadline - performance.now()), abort.signal);
        booted.push({ port, clients: reply.clients });
        c.emit({
          t: "booted",
          stage: c.stage,
          instance: port.name,
          clients: reply.clients,
          ms: Math.round(performance.now() - t0),
        });
      } catch (err) {
        const e = MusterError.from(err);
        failures.push(`${port.name}: ${e.message}`);
        c.emit({ t: "boot-failed", stage: c.stage, instance: port.name, error: e.toBody() });
        // The local instance cannot be replaced: its failure is the stage's.
        if (!remote)
          abort.abort(
            new MusterError(e.code, `the local instance failed to boot: ${e.rawMessage}`, { cause: e }),
          );
        void port.release(c.run).catch(() => {});
      } finally {
        inflight.delete(port.name);
      }
    })();
    inflight.set(port.name, p);
    return p;
  };

  try {
    if (useLocal) void bootOne(c.local!, false);
    let lastWaiting = -1;
    for (;;) {
      if (abort.signal.aborted) throw MusterError.from(abort.signal.reason, ErrorCode.CANCELLED);
      const remoteBooted = booted.filter((b) => b.port !== c.local).length;
      const remoteInflight = [...inflight.keys()].filter((n) => n !== c.local?.name).length;
      if (
        remoteBooted >= needRemote &&
        inflight.size === 0 &&
        (!useLocal || booted.some((b) => b.port === c.local))
      )
        return booted;
      if (c.fleet !== undefined) {
        let active = remoteBooted + remoteInflight;
        if (active < needRemote)
          for (const name of c.fleet.candidates()) {
            if (active >= needRemote) break;
            if (tried.has(name)) continue;
            tried.add(name);
            active++;
            void bootOne(c.fleet.port(name), true);
          }
        if (active < needRemote && active !== lastWaiting) {
          lastWaiting = active;
          c.emit({
            t: "waiting",
            stage: c.stage,
            need: needRemote,
            have: active,
            selector: c.fleet.selector,
          });
        }
      }
      if (performance.now() >= deadline) {
        const missing = needRemote - remoteBooted;
        throw new MusterError(
          ErrorCode.DEADLINE_EXCEEDED,
          `stage ${loaded.name}: ${booted.length} of ${loaded.instances} instances booted in ${Math.round(c.bootTimeoutMs / 1000)} s` +
            (missing > 0
              ? `; ${missing} more agents matching ${c.fleet?.selector ?? "the selector"} were needed`
              : "") +
            (failures.length > 0 ? `; boot failures: ${failures.join("; ")}` : ""),
        );
      }
      await Promise.race([...inflight.values(), new Promise((r) => setTimeout(r, POLL_MS))]);
    }
  } catch (err) {
    abort.abort(err);
    await Promise.allSettled(inflight.values());
    await Promise.allSettled(booted.map((b) => b.port.release(c.run)));
    throw err;
  } finally {
    c.signal.removeEventListener("abort", onAbort);
  }
}

/** Sends the files an instance lacks, then boots the stage there. */
async function boot(c: BootContext, port: InstancePort, timeoutMs: number, signal: AbortSignal) {
  const { missing } = await port.files({ run: c.run, files: c.files }, { signal });
  for (const sha of new Set(missing)) {
    const ref = c.files.find((f) => f.sha256 === sha);
    if (ref === undefined)
      throw new MusterError(
        ErrorCode.PROTOCOL_ERROR,
        `instance ${port.name} asked for a file that is not the stage's`,
      );
    const bytes = c.loaded.files.get(ref.path)!;
    for (let offset = 0; offset < bytes.length || offset === 0; offset += PUT_CHUNK_BYTES) {
      const chunk = bytes.subarray(offset, offset + PUT_CHUNK_BYTES);
      await port.put(
        { run: c.run, sha256: sha, size: bytes.length, offset, data: Buffer.from(chunk).toString("base64") },
        { signal },
      );
      if (bytes.length === 0) break;
    }
  }
  return port.boot(
    {
      run: c.run,
      stage: c.stage,
      instance: port.name,
      spec: c.loaded.spec,
      files: c.files,
      freqMs: c.loaded.stats.freqMs,
      statsDisabled: c.loaded.stats.disable,
      startWithinMs: c.startWithinMs,
      ...(c.loaded.runtimeMs !== undefined && { runtimeMs: c.loaded.runtimeMs }),
    },
    { timeoutMs, signal },
  );
}
