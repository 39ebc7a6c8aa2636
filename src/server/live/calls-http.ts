import { ErrorCode } from "../../errors/codes.js";
import { MusterError } from "../../errors/muster-error.js";
import type { ServerFanOut } from "../../rpc/fan-out.js";
import { parseTarget, type Target } from "../../rpc/target.js";
import type { AdminIdentity } from "../admin-host.js";
import { type AdminRequest, readJsonRequest, streamHeaders } from "../admin-http.js";
import { checkRelay } from "../operator-methods.js";

/** What `POST /api/calls` needs from its server. */
export interface CallsHost {
  /**
   * A fan-out on behalf of `who`, admitted as an operator's relayed call is: PERMISSION_DENIED
   * when `who`'s grants do not cover `method`, and counted against `who`'s relays per agent.
   */
  callFor(
    who: AdminIdentity,
    target: Target,
    method: string,
    args: unknown,
    options: { timeoutMs: number; signal: AbortSignal },
  ): ServerFanOut;
  readonly maxTargetBytes: number;
  /** Deadline of a call that gives none. */
  readonly callTimeoutMs: number;
}

/** Bytes of outcomes a slow client may leave unsent before the call is cancelled and the answer cut. */
const MAX_UNSENT_BYTES = 16 * 1024 * 1024;

/**
 * `POST /api/calls` `{target, method, args?, timeoutMs?}`: a fan-out, answered as it goes in
 * newline-delimited JSON — first `{"type":"expected","agents":[…]}`, then one
 * `{"type":"outcome",…}` per expected agent as it arrives, last `{"type":"done","summary":…}`.
 * Closing the request cancels the calls still in flight.
 */
export async function postCall(host: CallsHost, c: AdminRequest): Promise<void> {
  const body = await readJsonRequest(c);
  if (!body.ok) return;
  const r = checkRelay(body.value);
  const target = parseTarget(r.target, host.maxTargetBytes);
  const stop = new AbortController();
  const fanOut = host.callFor(c.who!, target, r.method, r.args, {
    timeoutMs: r.timeoutMs ?? host.callTimeoutMs,
    signal: stop.signal,
  });
  const { res } = c;
  const cancel = (): void =>
    stop.abort(new MusterError(ErrorCode.CANCELLED, "the dashboard's request was closed"));
  res.on("close", cancel);
  // A client that left while its body was read: its 'close' has passed.
  if (res.socket === null || res.socket.destroyed) cancel();
  res.writeHead(200, streamHeaders("application/x-ndjson", {}));
  const started = performance.now();
  const line = (value: unknown): boolean => {
    if (res.destroyed) return false;
    if (res.writableLength > MAX_UNSENT_BYTES) {
      cancel();
      res.destroy();
      return false;
    }
    res.write(`${JSON.stringify(value)}\n`);
    return true;
  };
  line({ type: "expected", agents: fanOut.expectedNames });
  for await (const o of fanOut) if (!line({ type: "outcome", ...o })) break;
  line({ type: "done", summary: fanOut.summary(), ms: Math.round(performance.now() - started) });
  res.off("close", cancel);
  if (!res.destroyed) res.end();
}
