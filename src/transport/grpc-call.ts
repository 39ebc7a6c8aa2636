import { constants as http2, type ServerHttp2Stream } from "node:http2";
import type * as grpc from "@grpc/grpc-js";

/**
 * What a server call of grpc-js does not expose: its HTTP/2 stream. grpc-js has no public way to
 * abort a server call whose peer does not read (its status waits behind the unsent data), nor to
 * learn the status it sent on its own (e.g. RESOURCE_EXHAUSTED for a message over the limit).
 * The stream is found under the call's `call` and its chain of `nextCall`s; a test checks that it
 * still is, so that an upgrade of grpc-js that moves it fails there.
 */
export function http2StreamOf(
  call: grpc.ServerDuplexStream<unknown, unknown>,
): ServerHttp2Stream | undefined {
  type Link = { stream?: unknown; nextCall?: Link; call?: Link };
  let at = (call as unknown as Link).call;
  for (let depth = 0; at !== undefined && depth < 8; depth++) {
    const s = at.stream as ServerHttp2Stream | undefined;
    if (s !== undefined && typeof s.close === "function" && "sentHeaders" in s) return s;
    at = at.nextCall;
  }
  return undefined;
}

/** Resets the call's HTTP/2 stream at once, pending writes dropped; without it, destroys the call. */
export function resetServerCall(call: grpc.ServerDuplexStream<unknown, unknown>): void {
  const stream = http2StreamOf(call);
  if (stream && !stream.destroyed) stream.close(http2.NGHTTP2_CANCEL);
  else call.destroy();
}

/** The grpc-status the server sent on the call (in its trailers or a trailers-only answer), if known. */
export function sentStatusOf(call: grpc.ServerDuplexStream<unknown, unknown>): number | undefined {
  const stream = http2StreamOf(call);
  const status = stream?.sentTrailers?.["grpc-status"] ?? stream?.sentHeaders?.["grpc-status"];
  return status === undefined ? undefined : Number(status);
}
