import type { ServerResponse } from "node:http";
import { pipeline } from "node:stream";
import { getHeapSnapshot } from "node:v8";
import type { Logger } from "../internal/logger.js";
import { fail, send, streamHeaders } from "./admin-http.js";

/** Longest CPU profile `/api/debug/cpu?seconds=` records, and its default length. */
export const CPU_PROFILE_MAX_SECONDS = 300;
export const CPU_PROFILE_DEFAULT_SECONDS = 10;

// One of each at a time per process: the profiler and the heap belong to the process, not to
// a server, and a second heap snapshot while one streams would double the memory it holds.
let cpuBusy = false;
let heapBusy = false;

/** `20261121T174002Z`: an ISO 8601 time that is also a portable file name. */
function stamp(): string {
  return new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

function attachment(name: string): Record<string, string> {
  return { "content-disposition": `attachment; filename="${name}"` };
}

/**
 * Streams a V8 heap snapshot (`.heapsnapshot`, JSON; open it in Chrome DevTools' Memory tab).
 * Taking it stops the process for a moment (about a second per 100 MB of heap).
 */
export function sendHeapSnapshot(res: ServerResponse, logger: Logger, by: string): void {
  if (heapBusy) {
    fail(res, 409, "conflict", "a heap snapshot is being taken; try again when it is done");
    return;
  }
  if (res.destroyed) return;
  heapBusy = true;
  let snapshot: NodeJS.ReadableStream;
  try {
    snapshot = getHeapSnapshot();
  } catch (err) {
    heapBusy = false;
    throw err;
  }
  logger.info({ by }, "admin API: heap snapshot taken");
  res.writeHead(200, streamHeaders("application/json", attachment(`muster-${stamp()}.heapsnapshot`)));
  pipeline(snapshot, res, (err) => {
    heapBusy = false;
    if (err) logger.debug({ err: err.message }, "admin API: heap snapshot not delivered");
  });
}

/**
 * Records a CPU profile for `seconds` with the inspector's profiler and answers it as a
 * `.cpuprofile` (JSON; open it in Chrome DevTools' Performance tab). The recording stops early
 * when the client goes away.
 */
export async function sendCpuProfile(
  res: ServerResponse,
  seconds: number,
  logger: Logger,
  by: string,
): Promise<void> {
  if (cpuBusy) {
    fail(res, 409, "conflict", "a CPU profile is being recorded; try again when it is done");
    return;
  }
  if (!process.features.inspector) {
    fail(res, 501, "unimplemented", "this Node.js is built without the inspector: no CPU profiles");
    return;
  }
  if (res.destroyed) return;
  cpuBusy = true;
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  try {
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
    logger.info({ by, seconds }, "admin API: CPU profile started");
    const gone = await untilDoneOrGone(res, seconds * 1000);
    const { profile } = await session.post("Profiler.stop");
    if (gone) {
      logger.info({ by }, "admin API: CPU profile abandoned: the client went away");
      return;
    }
    send(res, 200, "application/json", JSON.stringify(profile), attachment(`muster-${stamp()}.cpuprofile`));
  } finally {
    session.disconnect();
    cpuBusy = false;
  }
}

/** Resolves after `ms` with false, or with true as soon as the client goes away. */
function untilDoneOrGone(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (gone: boolean): void => {
      clearTimeout(timer);
      res.off("close", onClose);
      resolve(gone);
    };
    const onClose = (): void => done(true);
    const timer = setTimeout(() => done(false), ms);
    timer.unref();
    res.on("close", onClose);
  });
}
