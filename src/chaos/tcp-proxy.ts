import { startChaosProxy } from "./chaos-proxy.js";

/** A TCP proxy between agents and a server, that can cut every connection on demand. */
export interface TcpProxy {
  /** Host:port agents should dial instead of the target. */
  readonly address: { host: string; port: number };
  /** Connections currently relayed. */
  readonly connections: number;
  /** Destroys every relayed connection at once (a network failure: both ends see a reset). */
  cutAll(): number;
  close(): Promise<void>;
}

/**
 * Starts a proxy on `127.0.0.1:listenPort` (0 = any free port) relaying to `target`.
 * Bytes are forwarded untouched, so it works for tcp:// and ws:// alike. A plain
 * `startChaosProxy` without faults; use that one for latency, black-holes and the rest.
 */
export async function startTcpProxy(
  target: { host: string; port: number },
  listenPort = 0,
): Promise<TcpProxy> {
  const proxy = await startChaosProxy({
    target,
    listen: { host: "127.0.0.1", port: listenPort },
    maxEvents: 0,
  });
  return {
    address: proxy.address,
    get connections() {
      return proxy.stats.open;
    },
    cutAll: () => proxy.resetAll(),
    close: () => proxy.close(),
  };
}
