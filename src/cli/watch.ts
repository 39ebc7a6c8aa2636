import { setTimeout as sleep } from "node:timers/promises";
import { MusterError } from "../errors/muster-error.js";
import type { MusterOperator } from "../operator/create-operator.js";
import type { AgentInfo, AgentState } from "../presence/presence.js";
import { EXIT, stdoutGone } from "./common.js";
import { agentAddress, agentColumns, isoSeconds, labelsText } from "./listings.js";
import { type OutputFormat, printListing, renderData } from "./output.js";

/*
 * `muster agents --watch`: the list once, then one line per change until Ctrl-C or until
 * standard output's reader goes away. Changes come live from the server's `muster.watch`
 * stream (cluster-wide on a server of a cluster); a server of an earlier version has none, and
 * the list is then read again every WATCH_POLL_MS and compared with the last one (a change
 * that comes and goes between two reads is not seen).
 */

/** How often the list is read again from a server without `muster.watch`. */
export const WATCH_POLL_MS = 1000;

/**
 * A change seen between two reads of the list: `listed` (in the first read, with -o json and
 * yaml), `join` (a name not listed before), `state` (its state changed), `session` (a new
 * session under the same name and state: the agent restarted, or moved to another server),
 * `gone` (no longer listed).
 */
export interface WatchEvent {
  event: "listed" | "join" | "state" | "session" | "gone";
  /** When the change was seen (ISO 8601). */
  at: string;
  agent: AgentInfo;
  /** `state`: the state before. */
  from?: AgentState;
}

const byName = (a: AgentInfo, b: AgentInfo): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** What changed from `before` (by name) to `after`, in name order. */
export function diffAgents(
  before: ReadonlyMap<string, AgentInfo>,
  after: readonly AgentInfo[],
  now: number,
): WatchEvent[] {
  const at = new Date(now).toISOString();
  const out: WatchEvent[] = [];
  const seen = new Set<string>();
  for (const agent of after) {
    seen.add(agent.name);
    const was = before.get(agent.name);
    if (was === undefined) out.push({ event: "join", at, agent });
    else if (was.state !== agent.state) out.push({ event: "state", at, agent, from: was.state });
    else if (was.sessionId !== agent.sessionId || was.server !== agent.server)
      out.push({ event: "session", at, agent });
  }
  for (const [name, agent] of before) if (!seen.has(name)) out.push({ event: "gone", at, agent });
  return out.sort((a, b) => byName(a.agent, b.agent));
}

/** A change as one line of text: `2026-11-21T17:40:09Z  web-2  connected → suspect`. */
export function watchLine(e: WatchEvent): string {
  const a = e.agent;
  const where = [labelsText(a.labels), agentAddress(a), a.server ?? "-"].filter((s) => s !== "-").join(", ");
  const reason =
    (a.state === "resuming" || a.state === "offline") && a.disconnectReason !== undefined
      ? `: ${a.disconnectReason}`
      : "";
  let what: string;
  switch (e.event) {
    case "listed":
    case "join":
      what = `${e.event === "join" ? "joined" : "listed"}, ${a.state}${where === "" ? "" : ` (${where})`}`;
      break;
    case "state":
      what = `${e.from} → ${a.state}${reason}`;
      break;
    case "session":
      what = `new session, ${a.state}${where === "" ? "" : ` (${where})`}`;
      break;
    case "gone":
      what = `no longer listed (was ${a.state})`;
      break;
  }
  return `${isoSeconds(Date.parse(e.at))}  ${a.name}  ${what}`;
}

/** Writes `text`; waits while a slow reader has not taken the last write. */
async function write(text: string): Promise<void> {
  if (process.stdout.write(text)) return;
  await new Promise<void>((resolve) => {
    process.stdout.once("drain", resolve);
    stdoutGone.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** A change as `format` prints it: a line of text, a JSON line, or a YAML document. */
function render(format: OutputFormat, e: WatchEvent): string {
  if (format === "json") return renderData("json", e);
  if (format === "yaml") return `---\n${renderData("yaml", e)}`;
  return `${watchLine(e)}\n`;
}

/**
 * Prints the changes the server's `muster.watch` stream reports, against `known` (updated),
 * until `stop`. False when the server has no such stream (an earlier version): poll instead.
 */
async function followStream(
  op: MusterOperator,
  known: Map<string, AgentInfo>,
  format: OutputFormat,
  stop: AbortSignal,
): Promise<boolean> {
  const stream = op.watchAgents();
  const onStop = (): void => stream.cancel();
  stop.addEventListener("abort", onStop, { once: true });
  let listed = false;
  const fresh = new Map<string, AgentInfo>();
  try {
    for await (const item of stream) {
      if (item.type === "agents") {
        // The list as the stream starts: what changed since the first read is a change too.
        for (const a of item.agents) fresh.set(a.name, a);
        if (item.more === true) continue;
        listed = true;
        for (const e of diffAgents(known, [...fresh.values()], Date.now())) await write(render(format, e));
        known.clear();
        for (const [name, a] of fresh) known.set(name, a);
        continue;
      }
      if (!listed) continue;
      const name = item.type === "agent" ? item.agent.name : item.name;
      const before = new Map<string, AgentInfo>();
      const was = known.get(name);
      if (was !== undefined) before.set(name, was);
      const now = item.type === "agent" ? [item.agent] : [];
      for (const e of diffAgents(before, now, Date.now())) await write(render(format, e));
      if (item.type === "agent") known.set(name, item.agent);
      else known.delete(name);
    }
    return true;
  } catch (err) {
    if (stop.aborted) return true;
    const e = MusterError.from(err);
    if (e.code === "UNIMPLEMENTED" && !listed) return false;
    throw err;
  } finally {
    stop.removeEventListener("abort", onStop);
  }
}

/**
 * Prints `first` (the list as read), then every change until SIGINT, SIGTERM or a closed
 * standard output (exit status 0), or until the list cannot be read (3 when the link to the
 * server is lost, else 1).
 */
export async function watchAgents(
  op: MusterOperator,
  first: AgentInfo[],
  format: OutputFormat,
  pollMs = WATCH_POLL_MS,
): Promise<number> {
  const stop = new AbortController();
  const onStop = (): void => stop.abort();
  process.once("SIGINT", onStop);
  process.once("SIGTERM", onStop);
  stdoutGone.addEventListener("abort", onStop, { once: true });
  try {
    if (format === "text" || format === "wide") {
      if (first.length === 0) await write("no agents yet: waiting for changes\n");
      else printListing(format, { rows: first, columns: agentColumns(first) });
    } else {
      const at = new Date().toISOString();
      for (const agent of first) await write(render(format, { event: "listed", at, agent }));
    }
    let known = new Map(first.map((a) => [a.name, a]));
    if (await followStream(op, known, format, stop.signal)) return EXIT.OK;
    while (!stop.signal.aborted) {
      try {
        await sleep(pollMs, undefined, { signal: stop.signal });
      } catch {
        break; // stopped
      }
      const list = await op.agents();
      if (stop.signal.aborted) break;
      for (const e of diffAgents(known, list, Date.now())) await write(render(format, e));
      known = new Map(list.map((a) => [a.name, a]));
    }
    return EXIT.OK;
  } catch (err) {
    if (stop.signal.aborted) return EXIT.OK;
    const e = MusterError.from(err);
    process.stderr.write(`muster: watch ended: ${e.message}\n`);
    return e.code === "UNAVAILABLE" ? EXIT.UNREACHABLE : EXIT.FAILED;
  } finally {
    process.off("SIGINT", onStop);
    process.off("SIGTERM", onStop);
    stdoutGone.removeEventListener("abort", onStop);
  }
}
