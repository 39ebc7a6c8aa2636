import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { dialLongPoll } from "./long-poll-client.js";
import type { DialOptions, Transport } from "./types.js";
import { dialWebSocket } from "./websocket.js";

/** Failures that say nobody is there: long-polling the same address would fail the same way. */
const UNREACHABLE = /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|ETIMEDOUT/;

/**
 * Dials `http://…` or `https://…`: a WebSocket to the same address first (ws:// or wss://), and
 * when the upgrade fails — a proxy that refuses or breaks it — HTTP long-polling, saying so
 * through `options.onFallback`. With `?transport=polling`, long-polling at once.
 */
export async function dialHttp(url: URL, options: DialOptions): Promise<Transport> {
  // `?transport=polling` skips the WebSocket attempt (a proxy known to break it).
  if (url.searchParams.get("transport") === "polling") return dialLongPoll(url, options);
  const ws = new URL(url);
  ws.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  try {
    return await dialWebSocket(ws, options);
  } catch (err) {
    const e = err as MusterError;
    const cause = (e.cause as NodeJS.ErrnoException | undefined)?.code ?? "";
    if (e.code === ErrorCode.CANCELLED || UNREACHABLE.test(cause) || UNREACHABLE.test(e.message)) throw err;
    options.onFallback?.(
      `WebSocket to ${ws.href} failed (${e.rawMessage ?? e.message}): falling back to HTTP long-polling`,
    );
    try {
      return await dialLongPoll(url, options);
    } catch (pollErr) {
      const p = pollErr as MusterError;
      if (p.code === ErrorCode.CANCELLED) throw pollErr;
      throw new MusterError(
        ErrorCode.UNAVAILABLE,
        `cannot reach ${url.href}: WebSocket failed (${e.rawMessage ?? e.message}), then long-polling failed (${p.rawMessage ?? p.message})`,
        { cause: pollErr },
      );
    }
  }
}
