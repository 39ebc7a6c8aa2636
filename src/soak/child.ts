// The processes of a soak run: `server`, `agents` (many agents in one process) and `proxy`.
// Each answers the driver's commands over IPC (see ../bench/ipc.ts).

import { monitorEventLoopDelay } from "node:perf_hooks";
import pino from "pino";
import { createAgent, type MusterAgent } from "../agent/create-agent.js";
import { serveCommands } from "../bench/ipc.js";
import { measureMemory } from "../bench/probes.js";
import { type ChaosProxy, startChaosProxy } from "../chaos/chaos-proxy.js";
import { connectNatsBus } from "../cluster/nats-bus.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import { createServer, type MusterServer } from "../server/create-server.js";
import { checkSeq, newSeq, type SeqState } from "./seq.js";

/** Path of this module, for forking its roles. */
export const SOAK_CHILD = new URL(import.meta.url).pathname;

/** Counters of one kind of call, as seen by its caller. */
export interface CallCounts {
  started: number;
  settled: number;
  ok: number;
  /** Settled more than once (must stay 0). */
  twice: number;
  /** Answered with the wrong value (must stay 0). */
  wrong: number;
  /** Failed, by error code. */
  errors: Record<string, number>;
  /** The first few failures: which call (agent, round or number) and why, to start a search from. */
  failures?: string[];
}

const MAX_FAILURES_KEPT = 10;

function noteFailure(c: CallCounts, what: string): void {
  c.failures ??= [];
  if (c.failures.length < MAX_FAILURES_KEPT) c.failures.push(what);
}

export const newCounts = (): CallCounts => ({
  started: 0,
  settled: 0,
  ok: 0,
  twice: 0,
  wrong: 0,
  errors: {},
});

/**
 * Tracks one call to its single outcome: `settle` counts it once and flags any second
 * outcome (which the session guarantees never happens).
 */
function track(c: CallCounts, what: string): (err: unknown, right: boolean) => void {
  c.started++;
  let done = false;
  return (err, right) => {
    if (done) {
      c.twice++;
      return;
    }
    done = true;
    c.settled++;
    if (err) {
      const code = err instanceof MusterError ? err.code : "OTHER";
      c.errors[code] = (c.errors[code] ?? 0) + 1;
      noteFailure(c, `${what}: ${code}${err instanceof Error ? ` (${err.message.slice(0, 120)})` : ""}`);
    } else if (right) c.ok++;
    else {
      c.wrong++;
      noteFailure(c, `${what}: wrong result`);
    }
  };
}

export type { SeqCounts, SeqState } from "./seq.js";

/**
 * MUSTER_SOAK_LOG=DIR: each process logs (info and above, or MUSTER_SOAK_LEVEL) to
 * DIR/<role>-<pid>.log.
 */
function soakLogger(role: string): Logger | undefined {
  const dir = process.env.MUSTER_SOAK_LOG;
  if (!dir) return undefined;
  const dest = pino.destination({ dest: `${dir}/${role}-${process.pid}.log`, sync: true });
  return pino({ level: process.env.MUSTER_SOAK_LEVEL ?? "info" }, dest) as unknown as Logger;
}

function payload(size: number, tag: number): string {
  return `${tag}:`.padEnd(size, "x");
}

function serverRole(): void {
  let server: MusterServer;
  const up = newSeq();
  const upLast: SeqState = new Map();
  const down = newCounts();
  const streams = newCounts();
  let streamItemsBad = 0;
  let rounds = 0;
  let running = false;
  let loop: Promise<void> | undefined;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  const heap = { start: 0, peak: 0, end: 0 };
  let sampler: NodeJS.Timeout | undefined;

  /** In a cluster: every call number received, per agent, to find one taken by two servers. */
  const upSeen = new Map<string, number[]>();
  let self: string | undefined;
  /** Fan-out calls and streams that failed, per agent. */
  const failedTo: Record<string, number> = {};

  serveCommands({
    /** `cluster`: { nats, name, advertise } joins a cluster as server `name`, on `port` if given. */
    async start(a) {
      const c = a.cluster as { nats: string; server: string; advertise: string } | undefined;
      self = c?.server;
      server = createServer({
        listen: [`${String(a.scheme ?? "tcp")}://127.0.0.1:${Number(a.port ?? 0)}`],
        maxConnectionsPerIp: 0,
        heartbeatIntervalMs: Number(a.heartbeatMs),
        suspectAfterMs: Number(a.heartbeatMs) * 3,
        deadAfterMs: Number(a.deadAfterMs),
        logger: soakLogger(c === undefined ? "server" : `server-${c.server}`),
        standalone: true,
        ...(c !== undefined
          ? {
              name: c.server,
              cluster: {
                bus: await connectNatsBus(c.nats, { name: `soak ${c.server}` }),
                name: "soak",
                advertise: [c.advertise],
              },
            }
          : {}),
      });
      server.handle("soak.up", (req: { n: number; pad: string }, ctx) => {
        checkSeq(up, upLast, ctx.peer.name, req.n);
        if (c !== undefined) {
          const seen = upSeen.get(ctx.peer.name);
          if (seen === undefined) upSeen.set(ctx.peer.name, [req.n]);
          else seen.push(req.n);
        }
        return { n: req.n };
      });
      await server.start();
      return { port: Number(new URL(server.listeners[0]!.url).port) };
    },
    /** The names of the agents connected to this server. */
    localAgents() {
      return server
        .agents()
        .filter((x) => x.state !== "offline" && (x.server === undefined || x.server === self))
        .map((x) => x.name);
    },
    /** Drains (handing the sessions over in a cluster) and closes; the drain's result. */
    async drain() {
      return await server.drain();
    },
    /** Call numbers received per agent (cluster mode). */
    received() {
      return Object.fromEntries(upSeen);
    },
    waitAgents(a) {
      const n = Number(a.n);
      return new Promise<void>((resolve, reject) => {
        const t0 = Date.now();
        const poll = (): void => {
          const c = server.agents().filter((x) => x.state === "connected").length;
          if (c >= n) resolve();
          else if (Date.now() - t0 > Number(a.timeoutMs)) reject(new Error(`${c} of ${n} agents connected`));
          else setTimeout(poll, 50);
        };
        poll();
      });
    },
    /** Fan-outs and streams until `stop`: the server → agent direction. */
    run(a) {
      running = true;
      lag.enable();
      const size = Number(a.size);
      const callTimeoutMs = Number(a.callTimeoutMs);
      const every = Number(a.fanoutEveryMs);
      loop = (async () => {
        const pending: Promise<unknown>[] = [];
        while (running) {
          const round = ++rounds;
          const fan = server.call<{ round: number }>(
            "all",
            "soak.down",
            { round, pad: payload(size, round) },
            { timeoutMs: callTimeoutMs },
          );
          const expected = fan.expectedNames.length;
          for (let k = 0; k < expected; k++) down.started++;
          pending.push(
            fan.done.then((r) => {
              for (const o of r.outcomes) {
                down.settled++;
                if (o.status === "ok") {
                  if (o.value?.round === round) down.ok++;
                  else down.wrong++;
                } else {
                  const code = o.error?.code ?? o.status;
                  down.errors[code] = (down.errors[code] ?? 0) + 1;
                  failedTo[o.agent] = (failedTo[o.agent] ?? 0) + 1;
                  noteFailure(
                    down,
                    `round ${round} to ${o.agent}: ${code} after ${o.durationMs} ms (${String(o.error?.message).slice(0, 120)})`,
                  );
                }
              }
            }),
          );
          // Every fifth round, a stream of 20 items to one agent.
          if (round % 5 === 0) {
            const names = fan.expectedNames;
            const name = names[round % names.length];
            if (name) {
              const settle = track(streams, `stream of round ${round} from ${name}`);
              let next = 0;
              pending.push(
                server
                  .callAgent<number>(
                    name,
                    "soak.stream",
                    { count: 20 },
                    {
                      timeoutMs: callTimeoutMs,
                      onItem: (item) => {
                        if (item !== next) streamItemsBad++;
                        next = (item as number) + 1;
                      },
                    },
                  )
                  .then(
                    (n) => settle(undefined, n === 20 && next === 20),
                    (err: unknown) => {
                      failedTo[name] = (failedTo[name] ?? 0) + 1;
                      settle(err, false);
                    },
                  ),
              );
            }
          }
          await new Promise((r) => setTimeout(r, every));
        }
        await Promise.all(pending);
      })();
      return null;
    },
    async stop() {
      running = false;
      await loop;
      lag.disable();
      return null;
    },
    async heapStart() {
      heap.start = (await measureMemory()).heapUsed;
      heap.peak = heap.start;
      sampler = setInterval(() => {
        heap.peak = Math.max(heap.peak, process.memoryUsage().heapUsed);
      }, 200);
      return heap.start;
    },
    async stats() {
      if (sampler) clearInterval(sampler);
      heap.end = (await measureMemory()).heapUsed;
      return {
        up,
        down,
        rounds,
        streams,
        streamItemsBad,
        heap,
        lagP99Ms: lag.percentile(99) / 1e6,
        lagMaxMs: lag.max / 1e6,
        failedTo,
        agents: server.agents().length,
        admission: server.admission,
      };
    },
    async close() {
      await server?.close();
      return null;
    },
  });
}

function agentsRole(): void {
  const agents: MusterAgent[] = [];
  const up = newCounts();
  const down = newSeq();
  const downLast: SeqState = new Map();
  const events: Record<string, number> = {};
  /** Per agent: sessions expired, calls that failed, and rounds received twice or out of order. */
  const expired: Record<string, number> = {};
  const failedCalls: Record<string, number> = {};
  const downAnomalies: Record<string, { duplicated: number; outOfOrder: number }> = {};
  let running = false;
  const timers: NodeJS.Timeout[] = [];
  const inFlight = new Set<Promise<unknown>>();

  serveCommands({
    async connect(a) {
      const logger = soakLogger("agents");
      const n = Number(a.n);
      const size = Number(a.size);
      for (let i = 0; i < n; i++) {
        const name = `${a.prefix as string}-${i}`;
        const agent = createAgent({
          name,
          servers: a.urls as string[],
          suspectAfterMs: Number(a.heartbeatMs) * 3,
          deadAfterMs: Number(a.deadAfterMs),
          reconnect: { initialMs: 100, maxMs: 2000 },
          ...(logger ? { logger: logger.child({ agent: name }) } : {}),
        });
        agent.handle("soak.down", (req: { round: number; pad: string }) => {
          const before = { duplicated: down.duplicated, outOfOrder: down.outOfOrder };
          checkSeq(down, downLast, name, req.round);
          if (down.duplicated !== before.duplicated || down.outOfOrder !== before.outOfOrder) {
            downAnomalies[name] ??= { duplicated: 0, outOfOrder: 0 };
            const an = downAnomalies[name];
            an.duplicated += down.duplicated - before.duplicated;
            an.outOfOrder += down.outOfOrder - before.outOfOrder;
          }
          return { round: req.round, pad: payload(size, req.round) };
        });
        agent.handle("soak.stream", async (req: { count: number }, ctx) => {
          for (let k = 0; k < req.count; k++) if (!ctx.emit(k)) await ctx.whenWritable();
          return req.count;
        });
        agent.onEvent((e) => {
          events[e.type] = (events[e.type] ?? 0) + 1;
          if (e.type === "expired") expired[name] = (expired[name] ?? 0) + 1;
        });
        agents.push(agent);
        agent.start();
      }
      await Promise.all(agents.map((x) => x.connected()));
      return null;
    },
    /** Calls from every agent to the server until `stop`: the agent → server direction. */
    run(a) {
      running = true;
      const every = Number(a.callEveryMs);
      const size = Number(a.size);
      const callTimeoutMs = Number(a.callTimeoutMs);
      agents.forEach((agent, i) => {
        let n = 0;
        const fire = (): void => {
          if (!running) return;
          const k = ++n;
          const settle = track(up, `${agent.name} call ${k}`);
          const p = agent
            .call<{ n: number }>("soak.up", { n: k, pad: payload(size, k) }, { timeoutMs: callTimeoutMs })
            .then(
              (r) => settle(undefined, r.n === k),
              (err: unknown) => {
                failedCalls[agent.name] = (failedCalls[agent.name] ?? 0) + 1;
                settle(err, false);
              },
            );
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        };
        // Staggered so that the agents' calls spread over the interval.
        timers.push(
          setTimeout(
            () => {
              fire();
              timers.push(setInterval(fire, every));
            },
            (every * i) / agents.length,
          ),
        );
      });
      return null;
    },
    async stop() {
      running = false;
      for (const t of timers) clearTimeout(t);
      await Promise.all([...inFlight]);
      return null;
    },
    stats() {
      return { up, down, events, expired, failedCalls, downAnomalies };
    },
    async close() {
      await Promise.all(agents.map((x) => x.close()));
      return null;
    },
  });
}

function proxyRole(): void {
  let proxy: ChaosProxy | undefined;
  serveCommands({
    async start(a) {
      proxy = await startChaosProxy({
        target: { host: "127.0.0.1", port: Number(a.targetPort) },
        seed: Number(a.seed),
        latencyMs: Number(a.latencyMs),
        jitterMs: Number(a.jitterMs),
      });
      return { port: proxy.address.port, seed: proxy.seed };
    },
    retarget(a) {
      proxy!.setTarget({ host: "127.0.0.1", port: Number(a.port) });
      return null;
    },
    faults(a) {
      proxy!.startRandomFaults(a.random as Parameters<ChaosProxy["startRandomFaults"]>[0]);
      return null;
    },
    quiet() {
      proxy!.stopFaults();
      proxy!.restore();
      return null;
    },
    stats() {
      return { stats: proxy!.stats, events: proxy!.events.length };
    },
    async close() {
      await proxy?.close();
      return null;
    },
  });
}

const role = process.argv[2];
if (role === "server") serverRole();
else if (role === "agents") agentsRole();
else if (role === "proxy") proxyRole();
else if (process.send) {
  process.stderr.write(`soak child: unknown role ${String(role)}\n`);
  process.exit(2);
}
