import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, type Proc, printed, runCli, startCli } from "./support/cli.js";
import { BreakingProxy } from "./support/http-proxy.js";

describe("an agent behind a proxy that breaks WebSockets", () => {
  const procs: Proc[] = [];
  let proxy: BreakingProxy | undefined;
  after(async () => {
    for (const p of procs) p.child.kill("SIGKILL");
    await proxy?.close();
  });

  it("falls back to long-polling, saying so; calls and streams work; an idle cut costs nothing", async () => {
    const port = await freePort();
    const ws = `ws://127.0.0.1:${port}`;
    const handlers = new URL("../../test/fixtures/stream-handlers.mjs", import.meta.url).pathname;
    // Heartbeats every 15 s: a held poll outlasts the proxy's 10 s idle limit and is cut.
    const server = startCli(["server", "--listen", ws, "--heartbeat", "15s", "--log-json"]);
    procs.push(server);
    await server.waitFor(`listening on ${ws}`);
    proxy = await BreakingProxy.start(port, 10_000);
    const token = await runCli(["token", "create", "--name", "lp-1", "--role", "agent"]);
    assert.equal(token.code, 0, token.err);
    const agent = startCli([
      "agent",
      "--server",
      `http://127.0.0.1:${proxy.port}/`,
      "--name",
      "lp-1",
      "--token",
      token.out.trim(),
      "--handlers",
      handlers,
      "--log-json",
    ]);
    procs.push(agent);
    await printed(agent, /falling back to HTTP long-polling/);
    await printed(agent, '"msg":"connected"');
    assert.ok(proxy.upgradesRefused >= 1, "the WebSocket upgrade was tried first");

    const listed = await runCli(["agents", "--server", ws, "--json"]);
    const rows = JSON.parse(listed.out) as Array<{ name: string; transport: string; state: string }>;
    assert.deepEqual(
      rows.map((r) => [r.name, r.transport, r.state]),
      [["lp-1", "http", "connected"]],
    );
    const call = await runCli(["call", "lp-1", "sys.ping", "--server", ws]);
    assert.equal(call.code, 0, call.out + call.err);
    const stream = await runCli(["stream", "lp-1", "count", '{"n":500}', "--json", "--server", ws]);
    assert.equal(stream.code, 0, stream.err);
    const lines = stream.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(
      lines.slice(0, -1),
      Array.from({ length: 500 }, (_, i) => i),
    );
    assert.deepEqual(lines.at(-1), { end: { items: 500, result: { count: 500 } } });

    // Wait for the proxy to cut an idle poll, then call again: no resume, no new session.
    const deadline = Date.now() + 20_000;
    while (proxy.idleCuts === 0 && Date.now() < deadline) await sleep(100);
    assert.ok(proxy.idleCuts >= 1, "the proxy cut an idle connection");
    for (let i = 0; i < 3; i++) {
      const again = await runCli(["call", "lp-1", "sys.ping", "--server", ws]);
      assert.equal(again.code, 0, again.out + again.err);
    }
    assert.doesNotMatch(agent.all, /session resumed/, "the cut did not even need a resume");
    assert.equal(agent.all.match(/"msg":"connected"/g)?.length, 1, "one session all along");
  });
});
