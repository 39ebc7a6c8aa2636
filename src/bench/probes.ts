import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Commands } from "./ipc.js";

/** Heap and RSS after two full collections (the child runs with --expose-gc). */
export async function measureMemory(): Promise<{ rss: number; heapUsed: number; external: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let k = 0; k < 3; k++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external + m.arrayBuffers };
}

/** Tracks the event loop's delay between `lagStart` and `lagStop`. */
export function lagCommands(): Commands {
  let h: ReturnType<typeof monitorEventLoopDelay> | undefined;
  return {
    lagStart() {
      h = monitorEventLoopDelay({ resolution: 10 });
      h.enable();
    },
    lagStop() {
      if (!h) throw new Error("lagStart first");
      h.disable();
      const r = { maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 };
      h = undefined;
      return r;
    },
  };
}

/** Polls `ready` every `everyMs` until it holds; throws `failure()` after `timeoutMs`. */
export async function waitUntil(
  ready: () => boolean,
  timeoutMs: number,
  failure: () => string,
  everyMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(failure());
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** This process's limit on open descriptors (soft), from /proc on Linux; undefined elsewhere. */
export function descriptorLimit(): number | undefined {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}
