import { arch, freemem, hostname, loadavg, platform, totalmem } from "node:os";
import { VERSION } from "../internal/version.js";
import type { Handler } from "../rpc/types.js";

/** Methods every agent answers unless `builtins: false`. */
export function builtinHandlers(
  identity: () => { name: string; labels: Record<string, string> },
): Map<string, Handler> {
  const m = new Map<string, Handler>();
  m.set("sys.ping", () => ({ pong: true, time: Date.now() }));
  m.set("sys.info", () => {
    const mem = process.memoryUsage();
    const { name, labels } = identity();
    return {
      name,
      labels,
      host: hostname(),
      pid: process.pid,
      platform: platform(),
      arch: arch(),
      versions: { muster: VERSION, node: process.versions.node },
      uptimeSec: Math.round(process.uptime()),
      load: loadavg(),
      memory: { rss: mem.rss, heapUsed: mem.heapUsed, systemFree: freemem(), systemTotal: totalmem() },
    };
  });
  return m;
}
