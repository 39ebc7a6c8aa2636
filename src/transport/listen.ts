import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { parseListenUrl } from "./dial.js";
import type { HttpLimits, HttpRefusal } from "./http-server.js";
import type { MemoryNetwork } from "./memory.js";
import { transportScheme } from "./schemes.js";
import type { TrafficStats } from "./traffic.js";
import type { AcceptFn, Listener, TlsServerOptions } from "./types.js";

export interface ListenAllOptions {
  tls?: TlsServerOptions | undefined;
  memory?: MemoryNetwork | undefined;
  maxFrameBytes: number;
  /** Limit of a connection's first frame (see TransportOptions). */
  firstFrameMaxBytes?: number;
  accept: AcceptFn;
  /** Counts the frames and bytes of every accepted transport, by kind (see TrafficStats). */
  traffic?: TrafficStats | undefined;
  /** Plain HTTP requests on ws/wss listeners (the admin API). */
  onHttpRequest?: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  /** Timeouts and admission of the HTTP connections of ws/wss listeners. */
  http?: HttpLimits | undefined;
  /** Asked before every WebSocket upgrade: a refusal is answered and the connection closed. */
  checkUpgrade?: ((req: IncomingMessage) => HttpRefusal | undefined) | undefined;
}

/**
 * Opens one listener per URL (any scheme of TRANSPORT_SCHEMES, or memory). If any fails, the ones already
 * open are closed and the error is thrown.
 */
export async function listenAll(urls: readonly string[], options: ListenAllOptions): Promise<Listener[]> {
  const out: Listener[] = [];
  try {
    for (const url of urls) {
      if (url.startsWith("memory://")) {
        if (!options.memory)
          throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${url} needs a MemoryNetwork`);
        out.push(
          options.memory.listen(url.slice("memory://".length), options.accept, { traffic: options.traffic }),
        );
        continue;
      }
      const address = parseListenUrl(url);
      const scheme = transportScheme(address.kind)!;
      if (scheme.secure && !options.tls) {
        throw new MusterError(
          ErrorCode.INVALID_ARGUMENT,
          `${url} needs a TLS certificate and key (--tls-cert, --tls-key)`,
        );
      }
      out.push(await scheme.listen!(address, options));
    }
  } catch (err) {
    await Promise.all(out.map((l) => l.close()));
    throw err;
  }
  return out;
}
