import type { AgentInfo } from "../presence/presence.js";
import type { StreamContext, StreamHandler } from "../rpc/stream.js";

/**
 * Items of the operator stream `muster.watch`: the list first, in as many `agents` items as it
 * takes to fit the operator's frames (the last one without `more`), then one item per agent
 * whose listing changed — its whole row, or `gone` when it is no longer listed.
 */
export type WatchItem =
  | { type: "agents"; agents: AgentInfo[]; more?: true }
  | { type: "agent"; agent: AgentInfo }
  | { type: "gone"; name: string };

/** What the stream reads from its server. */
export interface WatchHost {
  agents(): AgentInfo[];
  agent(name: string): AgentInfo | undefined;
  /** Calls `fn` with the name of each agent whose listing may have changed; returns the unsubscribe. */
  watchAgents(fn: (name: string) => void): () => void;
  /** Largest frame an operator accepts. */
  readonly maxFrameBytes: number;
}

/** Bytes of a frame besides the rows: header, item fields, punctuation. */
const OVERHEAD_BYTES = 1024;

/**
 * `muster.watch`: the agents, then their changes as they happen, cluster-wide on a server of a
 * cluster. Flow control holds: while the operator reads slowly, changes wait as the names of
 * the agents that changed (one entry per agent however often it changes; the latest row is
 * sent), so a watch costs its server at most one name per agent of the fleet.
 */
export function watchAgentsStream(host: WatchHost): StreamHandler {
  return async function* (_req: unknown, ctx: StreamContext) {
    const changed = new Set<string>();
    let wake: (() => void) | undefined;
    const off = host.watchAgents((name) => {
      changed.add(name);
      const w = wake;
      wake = undefined;
      w?.();
    });
    const onAbort = (): void => wake?.();
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    try {
      yield* snapshot(host.agents(), host.maxFrameBytes - OVERHEAD_BYTES);
      while (!ctx.signal.aborted) {
        if (changed.size === 0) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          continue;
        }
        const names = [...changed];
        changed.clear();
        for (const name of names) {
          const agent = host.agent(name);
          yield agent === undefined ? { type: "gone", name } : { type: "agent", agent };
        }
      }
    } finally {
      off();
      ctx.signal.removeEventListener("abort", onAbort);
    }
  };
}

/** The list in items that each fit `budget` bytes of JSON (a row larger than that goes alone). */
function* snapshot(agents: AgentInfo[], budget: number): Generator<WatchItem> {
  let chunk: AgentInfo[] = [];
  let bytes = 0;
  for (const a of agents) {
    const cost = Buffer.byteLength(JSON.stringify(a)) + 1;
    if (chunk.length > 0 && bytes + cost > budget) {
      yield { type: "agents", agents: chunk, more: true };
      chunk = [];
      bytes = 0;
    }
    chunk.push(a);
    bytes += cost;
  }
  yield { type: "agents", agents: chunk };
}
