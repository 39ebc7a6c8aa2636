// The numbers service over muster streams: the server serves stream "numbers". Each session
// (a uuid) has a fixed, seekable sequence of n numbers; the stream's result is the checksum of
// all n. A reader that lost its session reopens the stream with `from` = the items it has.
//
//   node dist/examples/numbers/server.js --listen tcp://127.0.0.1:7000 [--tick 10ms]

import { parseArgs } from "node:util";
import { createServer, ErrorCode, MusterError, type StreamContext } from "../../src/index.js";
import { checksumAt, MAX_N, sessionSeed, valueAt } from "../../src/numbers/sequence.js";

export interface NumbersRequest {
  uuid: string;
  n: number;
  /** Items the reader already has: the stream starts with item from + 1. @default 0 */
  from?: number;
}

export interface NumbersResult {
  count: number;
  checksum: number;
}

/** The stream handler: value k of the session for k = from + 1 … n, then the checksum. */
export async function* numbers(req: NumbersRequest, ctx: StreamContext, tickMs = 0) {
  const uuid = typeof req?.uuid === "string" ? req.uuid.toLowerCase() : "";
  let seed: bigint;
  try {
    seed = sessionSeed(uuid);
  } catch {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `uuid must be a canonical uuid, got ${JSON.stringify(req?.uuid)}`,
    );
  }
  const n = req.n;
  if (!Number.isInteger(n) || n < 1 || n > MAX_N)
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `n must be an integer in 1…${MAX_N}, got ${n}`);
  const from = req.from ?? 0;
  if (!Number.isInteger(from) || from < 0 || from > n)
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `from must be an integer in 0…${n}, got ${from}`);
  for (let k = from + 1; k <= n; k++) {
    if (tickMs > 0) await new Promise((r) => setTimeout(r, tickMs));
    if (ctx.signal.aborted) return undefined;
    yield valueAt(seed, k);
  }
  return { count: n, checksum: checksumAt(seed, n) } satisfies NumbersResult;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      listen: { type: "string", default: "tcp://127.0.0.1:7000" },
      tick: { type: "string", default: "0" },
    },
  });
  const tickMs = Number.parseInt(values.tick!, 10);
  if (!(tickMs >= 0)) {
    process.stderr.write(`--tick must be a number of milliseconds, got ${values.tick}\n`);
    process.exit(2);
  }
  const server = createServer({ listen: [values.listen!], standalone: true });
  server.handleStream("numbers", (req: NumbersRequest, ctx: StreamContext) => numbers(req, ctx, tickMs));
  await server.start();
  process.stdout.write(`numbers server listening on ${server.listeners[0]!.url}\n`);
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
