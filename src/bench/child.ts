// A benchmark process: `child.js server|client <module-url> <system>` runs one side of a
// system under benchmark, `child.js proxy` a TCP proxy that can cut every link, and
// `child.js storm-server|storm-agents` the two sides of the reconnect storm. Each answers
// commands from the parent over the IPC channel (see ipc.ts).

import { performance } from "node:perf_hooks";
import { startTcpProxy, type TcpProxy } from "../chaos/tcp-proxy.js";
import { type Commands, serveCommands } from "./ipc.js";
import { checkReply, makePayload } from "./payload.js";
import { descriptorLimit, lagCommands, measureMemory, waitUntil } from "./probes.js";
import { startRoundsProfile } from "./rounds-profile.js";
import { Samples } from "./stats.js";
import { stormAgentCommands, stormServerCommands } from "./storm-roles.js";
import type { BenchClient, BenchServer, BenchSystem } from "./types.js";

async function loadSystem(moduleUrl: string, name: string): Promise<BenchSystem> {
  const mod = (await import(moduleUrl)) as { systems: BenchSystem[] };
  const system = mod.systems.find((s) => s.name === name);
  if (!system) throw new Error(`no system ${name} in ${moduleUrl}`);
  return system;
}

function serverCommands(system: BenchSystem): Commands {
  const systemName = system.name;
  let server: BenchServer | undefined;
  const s = (): BenchServer => {
    if (!server) throw new Error("server not started");
    return server;
  };
  return {
    ...lagCommands(),
    async start(a) {
      server = await system.startServer({
        host: a.host as string,
        port: a.port as number,
        extraHosts: (a.extraHosts as string[] | undefined) ?? [],
      });
      return { port: server.port };
    },
    connected: () => s().connected(),
    async waitConnected(a) {
      const n = a.n as number;
      await waitUntil(
        () => s().connected() >= n,
        a.timeoutMs as number,
        () => `only ${s().connected()} of ${n} clients connected`,
        20,
      );
      return s().connected();
    },
    async fanout(a) {
      const size = a.size as number;
      const expected = s().connected();
      const times: number[] = [];
      const total = (a.warmup as number) + (a.rounds as number);
      // The server's own cost of the measured rounds: CPU time and event-loop utilisation.
      let cpu0 = process.cpuUsage();
      let elu0 = performance.eventLoopUtilization();
      let profile: Awaited<ReturnType<typeof startRoundsProfile>>;
      for (let round = 0; round < total; round++) {
        if (round === (a.warmup as number)) {
          profile = await startRoundsProfile(`fanout-${systemName}-${expected}-${size}B`);
          cpu0 = process.cpuUsage();
          elu0 = performance.eventLoopUtilization();
        }
        const payload = makePayload(round, size);
        const t0 = performance.now();
        const replies = await s().fanout(payload, a.timeoutMs as number);
        const ms = performance.now() - t0;
        if (replies.length !== expected)
          throw new Error(`${replies.length} replies from ${expected} clients`);
        for (const r of replies) checkReply(r, payload);
        if (round >= (a.warmup as number)) times.push(ms);
      }
      const cpu = process.cpuUsage(cpu0);
      const elu = performance.eventLoopUtilization(elu0);
      await profile?.stop();
      return { times, clients: expected, cpuUs: cpu.user + cpu.system, elu: elu.utilization };
    },
    memory: () => measureMemory(),
    cpu: () => process.cpuUsage(),
    limits: () => ({ nofile: descriptorLimit() }),
    close: () => server?.close(),
  };
}

function clientCommands(system: BenchSystem): Commands {
  const clients: BenchClient[] = [];
  return {
    async connect(a) {
      // `hosts`: the server's addresses, dialled in turn; `base`: this process's first client index.
      const { hosts, port } = a as { hosts: string[]; port: number };
      const n = a.n as number;
      const base = (a.base as number | undefined) ?? 0;
      const concurrency = (a.concurrency as number) ?? 100;
      const t0 = performance.now();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < n) {
          const index = base + next++;
          clients.push(await system.connect({ host: hosts[index % hosts.length]!, port, index }));
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
      return { ms: performance.now() - t0 };
    },
    /** `inflight` workers each make calls back to back on the first client, for `durationMs`. */
    async calls(a) {
      const c = clients[0]!;
      const { size, inflight, durationMs, warmupMs } = a as Record<string, number>;
      let seq = 0;
      let recording = false;
      let stop = false;
      const latencies = new Samples(1 << 16);
      let calls = 0;
      let cpu0 = process.cpuUsage();
      const worker = async (): Promise<void> => {
        while (!stop) {
          const payload = makePayload(seq++, size!);
          const t0 = performance.now();
          const reply = await c.call(payload);
          const ms = performance.now() - t0;
          checkReply(reply, payload);
          if (recording) {
            calls++;
            latencies.add(ms);
          }
        }
      };
      const running = Promise.all(Array.from({ length: inflight! }, worker));
      await new Promise((r) => setTimeout(r, warmupMs));
      recording = true;
      cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, durationMs));
      recording = false;
      const elapsedMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      stop = true;
      await running;
      const [p50, p99] = latencies.percentiles([50, 99]);
      return { calls, allCalls: seq, elapsedMs, p50Ms: p50, p99Ms: p99, cpuUs: cpu.user + cpu.system };
    },
    async stream(a) {
      const { count, size } = a as Record<string, number>;
      let expect = 0;
      let bytes = 0;
      const t0 = performance.now();
      await clients[0]!.stream(count!, size!, (item) => {
        if (item.i !== expect) throw new Error(`stream item ${item.i} arrived, expected ${expect}`);
        if (item.data.length !== size) throw new Error(`stream item ${item.i} has ${item.data.length} bytes`);
        expect++;
        bytes += item.data.length;
      });
      const ms = performance.now() - t0;
      if (expect !== count) throw new Error(`stream delivered ${expect} of ${count} items`);
      return { ms, items: expect, bytes };
    },
    async close() {
      for (let k = 0; k < clients.length; k += 500)
        await Promise.all(clients.slice(k, k + 500).map((c) => c.close().catch(() => {})));
      clients.length = 0;
    },
  };
}

function proxyCommands(): Commands {
  let proxy: TcpProxy | undefined;
  return {
    async start(a) {
      proxy = await startTcpProxy({ host: a.host as string, port: a.targetPort as number });
      return { port: proxy.address.port };
    },
    cut: () => proxy?.cutAll() ?? 0,
    connections: () => proxy?.connections ?? 0,
    close: () => proxy?.close(),
  };
}

const [role, moduleUrl, name] = process.argv.slice(2);
switch (role) {
  case "server":
    serveCommands(serverCommands(await loadSystem(moduleUrl!, name!)));
    break;
  case "client":
    serveCommands(clientCommands(await loadSystem(moduleUrl!, name!)));
    break;
  case "proxy":
    serveCommands(proxyCommands());
    break;
  case "storm-server":
    serveCommands({ ...lagCommands(), ...stormServerCommands() });
    break;
  case "storm-agents":
    serveCommands(stormAgentCommands());
    break;
  default:
    process.stderr.write(
      `usage: child.js server|client <module-url> <system> | proxy | storm-server | storm-agents\n`,
    );
    process.exit(2);
}
