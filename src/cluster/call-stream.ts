import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { CallHandle } from "../rpc/endpoint.js";
import { DEFAULT_STREAM_WINDOW, MusterStream, type StreamHost, type StreamOptions } from "../rpc/stream.js";
import type { Reach } from "../server/router.js";
import { type DecodeLimits, decodeValue, encodeValue } from "../wire/codec.js";
import { itemCost } from "../wire/frame.js";

/**
 * Bytes of partial results a relayed call may hold on its agent's server, waiting for the
 * reading server's credit, at least (a larger stream window raises it). A call's items, unlike
 * a stream's, are not flow-controlled at the agent: past this the call fails.
 */
export const CALL_ITEMS_HELD_BYTES = 1024 * 1024;

/**
 * A call with partial results (`onItem`) started on an agent this server holds, read as a
 * stream so that the stream relay carries its items to the server that made it: in order,
 * numbered, within that server's credit. Undefined when the agent has no live session here.
 *
 * The agent emits a call's items without waiting for credit; they wait here while the backplane
 * and the reading server catch up, at most `max(window, CALL_ITEMS_HELD_BYTES)` bytes of item
 * cost, beyond which the call is cancelled with RESOURCE_EXHAUSTED (a stream, which waits for
 * credit at the agent, is the way to send more).
 */
export function callAsStream(
  reach: Pick<Reach, "start">,
  agent: string,
  method: string,
  request: unknown,
  options: StreamOptions,
  limits: DecodeLimits,
): MusterStream<unknown> | undefined {
  const held = Math.max(Math.floor(options.windowBytes ?? DEFAULT_STREAM_WINDOW), CALL_ITEMS_HELD_BYTES);
  let handle: CallHandle | undefined;
  let receivedCost = 0;
  let granted = 0;
  const host: StreamHost = {
    _credit: (_id, bytes) => {
      granted += bytes;
    },
    _cancelStream: () =>
      handle?.cancel(new MusterError(ErrorCode.CANCELLED, `call ${method} cancelled by the reading server`)),
    _flowControlBroken: () => {},
    _decode: (p) => decodeValue(p, limits),
  };
  const s = new MusterStream<unknown>(method, host, held);
  // A call always has a deadline (the origin sends it); muster's default call timeout else.
  const timeoutMs = options.timeoutMs ?? 10_000;
  handle = reach.start(
    agent,
    method,
    encodeValue(request),
    timeoutMs,
    {
      onItem: (p) => {
        if (s.ended) return;
        // The stream's own rule (window + credit granted), checked first to fail with a reason.
        if (receivedCost >= held + granted) {
          handle?.cancel(
            new MusterError(
              ErrorCode.RESOURCE_EXHAUSTED,
              `call ${method} of agent ${agent}: its partial results came faster than they crossed to the calling server (more than ${held} bytes waiting); send them as a stream (openStream), which waits for the reader`,
              { details: { lastReceived: s.received } },
            ),
          );
          return;
        }
        receivedCost += itemCost(p.bytes.length);
        s._item(p);
      },
      onSettle: (err, p) => s._settle(err, p),
    },
    options.origin,
  );
  return handle === undefined ? undefined : s;
}
