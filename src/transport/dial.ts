import { isIP } from "node:net";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import type { MemoryNetwork } from "./memory.js";
import { dialTcp } from "./tcp.js";
import type { DialOptions, Transport } from "./types.js";
import { dialWebSocket } from "./websocket.js";

const DIAL_SCHEMES = "ws://, wss://, tcp://, tls:// and memory://";
const LISTEN_SCHEMES = "ws://, wss://, tcp:// and tls://";

/**
 * Opens a transport to `url`, picking the transport by scheme: ws/wss → WebSocket,
 * tcp/tls → length-prefixed TCP, memory → `options.memory` (required for memory URLs).
 * A malformed URL or an unknown scheme rejects with INVALID_ARGUMENT.
 */
export async function dialUrl(
  url: string | URL,
  options: DialOptions & { memory?: MemoryNetwork } = {},
): Promise<Transport> {
  let parsed: URL;
  try {
    parsed = typeof url === "string" ? new URL(url) : url;
  } catch {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `malformed URL ${JSON.stringify(url)}: expected e.g. tcp://host:port (supported: ${DIAL_SCHEMES})`,
    );
  }
  const { memory, ...dialOptions } = options;
  switch (parsed.protocol) {
    case "ws:":
    case "wss:":
      return dialWebSocket(parsed, dialOptions);
    case "tcp:":
    case "tls:":
      return dialTcp(parsed, dialOptions);
    case "memory:": {
      if (!memory) {
        throw new MusterError(
          ErrorCode.INVALID_ARGUMENT,
          `${parsed.href} needs a MemoryNetwork (options.memory)`,
        );
      }
      if (dialOptions.signal?.aborted) {
        throw new MusterError(ErrorCode.CANCELLED, `dial to ${parsed.href} aborted`, {
          cause: dialOptions.signal.reason,
        });
      }
      return memory.dial(parsed.host, dialOptions);
    }
    default:
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `unsupported scheme ${JSON.stringify(parsed.protocol)} in ${parsed.href} (supported: ${DIAL_SCHEMES})`,
      );
  }
}

export type ListenKind = "ws" | "wss" | "tcp" | "tls";

/** Where to listen, from a listen URL. `host` has no brackets (IPv6 hosts are bare). */
export interface ListenAddress {
  kind: ListenKind;
  host: string;
  port: number;
}

// scheme :// (host | [ipv6]) [:port] [/]
const LISTEN_URL = /^([a-z][a-z0-9+.-]*):\/\/(\[[^\]]*\]|[^:/[\]]*)(?::([^/]*))?\/?$/i;
const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/**
 * Parses a listen URL: `ws://host:port`, `wss://…`, `tcp://…` or `tls://…`. The port may be
 * 0 (any free port); when absent it is the default of the kind (33075 for ws/wss, 33076 for
 * tcp/tls). Paths, queries and credentials are refused. Throws INVALID_ARGUMENT.
 */
export function parseListenUrl(s: string): ListenAddress {
  const bad = (why: string): MusterError =>
    new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid listen URL ${JSON.stringify(s)}: ${why}`);
  const m = LISTEN_URL.exec(s.trim());
  if (!m) throw bad(`expected scheme://host:port with scheme one of ${LISTEN_SCHEMES}`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "ws" && scheme !== "wss" && scheme !== "tcp" && scheme !== "tls") {
    throw bad(`unsupported scheme "${scheme}://" (supported: ${LISTEN_SCHEMES})`);
  }
  const kind: ListenKind = scheme;
  const rawHost = m[2]!;
  let host: string;
  if (rawHost.startsWith("[")) {
    host = rawHost.slice(1, -1);
    if (isIP(host) !== 6) throw bad(`"${host}" is not an IPv6 address`);
  } else {
    host = rawHost;
    if (host === "") throw bad("missing host (use 0.0.0.0 for every interface)");
    if (isIP(host) === 0 && !HOST_NAME.test(host)) throw bad(`"${host}" is not a valid host name`);
  }
  let port: number = kind === "ws" || kind === "wss" ? DEFAULTS.wsPort : DEFAULTS.tcpPort;
  const rawPort = m[3];
  if (rawPort !== undefined) {
    if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) > 65535) {
      throw bad(`port must be an integer from 0 to 65535, got "${rawPort}"`);
    }
    port = Number(rawPort);
  }
  return { kind, host, port };
}
