import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import type { AgentInfo } from "../presence/presence.js";

/** Request of `muster.agents`: none (the first page), or where to go on from and how many. */
export interface AgentsPageRequest {
  /** The `next` of the previous page: agents whose names sort after it. */
  after?: string;
  /** Agents in the page, 1 to 1000. @default 100 */
  limit?: number;
}

/** Answer of `muster.agents`: agents by name; `next` when more follow (give it as `after`). */
export interface AgentsPage {
  agents: AgentInfo[];
  /** Known agents in all (live, pending and recently offline). */
  total: number;
  next?: string;
}

/** Bytes a page's frame needs besides its agents: header, `next`, `total`, punctuation. */
const PAGE_OVERHEAD_BYTES = 1024;

function invalid(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

/** The request as given, checked; INVALID_ARGUMENT says what is wrong. */
export function checkPageRequest(req: unknown): { after: string | undefined; limit: number } {
  if (req === undefined || req === null) return { after: undefined, limit: DEFAULTS.agentsPageSize };
  if (typeof req !== "object" || Array.isArray(req))
    throw invalid("muster.agents takes nothing, or {after?, limit?}");
  const r = req as Record<string, unknown>;
  if (r.after !== undefined && (typeof r.after !== "string" || r.after === ""))
    throw invalid("muster.agents: after must be an agent name (the next of the previous page)");
  const max = DEFAULTS.agentsPageMaxSize;
  if (
    r.limit !== undefined &&
    !(Number.isInteger(r.limit) && (r.limit as number) >= 1 && (r.limit as number) <= max)
  )
    throw invalid(`muster.agents: limit must be a whole number from 1 to ${max}`);
  return {
    after: r.after as string | undefined,
    limit: (r.limit as number | undefined) ?? DEFAULTS.agentsPageSize,
  };
}

/**
 * One page of `all`, sorted by name: at most `limit` agents, and no more than fit in a frame of
 * `maxFrameBytes` (a page holds at least one agent). Agents of the same name (an offline one
 * and a pending request) never straddle two pages, so `after` loses none.
 */
export function agentsPage(all: readonly AgentInfo[], req: unknown, maxFrameBytes: number): AgentsPage {
  const { after, limit } = checkPageRequest(req);
  const sorted = [...all].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let start = 0;
  if (after !== undefined) {
    let hi = sorted.length;
    while (start < hi) {
      const mid = (start + hi) >>> 1;
      if (sorted[mid]!.name <= after) start = mid + 1;
      else hi = mid;
    }
  }
  const budget = maxFrameBytes - PAGE_OVERHEAD_BYTES;
  let end = start;
  let bytes = 0;
  while (end < sorted.length && end - start < limit) {
    const cost = Buffer.byteLength(JSON.stringify(sorted[end])) + 1;
    if (end > start && bytes + cost > budget) break;
    bytes += cost;
    end++;
  }
  // Do not cut between agents of one name: `after` would skip the rest of them.
  if (end < sorted.length && end > start + 1) {
    let cut = end;
    while (cut > start + 1 && sorted[cut - 1]!.name === sorted[cut]!.name) cut--;
    if (sorted[cut - 1]!.name !== sorted[cut]!.name) end = cut;
  }
  const page: AgentsPage = { agents: sorted.slice(start, end), total: all.length };
  if (end < sorted.length) page.next = sorted[end - 1]!.name;
  return page;
}
