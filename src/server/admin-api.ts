import { type AdminRequest, fail, intParam, json, quote, readJsonRequest } from "./admin-http.js";

/** Agent states `?state=` accepts (besides any state an agent is in now). */
export const AGENT_STATES = ["connected", "suspect", "resuming", "pending", "offline"] as const;

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** `GET /api/agents`: a page of agents sorted by name, with counts by state over all of them. */
export function listAgents(c: AdminRequest): void {
  const limit = intParam(c, "limit", 1, 1000, 100);
  if (limit === undefined) return;
  const after = c.query.get("after");
  if (after === "") {
    fail(c.res, 400, "invalid_argument", "after must be an agent name (the next of the previous page)");
    return;
  }
  const all = c.host.agents();
  // A Map, not an object: `?state=constructor` must not find Object.prototype's.
  const counts = new Map<string, number>(AGENT_STATES.map((s) => [s, 0]));
  for (const a of all) counts.set(a.state, (counts.get(a.state) ?? 0) + 1);
  let matching = all;
  const stateText = c.query.get("state");
  if (stateText !== null) {
    const wanted = new Set(stateText.split(",").map((s) => s.trim()));
    const unknown = [...wanted].filter((s) => !counts.has(s));
    if (unknown.length > 0 || wanted.size === 0) {
      fail(
        c.res,
        400,
        "invalid_argument",
        `state ${quote(unknown[0] ?? stateText)} is not one of ${[...counts.keys()].join(", ")}`,
      );
      return;
    }
    matching = all.filter((a) => wanted.has(a.state));
  }
  const sorted = [...matching].sort(byName);
  const start = after === null ? 0 : firstAfter(sorted, after);
  const page = sorted.slice(start, start + limit);
  const body: Record<string, unknown> = {
    agents: page,
    total: matching.length,
    counts: Object.fromEntries(counts),
  };
  if (start + limit < sorted.length) body.next = page[page.length - 1]!.name;
  json(c.res, 200, body);
}

/** The index of the first agent whose name sorts after `name` (binary search). */
function firstAfter(sorted: readonly { name: string }[], name: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]!.name <= name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** `PUT /api/flags`: the body is read only now, after authentication. */
export async function setFlags(c: AdminRequest): Promise<void> {
  const parsed = await readJsonRequest(c);
  if (!parsed.ok) return;
  const patch = parsed.value;
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
    fail(
      c.res,
      400,
      "invalid_argument",
      'the body must be a JSON object of flags, e.g. {"log-level":"debug"}',
    );
    return;
  }
  // RuntimeFlags logs each change with who made it.
  json(c.res, 200, { flags: c.host.flags.set(patch as Record<string, unknown>, c.who!.subject) });
}

/** `DELETE /api/caches[/:name]`; an unknown name is the host's NOT_FOUND, a 404. */
export function clearCaches(c: AdminRequest): void {
  json(c.res, 200, { cleared: c.host.clearCache(c.param === "" ? undefined : c.param, c.who!) });
}
