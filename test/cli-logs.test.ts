// JSON log lines have one key per meaning: `name` is the program's, the peer's name is `peer`
// (a repeated key makes `jq .name` read the wrong one).
import assert from "node:assert/strict";
import { it } from "node:test";
import { freePort, startCli } from "./support/cli.js";
import { until } from "./support/fleet.js";

it("server and agent JSON logs: no key twice on a line; the agent's name under peer", async () => {
  const url = `tcp://127.0.0.1:${await freePort()}`;
  const server = startCli(["server", "--standalone", "--listen", url, "--log-json"]);
  const agent = startCli(["agent", "--server", url, "--name", "web-2", "--log-json"]);
  try {
    await server.waitFor("listening");
    await until(() => /"peer":"web-2"/.test(server.err), 20_000, "the server to log the agent by peer");
    agent.child.kill("SIGKILL");
    await until(
      () => /"msg":"link lost|disconnect|resum/.test(server.err),
      20_000,
      "the server to log the agent's loss",
    );
    const lines = (server.err + agent.err).split("\n").filter((l) => l.startsWith("{"));
    assert.ok(lines.length >= 3, `log lines: ${lines.length}`);
    for (const line of lines) {
      const keys = [...line.matchAll(/[{,]"([^"]+)":/g)].map((m) => m[1]!);
      const twice = keys.filter((k, i) => keys.indexOf(k) !== i);
      assert.deepEqual(twice, [], `a key twice in ${line}`);
    }
  } finally {
    for (const p of [agent, server]) p.child.kill("SIGKILL");
    await Promise.all([agent.exited, server.exited]);
  }
});

it("an agent retrying the same failure logs it once, then every 10th time with a count", async () => {
  const port = await freePort();
  const agent = startCli([
    "agent",
    "--server",
    `tcp://127.0.0.1:${port}`,
    "--name",
    "lonely",
    "--reconnect-max",
    "100ms",
    "--log-json",
  ]);
  try {
    await until(() => /"repeated":10\b/.test(agent.err), 20_000, "ten identical failures");
    const lines = agent.err.split("\n").filter((l) => l.includes('"msg":"retrying'));
    assert.equal(lines.filter((l) => !l.includes('"repeated"')).length, 1, "the failure itself once");
    assert.ok(lines.length <= 3, `${lines.length} lines for at least 11 attempts`);
  } finally {
    agent.child.kill("SIGKILL");
    await agent.exited;
  }
});
