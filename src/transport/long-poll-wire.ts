import { LENGTH_PREFIX_BYTES } from "../wire/length-prefix.js";

/**
 * HTTP long-polling, the shape of Engine.IO's polling transport with muster's binary frames:
 *
 * - `POST <base>/muster/poll` (no body) opens a link: 200 with JSON `{sid, pollMs, maxBodyBytes}`.
 * - `GET …?sid=S&seen=N` is held until the server has frames or `pollMs` passes; its body is a
 *   batch of length-prefixed frames (u32 big-endian length, then the frame: tcp's framing, no
 *   base64) numbered in the `muster-batch` header. N is the number of the last batch the client
 *   read whole: the server keeps that batch until a GET acknowledges it, and sends it again to a
 *   GET that says it was lost — a retried GET loses nothing.
 * - `POST …?sid=S&n=K` carries batch K of the client's frames; a K already received is answered
 *   200 and ignored — a retried POST repeats nothing.
 * - `DELETE …?sid=S` closes the link. A GET answered with `muster-closed: <code>` is the server's
 *   last: its frames, then the link is closed.
 *
 * At most one GET and one POST at a time: an overlapping one is answered 400 and closes the link;
 * a body over `maxBodyBytes` is answered 413 and closes it too. Unknown sid: 400.
 */
export const POLL_PATH = "muster/poll";
export const BATCH_HEADER = "muster-batch";
export const CLOSED_HEADER = "muster-closed";

/** How long a GET is held with nothing to send. @default 20 s */
export const DEFAULT_POLL_MS = 20_000;

/** The largest body of a batch: one frame at the limit, or many smaller ones. */
export function maxBodyBytes(maxFrameBytes: number): number {
  return maxFrameBytes + LENGTH_PREFIX_BYTES;
}

/** What the open request answers. */
export interface PollOpen {
  sid: string;
  pollMs: number;
  maxBodyBytes: number;
}

/**
 * Takes frames from `queue` (in order) into one body of length-prefixed frames, at most
 * `limit` bytes unless the first frame alone is bigger. Returns the body and how many frames it
 * took.
 */
export function takeBatch(queue: readonly Uint8Array[], limit: number): { body: Buffer; count: number } {
  let size = 0;
  let count = 0;
  for (const f of queue) {
    const next = size + LENGTH_PREFIX_BYTES + f.length;
    if (count > 0 && next > limit) break;
    size = next;
    count++;
  }
  const body = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const f = queue[i]!;
    body.writeUInt32BE(f.length, at);
    body.set(f, at + LENGTH_PREFIX_BYTES);
    at += LENGTH_PREFIX_BYTES + f.length;
  }
  return { body, count };
}
