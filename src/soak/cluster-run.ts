// A soak run over a cluster: several servers sharing one fleet over a real nats-server, each
// behind its own fault-injecting proxy (and announcing the proxy's URL, so that agents moving
// between servers go through faults too). The first server fans out to the whole cluster and
// streams from its agents; every agent calls the server it is on. A third of the way through
// the faults, the second server is killed (SIGKILL) and started again; two thirds of the way,
// the third drains (handing its sessions over) and is started again. The checks then allow
// exactly what a crash may cost — the sessions of the killed server expire, and only the calls
// of its agents may fail — and nothing else: no call settled twice or wrongly, no message
// taken twice, no session of the drained server lost.

import { type NatsServer, startNatsServer } from "../../test/support/nats-server.js";
import { Child } from "../bench/ipc.js";
import type { DrainResult } from "../server/lifecycle.js";
import type { CallCounts, SeqCounts } from "./child.js";
import { SOAK_CHILD } from "./child.js";
import {
  type AgentStats,
  mib,
  type ServerStats,
  type SoakCheck,
  type SoakOptions,
  type SoakReport,
  startAgentProcesses,
  sumCalls,
  sumSeq,
} from "./run.js";

/** What a cluster soak adds to the report. */
export interface ClusterSoakReport {
  servers: number;
  /** The server killed, and how many agents it held then. */
  killed: { server: string; agents: number };
  /** The server drained, how many agents it held when it began, and its drain's result. */
  drained: { server: string; agents: number; result: DrainResult | undefined };
  /** Agents whose session expired (all must have been on the killed server). */
  expiredAgents: number;
}

type ClusterAgentStats = AgentStats & {
  expired: Record<string, number>;
  failedCalls: Record<string, number>;
  downAnomalies: Record<string, { duplicated: number; outOfOrder: number }>;
};
type ClusterServerStats = ServerStats & { failedTo: Record<string, number> };

interface Slot {
  name: string;
  child: Child;
  port: number;
  proxy: Child;
  proxyPort: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs a soak over `o.servers` servers (at least 3); `report.ok` is false when a check failed. */
export async function runClusterSoak(o: SoakOptions & { servers: number }): Promise<SoakReport> {
  if (o.servers < 3)
    throw new RangeError("a cluster soak needs at least 3 servers (one fans out, one killed, one drained)");
  let nats: NatsServer | undefined;
  const slots: Slot[] = [];
  const procs: Child[] = [];
  const retired: Child[] = [];
  const settleMs = o.callTimeoutMs + 30_000;
  const startArgs = { heartbeatMs: o.heartbeatMs, deadAfterMs: o.deadAfterMs };
  try {
    nats = await startNatsServer();
    const startServer = async (
      name: string,
      proxyPort: number,
      port = 0,
    ): Promise<{ child: Child; port: number }> => {
      const child = new Child(SOAK_CHILD, ["server"]);
      const r = await child.request<{ port: number }>(
        "start",
        {
          ...startArgs,
          port,
          cluster: { nats: nats!.url, server: name, advertise: `tcp://127.0.0.1:${proxyPort}` },
        },
        30_000,
      );
      return { child, port: r.port };
    };
    for (let k = 0; k < o.servers; k++) {
      const name = `s${k + 1}`;
      // The proxy first (its port is what the server announces), aimed at the server once it listens.
      const proxy = new Child(SOAK_CHILD, ["proxy"]);
      const p = await proxy.request<{ port: number }>("start", {
        targetPort: 1,
        seed: (o.seed + k) >>> 0,
        latencyMs: o.latencyMs,
        jitterMs: o.jitterMs,
      });
      const s = await startServer(name, p.port);
      await proxy.request("retarget", { port: s.port });
      slots.push({ name, child: s.child, port: s.port, proxy, proxyPort: p.port });
    }
    const urls = slots.map((s) => `tcp://127.0.0.1:${s.proxyPort}`);
    o.log(
      `soak: seed ${o.seed}, ${o.servers} servers over ${nats.url}, ${o.agents} agents in ${o.processes} processes, ${o.durationMs} ms of faults`,
    );
    await startAgentProcesses(o, urls, procs);
    const [caller, victim, drained] = slots as [Slot, Slot, Slot];
    await caller.child.request("waitAgents", { n: o.agents, timeoutMs: 60_000 }, 70_000);
    o.log("soak: all agents connected; traffic and faults start");
    await caller.child.request("run", {
      size: o.size,
      fanoutEveryMs: o.fanoutEveryMs,
      callTimeoutMs: o.callTimeoutMs,
    });
    await Promise.all(
      procs.map((c) =>
        c.request("run", { callEveryMs: o.callEveryMs, size: o.size, callTimeoutMs: o.callTimeoutMs }),
      ),
    );
    const warmup = Math.min(10_000, o.durationMs / 5);
    await sleep(warmup);
    for (const s of slots) await s.proxy.request("faults", { random: o.faults });
    await caller.child.request("heapStart");
    const t0 = Date.now();

    // A third of the way: the second server crashes, and is started again on its port.
    await sleep(o.durationMs / 3);
    const killedAgents = await victim.child.request<string[]>("localAgents");
    o.log(`soak: killing ${victim.name} (SIGKILL), holding ${killedAgents.length} agents`);
    await victim.child.kill();
    await sleep(2000);
    victim.child = (await startServer(victim.name, victim.proxyPort, victim.port)).child;
    o.log(`soak: ${victim.name} started again`);

    // Two thirds of the way: the third server drains, handing its sessions over.
    await sleep(Math.max(0, t0 + (2 * o.durationMs) / 3 - Date.now()));
    const drainedAgents = await drained.child.request<string[]>("localAgents");
    o.log(`soak: draining ${drained.name}, holding ${drainedAgents.length} agents`);
    const drainResult = await drained.child.request<DrainResult>("drain", {}, 60_000).catch((err: Error) => {
      o.log(`soak: the drain of ${drained.name} failed: ${err.message}`);
      return undefined;
    });
    const drainedRecords = await drained.child.request<Record<string, number[]>>("received");
    retired.push(drained.child);
    drained.child = (await startServer(drained.name, drained.proxyPort, drained.port)).child;
    o.log(`soak: ${drained.name} drained (${JSON.stringify(drainResult)}) and started again`);
    await sleep(Math.max(0, t0 + o.durationMs - Date.now()));

    o.log("soak: faults stop; waiting for every call to settle");
    for (const s of slots) await s.proxy.request("quiet");
    await Promise.all(procs.map((c) => c.request("stop", {}, settleMs)));
    await caller.child.request("stop", {}, settleMs);

    const proxyStats = await Promise.all(
      slots.map((s) =>
        s.proxy.request<{
          stats: { faults: Record<string, number>; bytes: { toTarget: number; toClient: number } };
        }>("stats"),
      ),
    );
    const ss = await caller.child.request<ClusterServerStats>("stats", {}, 30_000);
    const as = await Promise.all(procs.map((c) => c.request<ClusterAgentStats>("stats")));
    const records = [
      drainedRecords,
      ...(await Promise.all(slots.map((s) => s.child.request<Record<string, number[]>>("received")))),
    ];
    const up = sumCalls(as.map((a) => a.up));
    const down = sumSeq(as.map((a) => a.down));
    const events: Record<string, number> = {};
    for (const a of as) for (const [k, v] of Object.entries(a.events)) events[k] = (events[k] ?? 0) + v;
    const merge = (pick: (a: ClusterAgentStats) => Record<string, unknown>): string[] =>
      as.flatMap((a) => Object.keys(pick(a)));
    const expired = new Map<string, number>();
    for (const a of as)
      for (const [k, v] of Object.entries(a.expired)) expired.set(k, (expired.get(k) ?? 0) + v);
    const killed = new Set(killedAgents);
    const outside = (names: Iterable<string>): string[] => [...names].filter((n) => !killed.has(n));

    const checks: SoakCheck[] = [];
    const check = (name: string, ok: boolean, detail: string): void => {
      checks.push({ name, ok, detail });
    };
    const faults: Record<string, number> = {};
    for (const p of proxyStats)
      for (const [k, v] of Object.entries(p.stats.faults)) faults[k] = (faults[k] ?? 0) + v;
    const injected = Object.values(faults).reduce((a, b) => a + b, 0);
    check("faults were injected", injected > 0, `${injected} faults over ${slots.length} proxies`);
    check("the killed server held agents", killed.size > 0, `${victim.name} held ${killed.size} agents`);
    check(
      "agent → server: every call settled exactly once, never with a wrong result",
      up.started > 0 && up.settled === up.started && up.twice === 0 && up.wrong === 0,
      `${up.started} started, ${up.settled} settled, ${up.ok} ok, ${up.twice} twice, ${up.wrong} wrong, errors ${JSON.stringify(up.errors)}`,
    );
    const upFailedOutside = outside(merge((a) => a.failedCalls));
    check(
      "agent → server: calls failed only on agents of the killed server",
      upFailedOutside.length === 0,
      upFailedOutside.length === 0
        ? `${up.started - up.ok} failed, all there`
        : `also on ${upFailedOutside.slice(0, 5).join(", ")}`,
    );
    check(
      "agent → server: no call taken by two servers, or twice by one",
      duplicates(records) === 0,
      `${duplicates(records)} taken twice (the killed server's own record is lost with it)`,
    );
    const failedTo = Object.keys(ss.failedTo);
    check(
      "server → agent: every fan-out call and stream settled exactly once, never with a wrong result",
      ss.down.started > 0 &&
        ss.down.settled === ss.down.started &&
        ss.down.wrong === 0 &&
        ss.streams.started > 0 &&
        ss.streams.settled === ss.streams.started &&
        ss.streams.twice === 0 &&
        ss.streams.wrong === 0 &&
        ss.streamItemsBad === 0,
      `${ss.rounds} rounds, ${ss.down.started} calls, ${ss.down.ok} ok, ${ss.down.wrong} wrong, errors ${JSON.stringify(ss.down.errors)}; ${ss.streams.started} streams, ${ss.streams.ok} complete, errors ${JSON.stringify(ss.streams.errors)}`,
    );
    check(
      "server → agent: calls and streams failed only to agents of the killed server",
      outside(failedTo).length === 0,
      outside(failedTo).length === 0
        ? `failed to ${failedTo.length} agents, all there`
        : `also to ${outside(failedTo).slice(0, 5).join(", ")}`,
    );
    const reorder = as.flatMap((a) => Object.entries(a.downAnomalies));
    const twice = reorder.filter(([, v]) => v.duplicated > 0).map(([k]) => k);
    const gaps = outside(reorder.filter(([, v]) => v.outOfOrder > 0).map(([k]) => k));
    check(
      "server → agent: no round received twice; rounds missing or late only at agents of the killed server",
      down.duplicated === 0 && twice.length === 0 && gaps.length === 0,
      `${down.received} received, ${down.duplicated} twice${twice.length > 0 ? ` (${twice.slice(0, 5).join(", ")})` : ""}, missing or late elsewhere: ${gaps.length}${gaps.length > 0 ? ` (${gaps.slice(0, 5).join(", ")})` : ""}`,
    );
    const expiredOutside = outside(expired.keys());
    const expiredTwice = [...expired].filter(([, n]) => n > 1).map(([k]) => k);
    check(
      "sessions expired only on the killed server, once each; the drained server's were all taken over",
      expiredOutside.length === 0 && expiredTwice.length === 0,
      `${expired.size} expired (${killed.size} on ${victim.name})${expiredOutside.length > 0 ? `; also ${expiredOutside.slice(0, 5).join(", ")}` : ""}${expiredTwice.length > 0 ? `; twice: ${expiredTwice.slice(0, 5).join(", ")}` : ""}`,
    );
    check(
      "the drain handed every session over",
      drainResult?.handoff !== undefined && drainResult.handoff.left === 0,
      `${drained.name}: ${JSON.stringify(drainResult)}`,
    );
    check(
      "memory of the fanning-out server bounded after warm-up",
      ss.heap.end <= ss.heap.start * 1.5 + 16 * 1024 * 1024,
      `heap ${mib(ss.heap.start)} MiB at start, ${mib(ss.heap.peak)} peak, ${mib(ss.heap.end)} at the end`,
    );

    return {
      seed: o.seed,
      options: { ...o, log: undefined } as unknown as SoakReport["options"],
      faults,
      bytes: {
        toServer: proxyStats.reduce((n, p) => n + p.stats.bytes.toTarget, 0),
        toAgents: proxyStats.reduce((n, p) => n + p.stats.bytes.toClient, 0),
      },
      agentToServer: {
        calls: up,
        received: {
          received: records.reduce((n, r) => n + count(r), 0),
          duplicated: duplicates(records),
          outOfOrder: 0,
        },
      },
      serverToAgent: { calls: ss.down, received: down, rounds: ss.rounds },
      streams: { calls: ss.streams, itemsOutOfOrder: ss.streamItemsBad },
      agentEvents: events,
      memory: { startMiB: mib(ss.heap.start), peakMiB: mib(ss.heap.peak), endMiB: mib(ss.heap.end) },
      lag: { p99Ms: Math.round(ss.lagP99Ms * 10) / 10, maxMs: Math.round(ss.lagMaxMs * 10) / 10 },
      checks,
      ok: checks.every((c) => c.ok),
      cluster: {
        servers: o.servers,
        killed: { server: victim.name, agents: killed.size },
        drained: { server: drained.name, agents: drainedAgents.length, result: drainResult },
        expiredAgents: expired.size,
      },
    };
  } finally {
    await Promise.all(procs.map((c) => c.request("close", {}, 30_000).catch(() => {})));
    for (const s of slots) await s.child.request("close", {}, 15_000).catch(() => {});
    for (const c of retired) await c.request("close", {}, 5000).catch(() => {});
    for (const s of slots) await s.proxy.request("close", {}, 10_000).catch(() => {});
    await Promise.all(
      [...procs, ...retired, ...slots.flatMap((s) => [s.child, s.proxy])].map((c) => c.stop()),
    );
    await nats?.stop();
  }
}

const count = (r: Record<string, number[]>): number => Object.values(r).reduce((n, l) => n + l.length, 0);

/** Call numbers of one agent found more than once over every server's record. */
function duplicates(records: Array<Record<string, number[]>>): number {
  const seen = new Map<string, Set<number>>();
  let twice = 0;
  for (const r of records)
    for (const [agent, ns] of Object.entries(r)) {
      const set = seen.get(agent) ?? new Set<number>();
      seen.set(agent, set);
      for (const n of ns) {
        if (set.has(n)) twice++;
        else set.add(n);
      }
    }
  return twice;
}

export type { CallCounts, SeqCounts };
