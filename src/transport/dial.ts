import { isIP } from "node:net";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { MemoryNetwork } from "./memory.js";
import { type ListenAddress, schemeList, transportScheme } from "./schemes.js";
import type { DialOptions, Transport } from "./types.js";

export type { ListenAddress } from "./schemes.js";

/**
 * Opens a transport to `url`, picking the transport by scheme (see TRANSPORT_SCHEMES):
 * ws/wss → WebSocket, tcp/tls → length-prefixed TCP, memory → `options.memory` (required for
 * memory URLs).
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
      `malformed URL ${JSON.stringify(url)}: expected e.g. tcp://host:port (supported: ${schemeList(["memory://"])})`,
    );
  }
  const { memory, ...dialOptions } = options;
  if (parsed.protocol === "memory:") {
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
  const scheme = transportScheme(parsed.protocol.slice(0, -1));
  if (!scheme) {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `unsupported scheme ${JSON.stringify(parsed.protocol)} in ${parsed.href} (supported: ${schemeList(["memory://"])})`,
    );
  }
  return scheme.dial(parsed, dialOptions);
}

// scheme :// (host | [ipv6]) [:port] [/]
const LISTEN_URL = /^([a-z][a-z0-9+.-]*):\/\/(\[[^\]]*\]|[^:/[\]]*)(?::([^/]*))?\/?$/i;
const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/**
 * Parses a listen URL: `ws://host:port`, `wss://…`, `tcp://…` or `tls://…` (any scheme of
 * TRANSPORT_SCHEMES). The port may be 0 (any free port); when absent it is the default of the
 * scheme (33075 for ws/wss, 33076 for tcp/tls). Paths, queries and credentials are refused.
 * Throws INVALID_ARGUMENT.
 */
export function parseListenUrl(s: string): ListenAddress {
  const bad = (why: string): MusterError =>
    new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid listen URL ${JSON.stringify(s)}: ${why}`);
  const m = LISTEN_URL.exec(s.trim());
  if (!m) throw bad(`expected scheme://host:port with scheme one of ${schemeList([], true)}`);
  const kind = m[1]!.toLowerCase();
  const scheme = transportScheme(kind);
  if (!scheme) throw bad(`unsupported scheme "${kind}://" (supported: ${schemeList([], true)})`);
  if (!scheme.listen)
    throw bad(
      `${kind}:// is dialled, not listened on: a ${scheme.secure ? "wss" : "ws"}:// listener serves it`,
    );
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
  let port = scheme.defaultPort;
  const rawPort = m[3];
  if (rawPort !== undefined) {
    if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) > 65535) {
      throw bad(`port must be an integer from 0 to 65535, got "${rawPort}"`);
    }
    port = Number(rawPort);
  }
  return { kind, host, port };
}
