// examples/python-agent: an agent in Python (Debian's python3-grpcio and python3-grpc-tools)
// on aperture's protocol, joined to a real `muster server`, called through the CLI.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";

const AGENT = fileURLToPath(new URL("../../examples/python-agent/agent.py", import.meta.url));

/** A python3 that has grpc and grpc_tools, or why there is none. */
function findPython(): { python: string } | { why: string } {
  for (const python of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(python, ["-c", "import grpc, grpc_tools"], { encoding: "utf8" });
    if (r.status === 0) return { python };
  }
  return {
    why: "python3 with grpc and grpc_tools is not installed (Debian: python3-grpcio python3-grpc-tools; .ci/run installs them)",
  };
}
const found = findPython();
if ("why" in found) console.log(`# skipping the Python agent: ${found.why}`);

describe("examples/python-agent", { skip: "why" in found ? found.why : false }, () => {
  const procs: Proc[] = [];
  const children: ReturnType<typeof spawn>[] = [];
  after(() => {
    for (const p of procs) p.child.kill("SIGKILL");
    for (const c of children) c.kill("SIGKILL");
  });

  it("joins with a token and labels, is called by label with per-agent outcomes, and leaves at once", async () => {
    const [wsPort, grpcPort] = await Promise.all([freePort(), freePort()]);
    const ws = `ws://127.0.0.1:${wsPort}`;
    const server = startCli(["server", "--listen", ws, "--listen", `grpc://127.0.0.1:${grpcPort}`]);
    procs.push(server);
    await server.waitFor(`listening on grpc://127.0.0.1:${grpcPort}`);
    const token = await runCli([
      "token",
      "create",
      "--name",
      "py-1",
      "--role",
      "agent",
      "--label",
      "lang=python",
    ]);
    assert.equal(token.code, 0, token.err);
    const dir = mkdtempSync(join(tmpdir(), "py-agent-"));
    writeFileSync(join(dir, "py-1.token"), token.out);
    const python = (found as { python: string }).python;
    const child = spawn(
      python,
      [
        AGENT,
        "--server",
        `127.0.0.1:${grpcPort}`,
        "--name",
        "py-1",
        "--token-file",
        join(dir, "py-1.token"),
        "--labels",
        "lang=python",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(child);
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));

    const started = Date.now();
    for (;;) {
      const r = await runCli(["agents", "--server", ws, "--json"]);
      const rows = JSON.parse(r.out || "[]") as Array<{
        name: string;
        state: string;
        transport: string;
        labels: object;
      }>;
      const row = rows.find((x) => x.name === "py-1");
      if (row?.state === "connected") {
        assert.equal(row.transport, "aperture");
        assert.deepEqual(row.labels, { lang: "python" });
        break;
      }
      if (Date.now() - started > 30_000) assert.fail(`py-1 never connected:\n${out}`);
      await sleep(200);
    }

    const echo = await runCli([
      "call",
      "lang=python",
      "demo.Echo",
      '{"x":[1,"two",null]}',
      "--json",
      "--server",
      ws,
    ]);
    assert.equal(echo.code, 0, echo.out + echo.err);
    const line = JSON.parse(echo.out.split("\n")[0]!) as { agent: string; status: string; value: unknown };
    assert.deepEqual(
      [line.agent, line.status, line.value],
      ["py-1", "ok", { agent: "py-1", echo: { x: [1, "two", null] } }],
    );
    const sum = await runCli(["call", "py-1", "demo.Sum", "[1,2,3.5]", "--json", "--server", ws]);
    assert.equal(JSON.parse(sum.out.split("\n")[0]!).value, 6.5);
    const missing = await runCli(["call", "py-1", "demo.Nope", "--server", ws]);
    assert.equal(missing.code, 1);
    assert.match(missing.out, /no handler for type demo\.Nope/);

    child.kill("SIGKILL");
    const gone = Date.now();
    for (;;) {
      const r = await runCli(["agents", "--server", ws, "--json"]);
      const row = (JSON.parse(r.out) as Array<{ name: string; state: string }>).find(
        (x) => x.name === "py-1",
      );
      if (row?.state === "offline") break;
      if (Date.now() - gone > 30_000) assert.fail(`py-1 still ${row?.state}`);
      await sleep(200);
    }
  });
});
