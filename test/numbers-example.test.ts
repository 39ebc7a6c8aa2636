// examples/numbers: the numbers service over muster streams, run as two real processes.
// Cut links are resumed by the session; a server killed with SIGKILL loses the session, and
// the agent reopens the stream from the last item it received. Both end with a valid checksum.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startChaosProxy } from "../src/chaos/chaos-proxy.js";
import { freePort, startScript } from "./support/cli.js";
import { until } from "./support/fleet.js";

const SERVER = new URL("../examples/numbers/server.js", import.meta.url).pathname;
const AGENT = new URL("../examples/numbers/agent.js", import.meta.url).pathname;

describe("examples/numbers", () => {
  it("through a proxy that cuts the link every 150 ms: every number once, checksum ok", async () => {
    const port = await freePort();
    const server = startScript(SERVER, ["--listen", `tcp://127.0.0.1:${port}`, "--tick", "2"]);
    const proxy = await startChaosProxy({ target: { host: "127.0.0.1", port } });
    let cuts = 0;
    const cutter = setInterval(() => {
      cuts += proxy.cutAll() > 0 ? 1 : 0;
    }, 150);
    try {
      await until(() => server.all.includes("listening"), 10_000, "the server");
      const agent = startScript(AGENT, [
        "--server",
        `tcp://127.0.0.1:${proxy.address.port}`,
        "--n",
        "400",
        "--window",
        "2048",
      ]);
      assert.equal(await agent.exited, 0, agent.all);
      clearInterval(cutter);
      assert.match(agent.all, /400 numbers, checksum \d+, server says \d+: checksum ok/);
      assert.match(agent.all, /link back after \d+ ms: session resumed, nothing lost/);
      assert.doesNotMatch(agent.all, /session lost/);
      assert.ok(cuts >= 2, `links cut: ${cuts}`);
    } finally {
      clearInterval(cutter);
      await proxy.close();
      server.child.kill("SIGKILL");
    }
  });

  it("a server killed with SIGKILL and restarted: the stream is reopened from the last item", async () => {
    const port = await freePort();
    const listen = ["--listen", `tcp://127.0.0.1:${port}`, "--tick", "2"];
    let server = startScript(SERVER, listen);
    try {
      await until(() => server.all.includes("listening"), 10_000, "the server");
      const agent = startScript(AGENT, ["--server", `tcp://127.0.0.1:${port}`, "--n", "500"]);
      // 500 numbers at 2 ms each take a second: kill the server while they flow.
      await until(() => agent.all.includes("connected to"), 10_000, "the agent to connect");
      await new Promise((r) => setTimeout(r, 300));
      server.child.kill("SIGKILL");
      await server.exited;
      server = startScript(SERVER, listen);
      assert.equal(await agent.exited, 0, agent.all);
      assert.match(agent.all, /session lost after item (\d+): reopening from item \d+/);
      const at = Number(/session lost after item (\d+)/.exec(agent.all)![1]);
      assert.ok(at > 0 && at < 500, `lost at ${at}`);
      assert.match(agent.all, /500 numbers, checksum \d+, server says \d+: checksum ok/);
    } finally {
      server.child.kill("SIGKILL");
    }
  });
});
