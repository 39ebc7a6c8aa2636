// A process holding many agents for the cluster benchmark: `node cluster-agents.js URL COUNT PREFIX`.
// Every agent answers `bench.echo` with its request; the process prints "ready" once all are
// connected and stays until its standard input closes.
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";

const [url, countText, prefix] = process.argv.slice(2);
if (url === undefined || countText === undefined || prefix === undefined) {
  console.error("usage: cluster-agents URL COUNT PREFIX");
  process.exit(2);
}
const agents: MusterAgent[] = [];
for (let i = 0; i < Number(countText); i++) {
  const agent = createAgent({
    name: `${prefix}-${i}`,
    servers: [url],
    serverOrder: "ordered",
    reconnect: { initialMs: 50, maxMs: 1000, jitter: 0.5 },
  });
  agent.handle("bench.echo", (req: unknown) => req);
  agent.start();
  agents.push(agent);
}
await Promise.all(agents.map((a) => a.connected()));
process.stdout.write("ready\n");
process.stdin.resume();
process.stdin.on("end", () => {
  void Promise.all(agents.map((a) => a.close())).then(() => process.exit(0));
});
