import { createAgent, type MusterAgent } from "../agent/create-agent.js";
import { parseKey } from "../auth/keys.js";
import { issueToken } from "../auth/tokens.js";
import { createServer, type MusterServer } from "../server/create-server.js";
import type { Commands } from "./ipc.js";
import { checkReply, makePayload } from "./payload.js";
import { measureMemory, waitUntil } from "./probes.js";
import type { BenchPayload } from "./types.js";

/**
 * The server side of the reconnect storm: a muster server that counts, per agent, every
 * `bench.echo` it handles (a repeat is a duplicated frame), and the resumes it accepts.
 */
export function stormServerCommands(): Commands {
  let server: MusterServer | undefined;
  const handled = new Map<string, number>();
  let duplicates = 0;
  let joins = 0;
  let resumes = 0;
  let resumesAt: number[] = [];
  let fanout: ReturnType<MusterServer["call"]> | undefined;
  let fanoutPayload: BenchPayload | undefined;
  const live = (): number =>
    server!.agents().filter((a) => a.state === "connected" || a.state === "suspect").length;
  return {
    async start(a) {
      // All 5,000 agents dial from loopback: no per-address limit; the handshake rate limit
      // stays at its default, as a storm is what it is for.
      const key = a.key === undefined ? undefined : parseKey(a.key as string, "storm");
      server = createServer({
        listen: [`${a.scheme as string}://${a.host as string}:${a.port as number}`],
        maxConnectionsPerIp: 0,
        ...(key === undefined ? { standalone: true } : { auth: { key, agentMethods: ["bench.*"] } }),
      });
      server.handle("bench.echo", (p: BenchPayload, ctx) => {
        const seen = handled.get(ctx.peer.name);
        if (seen === p.i) duplicates++;
        handled.set(ctx.peer.name, p.i);
        return p;
      });
      server.onEvent((e) => {
        if (e.type === "join") joins++;
        if (e.type === "resume") {
          resumes++;
          resumesAt.push(Date.now());
        }
      });
      await server.start();
      return { port: server.listeners[0]!.port };
    },
    connected: () => live(),
    /** Resolves with the wall-clock time at which `n` agents were connected. */
    async waitConnected(a) {
      const n = a.n as number;
      await waitUntil(
        () => live() >= n,
        a.timeoutMs as number,
        () => `only ${live()} of ${n} agents connected`,
      );
      return { at: Date.now() };
    },
    /** Resolves with the wall-clock time of the n-th resume counted since `resetCounts`. */
    async waitResumed(a) {
      const n = a.n as number;
      await waitUntil(
        () => resumes >= n,
        a.timeoutMs as number,
        () => `only ${resumes} of ${n} agents resumed (${joins} rejoined)`,
      );
      return { at: resumesAt[n - 1] };
    },
    resetCounts() {
      joins = 0;
      resumes = 0;
      resumesAt = [];
    },
    fanoutStart(a) {
      fanoutPayload = makePayload(1_000_000, a.size as number);
      fanout = server!.call("all", "bench.echo", fanoutPayload, { timeoutMs: a.timeoutMs as number });
      return fanout.expectedNames.length;
    },
    async fanoutResult() {
      const done = await fanout!.done;
      let ok = 0;
      const failures: string[] = [];
      for (const o of done.outcomes) {
        try {
          if (o.status !== "ok") throw new Error(`${o.status} ${o.error?.message ?? ""}`);
          checkReply(o.value, fanoutPayload!);
          ok++;
        } catch (err) {
          if (failures.length < 5) failures.push(`${o.agent}: ${(err as Error).message}`);
        }
      }
      return { expected: done.outcomes.length, ok, failures };
    },
    stats: () => ({ joins, resumes, duplicates, handled: handled.size }),
    memory: () => measureMemory(),
    close: () => server?.close(),
  };
}

/**
 * The agents of the reconnect storm, all in this process. Each counts the `bench.echo` calls it
 * handles (a repeat is a duplicated frame) and its resumes and expiries.
 */
export function stormAgentCommands(): Commands {
  const agents: MusterAgent[] = [];
  let resumed = 0;
  let expired = 0;
  let duplicates = 0;
  let calls: Promise<unknown>[] = [];
  let callPayloads: BenchPayload[] = [];
  return {
    async connect(a) {
      const n = a.n as number;
      const key = a.key === undefined ? undefined : parseKey(a.key as string, "storm");
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < n) {
          const index = next++;
          const name = `storm-${index}`;
          const token =
            key === undefined ? undefined : await issueToken(key, { role: "agent", subject: name });
          const agent = createAgent({
            name,
            servers: [a.url as string],
            builtins: false,
            ...(token !== undefined ? { token } : {}),
          });
          let last = -1;
          agent.handle("bench.echo", (p: BenchPayload) => {
            if (p.i === last) duplicates++;
            last = p.i;
            return p;
          });
          agent.onEvent((e) => {
            if (e.type === "resumed") resumed++;
            if (e.type === "expired") expired++;
          });
          agent.start();
          await agent.connected();
          agents.push(agent);
        }
      };
      await Promise.all(Array.from({ length: (a.concurrency as number) ?? 200 }, worker));
      return agents.length;
    },
    /** Every agent calls the server's `bench.echo` once; the outcomes are collected by `callResult`. */
    callAll(a) {
      callPayloads = agents.map((_, k) => makePayload(k, a.size as number));
      calls = agents.map((agent, k) =>
        agent.call("bench.echo", callPayloads[k], { timeoutMs: a.timeoutMs as number }),
      );
      return calls.length;
    },
    async callResult() {
      const settled = await Promise.allSettled(calls);
      let ok = 0;
      const failures: string[] = [];
      settled.forEach((s, k) => {
        try {
          if (s.status === "rejected") throw s.reason;
          checkReply(s.value, callPayloads[k]!);
          ok++;
        } catch (err) {
          if (failures.length < 5) failures.push(`storm-${k}: ${(err as Error).message}`);
        }
      });
      return { expected: calls.length, ok, failures };
    },
    stats: () => ({ resumed, expired, duplicates }),
    async close() {
      for (let k = 0; k < agents.length; k += 500)
        await Promise.all(agents.slice(k, k + 500).map((x) => x.close().catch(() => {})));
    },
  };
}
