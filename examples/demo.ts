// `npm run demo`: a server and three agents on loopback, each with a token bound to its name and
// labels; an impostor refused; a fan-out; one agent's link cut in the middle of a stream of
// calls, the session resuming with nothing lost or repeated; a graceful drain at the end.

import { startTcpProxy } from "../src/chaos/tcp-proxy.js";
import { type AgentEvent, createAgent, createServer, generateKey, issueToken } from "../src/index.js";

const say = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

// A key in memory for the demo; `muster token keygen` writes one to a file for real servers.
const key = generateKey();
const server = createServer({ listen: ["ws://127.0.0.1:0", "tcp://127.0.0.1:0"], auth: { key } });
await server.start();
const [ws, tcp] = server.listeners;
say(`▶ server listening on ${ws!.url} and ${tcp!.url} (authentication on: key ${key.fingerprint})`);
const tokenFor = (name: string, labels: Record<string, string>): Promise<string> =>
  issueToken(key, { role: "agent", subject: name, labels, ttlMs: 3_600_000 });

// web-3 reaches the server through a proxy, so that its link can be cut like a network failure.
const proxy = await startTcpProxy({ host: "127.0.0.1", port: tcp!.port });
const web1Token = await tokenFor("web-1", { role: "web" });
const agents = [
  createAgent({ name: "web-1", labels: { role: "web" }, servers: [ws!.url], token: web1Token }),
  createAgent({
    name: "web-2",
    labels: { role: "web" },
    servers: [tcp!.url],
    token: await tokenFor("web-2", { role: "web" }),
  }),
  createAgent({
    name: "web-3",
    labels: { role: "web", zone: "edge" },
    servers: [`tcp://127.0.0.1:${proxy.address.port}`],
    reconnect: { initialMs: 100, maxMs: 1000 },
    token: await tokenFor("web-3", { role: "web", zone: "edge" }),
  }),
];
for (const a of agents) a.start();
await Promise.all(agents.map((a) => a.connected()));
say(
  `▶ three agents connected: ${server
    .agents()
    .map((a) => `${a.name} (${a.transport})`)
    .join(", ")}`,
);

// An impostor: web-1's token presented under another name is refused, and says why.
const impostor = createAgent({
  name: "db-1",
  labels: { role: "web" },
  servers: [tcp!.url],
  token: web1Token,
});
const refused = new Promise<string>((resolve) =>
  impostor.onEvent((e) => {
    if (e.type === "retry") resolve(e.error);
  }),
);
impostor.start();
say(`▶ an impostor with web-1's token: ${await refused}`);
await impostor.close();

say("\n▶ fan-out: sys.ping on role=web");
const fan = server.call("role=web", "sys.ping", undefined, { timeoutMs: 2000 });
for await (const o of fan) say(`  ${o.agent.padEnd(6)} ${o.status.padEnd(8)} ${o.durationMs.toFixed(1)} ms`);
const s = fan.summary();
say(`  ${s.ok} ok, ${s.timeout} timeout, ${s.error} error, ${s.notConnected} not connected`);

// A stream of numbered calls to web-3; it records every number it handles.
const handled: number[] = [];
agents[2]!.handle("record", (n: number) => {
  handled.push(n);
  return n;
});
agents[2]!.onEvent((e: AgentEvent) => {
  if (e.type === "disconnected") say(`  web-3: link lost (${e.code}) — resuming`);
  if (e.type === "resumed") {
    say(
      `  web-3: resumed after ${e.downtimeMs} ms — replayed ${e.replayedToServer} frame(s) to the server, ${e.replayedFromServer} from it`,
    );
  }
});

const N = 500;
say(`\n▶ ${N} calls to web-3, its link cut in the middle`);
const results: Promise<number>[] = [];
for (let i = 0; i < N; i++) {
  results.push(server.callAgent<number>("web-3", "record", i, { timeoutMs: 10_000 }));
  if (i === N / 2) {
    await new Promise((r) => setTimeout(r, 5));
    say(`  cutting web-3's connection after call ${i} (${proxy.cutAll()} link(s) reset)`);
  }
}
const values = await Promise.all(results);
const inOrder = handled.every((n, i) => n === i);
const unique = new Set(handled).size;
say(
  `  ${values.length} results back; web-3 handled ${handled.length} calls, ${unique} distinct, in order: ${inOrder}`,
);
const resumedOk = values.length === N && handled.length === N && unique === N && inOrder;
say(resumedOk ? "  ✔ nothing lost, nothing repeated, nothing out of order" : "  ✘ MISMATCH");

say("\n▶ graceful shutdown during a fan-out of slow calls");
for (const a of agents)
  a.handle("slow", async () => {
    await new Promise((r) => setTimeout(r, 300));
    return "finished";
  });
const slow = server.call("all", "slow", undefined, { timeoutMs: 5000 });
await new Promise((r) => setTimeout(r, 50));
const drained = server.drain({ timeoutMs: 5000 });
say(`  server ${server.readiness}: new sessions and calls refused, calls in flight finish`);
for await (const o of slow) say(`  ${o.agent.padEnd(6)} ${o.status.padEnd(8)} ${String(o.value)}`);
const d = await drained;
say(`  drained in ${d.tookMs} ms, ${d.abandoned} call(s) abandoned; agents told to reconnect elsewhere`);

await Promise.all(agents.map((a) => a.close()));
await proxy.close();
say("\n▶ done");
process.exit(resumedOk && d.abandoned === 0 ? 0 : 1);
