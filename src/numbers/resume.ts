/**
 * Where a stateful session resumes on CONTINUE. The server knows how many messages it sent
 * (`sentCount`, stored before each send, so it is never behind what the client got); the
 * client's position is therefore at most `sentCount`.
 *
 * The seed's form names the last value received. The Go server searched forward and stopped
 * at the first match, so a value that had occurred earlier rolled the client back. Here the
 * search goes backward from `sentCount` and takes the largest matching position: a client
 * misses at most the few messages in flight at the drop, so the match nearest the end is the
 * right one unless a value repeats within those few (about window/2^32). The explicit form
 * `@<position>` removes even that doubt.
 */
import { addToChecksum, CHECKSUM_MOD, removeFromChecksum } from "./sequence.js";

export interface ResumeState {
  n: number;
  /** Messages sent: 0..n+1 (n+1 once the checksum message went out). */
  sentCount: number;
  /** The checksum over values 1..min(sentCount, n). */
  checksum: number;
}

export type ResumeRequest = { last: number } | { position: number } | { legacy: true };

export type Resolved = { ok: true; position: number; checksum: number } | { ok: false; error: string };

/** The checksum over values 1..p (p ≤ sentCount), walking from whichever end is nearer. */
export function checksumUpTo(state: ResumeState, value: (k: number) => number, p: number): number {
  const top = Math.min(state.sentCount, state.n);
  const target = Math.min(p, state.n);
  let c: number;
  if (top - target <= target) {
    c = state.checksum;
    for (let k = top; k > target; k--) c = removeFromChecksum(c, value(k));
  } else {
    c = 0;
    for (let k = 1; k <= target; k++) c = addToChecksum(c, value(k));
  }
  return c % CHECKSUM_MOD;
}

/** Resolves a CONTINUE against a session's state; `value(k)` is the session's k-th value. */
export function resolveResume(
  state: ResumeState,
  value: (k: number) => number,
  request: ResumeRequest,
  uuid: string,
): Resolved {
  if ("legacy" in request) return { ok: true, position: state.sentCount, checksum: state.checksum };
  if ("position" in request) {
    const p = request.position;
    if (p > state.sentCount)
      return {
        ok: false,
        error: `wrong position: @${p} is beyond the ${state.sentCount} messages sent to session ${uuid}`,
      };
    return { ok: true, position: p, checksum: checksumUpTo(state, value, p) };
  }
  const last = request.last;
  // The client got everything, the checksum message included.
  if (state.sentCount === state.n + 1 && last === state.checksum)
    return { ok: true, position: state.n + 1, checksum: state.checksum };
  let c = state.checksum;
  for (let k = Math.min(state.sentCount, state.n); k >= 1; k--) {
    const v = value(k);
    if (v === last) return { ok: true, position: k, checksum: c };
    c = removeFromChecksum(c, v);
  }
  // Nothing received yet: the seed's client never sends this, muster's does.
  if (last === 0) return { ok: true, position: 0, checksum: 0 };
  return {
    ok: false,
    error: `wrong last number: ${last} is not among the ${Math.min(state.sentCount, state.n)} numbers sent to session ${uuid}`,
  };
}
