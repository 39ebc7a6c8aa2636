import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { AgentInfo } from "../src/presence/presence.js";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";

describe("the muster CLI, end to end", () => {
  const procs: Proc[] = [];
  after(() => {
    for (const p of procs) p.child.kill("SIGKILL");
  });

  it("server, three agents, fan-out, an agent killed and restarted", async () => {
    const wsPort = await freePort();
    const tcpPort = await freePort();
    const ws = `ws://127.0.0.1:${wsPort}`;
    const server = startCli([
      "server",
      "--standalone",
      "--listen",
      ws,
      "--listen",
      `tcp://127.0.0.1:${tcpPort}`,
      "--log-json",
    ]);
    procs.push(server);
    await server.waitFor(`listening on tcp://127.0.0.1:${tcpPort}`);

    const agentArgs = (name: string, url: string): string[] => [
      "agent",
      "--server",
      url,
      "--name",
      name,
      "--label",
      "role=web",
      "--log-json",
    ];
    const startAgent = (name: string, url: string): Proc => {
      const p = startCli(agentArgs(name, url));
      procs.push(p);
      return p;
    };
    startAgent("web-1", ws);
    const web2 = startAgent("web-2", `tcp://127.0.0.1:${tcpPort}`);
    startAgent("web-3", ws);

    const listAgents = async (): Promise<AgentInfo[]> => {
      const r = await runCli(["agents", "--server", ws, "--json"]);
      assert.equal(r.code, 0, r.err);
      return JSON.parse(r.out) as AgentInfo[];
    };
    const waitConnected = async (names: string[]): Promise<void> => {
      const start = Date.now();
      for (;;) {
        const list = await listAgents();
        if (names.every((n) => list.some((a) => a.name === n && a.state === "connected"))) return;
        if (Date.now() - start > 15_000) assert.fail(`agents not connected: ${JSON.stringify(list)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await waitConnected(["web-1", "web-2", "web-3"]);

    const table = await runCli(["agents", "--server", ws]);
    assert.equal(table.code, 0);
    assert.match(table.out, /^NAME\s+LABELS\s+STATE\s+ADDRESS\s+VERSION\s+CONNECTED SINCE\s+LAST SEEN/);
    assert.match(table.out, /web-2\s+role=web\s+connected\s+tcp 127\.0\.0\.1:\d+/);

    const all = await runCli(["call", "all", "sys.info", "--server", ws, "--json", "--timeout", "3s"]);
    assert.equal(all.code, 0, all.out + all.err);
    const lines = all.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const outcomes = lines.filter((l) => l.agent);
    assert.deepEqual(outcomes.map((o) => o.agent).sort(), ["web-1", "web-2", "web-3"]);
    for (const o of outcomes) {
      assert.equal(o.status, "ok");
      assert.equal(o.value.name, o.agent);
      assert.equal(typeof o.value.pid, "number");
    }
    assert.deepEqual(lines.at(-1), { summary: { ok: 3, error: 0, timeout: 0, notConnected: 0 } });

    // Kill web-2 without warning: it is reported timeout (its session waits for a resume) or not connected.
    web2.child.kill("SIGKILL");
    await web2.exited;
    const partial = await runCli(["call", "role=web", "sys.ping", "--server", ws, "--timeout", "1s"]);
    assert.equal(partial.code, 1, "exit status 1 when not all are ok");
    assert.match(partial.out, /web-2\s+(timeout|not connected)/);
    assert.match(partial.out, /web-1\s+ok/);
    assert.match(
      partial.out,
      /^2 ok, (1 timeout, 0 error, 0 not connected|0 timeout, 0 error, 1 not connected)$/m,
    );

    // Restart it under the same name: it replaces the stale session and answers again.
    startAgent("web-2", `tcp://127.0.0.1:${tcpPort}`);
    await waitConnected(["web-2"]);
    const again = await runCli(["call", "web-2", "sys.ping", "--server", ws]);
    assert.equal(again.code, 0, again.out + again.err);
    assert.match(again.out, /web-2\s+ok/);
    assert.match(again.out, /^1 ok, 0 timeout, 0 error, 0 not connected$/m);

    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0, "the server stops cleanly on SIGTERM");
  });

  it("rejects bad flags and arguments with a clear message and exit status 2", async () => {
    const bad = await runCli(["call", "all", "sys.ping", "--timeout", "3"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /"3" is not a duration/);
    const target = await runCli(["call", "bad name!", "sys.ping"]);
    assert.equal(target.code, 2);
    assert.match(target.err, /name/);
    const json = await runCli(["call", "all", "sys.ping", "{not json"]);
    assert.equal(json.code, 2);
    assert.match(json.err, /not valid JSON/);
    const label = await runCli(["agent", "--label", "novalue"]);
    assert.equal(label.code, 2);
    assert.match(label.err, /key=value/);
  });

  it("says when the server cannot be reached (exit status 3)", async () => {
    const port = await freePort();
    const r = await runCli(["agents", "--server", `ws://127.0.0.1:${port}`]);
    assert.equal(r.code, 3);
    assert.match(r.err, /cannot reach the server/);
  });
});
