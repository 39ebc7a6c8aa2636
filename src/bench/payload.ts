import type { BenchPayload } from "./types.js";

const fills = new Map<number, string>();

/** A request payload: `i` and an ASCII string of exactly `size` bytes (built once per size). */
export function makePayload(i: number, size: number): BenchPayload {
  let data = fills.get(size);
  if (data === undefined) {
    const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    data = "";
    for (let k = 0; k < size; k++) data += alphabet[k % alphabet.length];
    fills.set(size, data);
  }
  return { i, data };
}

/**
 * Throws unless `reply` is the payload that was sent: a fast wrong answer must not score.
 * Compares `i` and the whole data string.
 */
export function checkReply(reply: unknown, sent: BenchPayload): void {
  const r = reply as Partial<BenchPayload> | null;
  if (r === null || typeof r !== "object" || r.i !== sent.i || r.data !== sent.data) {
    const shown = JSON.stringify(reply);
    throw new Error(
      `wrong reply to request ${sent.i}: ${shown === undefined ? String(reply) : shown.slice(0, 80)}`,
    );
  }
}
