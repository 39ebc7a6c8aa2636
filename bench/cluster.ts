// The cluster scenarios of `npm run bench`: fan-out to agents spread over three servers sharing
// a real nats-server vs one server holding them all, the backplane messages each fan-out costs,
// and what a call to an agent on another server adds over a local one. Servers and agents are
// separate processes of the built CLI and library, on loopback.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { connectOperator, type MusterOperator } from "../src/operator/create-operator.js";
import { freePort } from "../test/support/cli.js";
import { findNatsServer, type NatsServer, startNatsServer } from "../test/support/nats-server.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const AGENTS = fileURLToPath(new URL("./cluster-agents.js", import.meta.url));

export interface ClusterBenchOptions {
  quick: boolean;
  log(line: string): void;
}

export interface ClusterBenchResult {
  agents: number;
  rounds: number;
  /** Fan-out to every agent, from the first server: median and p99 in ms. */
  oneServer: { p50: number; p99: number };
  threeServers: { p50: number; p99: number };
  /** NATS messages (in, as the server counts them) per fan-out over three servers. */
  natsMessagesPerFanOut: number;
  /** Backplane bytes (in) per fan-out. */
  natsBytesPerFanOut: number;
  /** One call through the first server to an agent held by it, and by another server: µs. */
  localCall: { p50: number; p99: number };
  remoteCall: { p50: number; p99: number };
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

class Procs {
  readonly all: ChildProcess[] = [];
  async server(name: string, cluster?: string): Promise<string> {
    const args = [
      CLI,
      "server",
      "--standalone",
      "--name",
      name,
      "--listen",
      "tcp://127.0.0.1:0",
      "--log-level",
      "warn",
      "--max-connections-per-ip",
      "0",
      "--handshake-rate",
      "100000",
      "--handshake-burst",
      "100000",
      ...(cluster ? ["--cluster", cluster] : []),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    this.all.push(child);
    const url = await lineMatching(child, /^listening on (tcp:\/\/\S+)/);
    return url;
  }
  async agents(url: string, count: number, prefix: string): Promise<void> {
    const child = spawn(process.execPath, [AGENTS, url, String(count), prefix], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    this.all.push(child);
    await lineMatching(child, /^ready$/);
  }
  async stop(): Promise<void> {
    for (const c of this.all) {
      c.stdin?.end();
      c.kill("SIGTERM");
    }
    await Promise.all(this.all.map((c) => (c.exitCode === null ? once(c, "exit") : undefined)));
    this.all.length = 0;
  }
}

function lineMatching(child: ChildProcess, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const onData = (d: Buffer) => {
      buffered += d.toString();
      for (const line of buffered.split("\n")) {
        const m = re.exec(line);
        if (m) {
          child.stdout?.off("data", onData);
          resolve(m[1] ?? m[0]);
          return;
        }
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`process exited (${code}) before printing ${re}`)));
  });
}

async function fanOuts(op: MusterOperator, n: number, rounds: number, warmup: number): Promise<number[]> {
  const times: number[] = [];
  for (let r = -warmup; r < rounds; r++) {
    const t0 = performance.now();
    const { summary } = await op.call("all", "bench.echo", { r }, { timeoutMs: 30_000 }).done;
    const ms = performance.now() - t0;
    if (summary.ok !== n) throw new Error(`fan-out round ${r}: ${JSON.stringify(summary)}, expected ${n} ok`);
    if (r >= 0) times.push(ms);
  }
  return times;
}

async function calls(op: MusterOperator, agent: string, count: number): Promise<number[]> {
  const us: number[] = [];
  for (let i = -50; i < count; i++) {
    const t0 = performance.now();
    const { summary } = await op.call(agent, "bench.echo", i).done;
    if (summary.ok !== 1) throw new Error(`call to ${agent}: ${JSON.stringify(summary)}`);
    if (i >= 0) us.push((performance.now() - t0) * 1000);
  }
  return us;
}

async function varz(monitor: number): Promise<{ in_msgs: number; in_bytes: number }> {
  const r = await fetch(`http://127.0.0.1:${monitor}/varz`);
  return (await r.json()) as { in_msgs: number; in_bytes: number };
}

/** Runs the cluster scenarios; undefined (with the reason logged) when nats-server is missing. */
export async function runClusterBench(o: ClusterBenchOptions): Promise<ClusterBenchResult | undefined> {
  if (findNatsServer() === undefined) {
    o.log("cluster: skipped, nats-server is not installed (Debian package nats-server)");
    return undefined;
  }
  const perServer = o.quick ? 50 : 1000;
  const n = perServer * 3;
  const rounds = o.quick ? 3 : 20;
  const procs = new Procs();
  let nats: NatsServer | undefined;
  try {
    o.log(`cluster: one server, ${n} agents in 3 processes`);
    const single = await procs.server("solo");
    for (let i = 0; i < 3; i++) await procs.agents(single, perServer, `p${i}`);
    let op = await connectOperator({ server: single });
    const one = await fanOuts(op, n, rounds, 3);
    await op.close();
    await procs.stop();

    const monitor = await freePort();
    nats = await startNatsServer({ args: ["-m", String(monitor)] });
    o.log(`cluster: three servers on ${nats.url}, ${n} agents (${perServer} on each)`);
    const urls: string[] = [];
    for (const name of ["s1", "s2", "s3"]) urls.push(await procs.server(name, nats.url));
    for (let i = 0; i < 3; i++) await procs.agents(urls[i]!, perServer, `p${i}`);
    op = await connectOperator({ server: urls[0]! });
    // Every server must list every agent before fan-outs from s1 can expect them all.
    for (;;) {
      const listed = (await op.agents()).filter((a) => a.state === "connected").length;
      if (listed === n) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await fanOuts(op, n, 0, 3);
    const before = await varz(monitor);
    const three = await fanOuts(op, n, rounds, 0);
    const after = await varz(monitor);
    o.log("cluster: calls to one agent, local and on another server");
    const local = await calls(op, "p0-1", o.quick ? 50 : 1000);
    const remote = await calls(op, "p1-1", o.quick ? 50 : 1000);
    await op.close();
    return {
      agents: n,
      rounds,
      oneServer: { p50: quantile(one, 0.5), p99: quantile(one, 0.99) },
      threeServers: { p50: quantile(three, 0.5), p99: quantile(three, 0.99) },
      natsMessagesPerFanOut: (after.in_msgs - before.in_msgs) / rounds,
      natsBytesPerFanOut: (after.in_bytes - before.in_bytes) / rounds,
      localCall: { p50: quantile(local, 0.5), p99: quantile(local, 0.99) },
      remoteCall: { p50: quantile(remote, 0.5), p99: quantile(remote, 0.99) },
    };
  } finally {
    await procs.stop();
    await nats?.stop();
  }
}

/** The result as a markdown section of bench/RESULTS.md. */
export function renderCluster(r: ClusterBenchResult): string {
  const f = (x: number) => x.toFixed(1);
  return [
    "| measure | one server | three servers over NATS |",
    "|---|---|---|",
    `| fan-out to ${r.agents} agents, median (ms) | ${f(r.oneServer.p50)} | ${f(r.threeServers.p50)} |`,
    `| fan-out to ${r.agents} agents, p99 (ms) | ${f(r.oneServer.p99)} | ${f(r.threeServers.p99)} |`,
    `| NATS messages per fan-out (in) | — | ${f(r.natsMessagesPerFanOut)} |`,
    `| NATS bytes per fan-out (in) | — | ${Math.round(r.natsBytesPerFanOut)} |`,
    "",
    "| call through the first server to one agent | median (µs) | p99 (µs) |",
    "|---|---|---|",
    `| held by that server | ${Math.round(r.localCall.p50)} | ${Math.round(r.localCall.p99)} |`,
    `| held by another server | ${Math.round(r.remoteCall.p50)} | ${Math.round(r.remoteCall.p99)} |`,
    `| added by the cross-server hop | ${Math.round(r.remoteCall.p50 - r.localCall.p50)} | |`,
    "",
    `${r.rounds} fan-outs after 3 warm-up rounds; the operator is connected to the first server; agents answer with their request. The NATS figures are nats-server's own counters (\`/varz\`) over the measured fan-outs, registry refreshes included (three servers, one each every 2 s).`,
  ].join("\n");
}
