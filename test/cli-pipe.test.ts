// A closed standard output (`| head`) ends the CLI quietly, as `cat` does, and cancels what it
// had in flight on the agents.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { CLI, freePort, type Proc, runCli, startCli, TEST_MUSTER_HOME } from "./support/cli.js";
import { until } from "./support/fleet.js";

const run = promisify(execFile);
const handlers = new URL("../../test/fixtures/stream-handlers.mjs", import.meta.url).pathname;

/** Runs `muster ARGS | head -N` in bash: what head printed, muster's stderr and exit status. */
async function piped(args: string[], lines: number): Promise<{ out: string; err: string; status: number }> {
  const quoted = args.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const script = `"${process.execPath}" "${CLI}" ${quoted} 2>"$ERRFILE" | head -${lines}; echo "status=\${PIPESTATUS[0]}"; cat "$ERRFILE"`;
  const errFile = `${TEST_MUSTER_HOME}/pipe-${process.pid}-${Date.now()}.err`;
  const { stdout } = await run("bash", ["-c", script], {
    env: { ...process.env, MUSTER_HOME: TEST_MUSTER_HOME, ERRFILE: errFile },
    timeout: 20_000,
  });
  const m = /^status=(\d+)$/m.exec(stdout);
  assert.ok(m, stdout);
  const at = stdout.indexOf(m[0]);
  return { out: stdout.slice(0, at), err: stdout.slice(at + m[0].length + 1), status: Number(m[1]) };
}

describe("the CLI with its output closed early", () => {
  let server: Proc;
  let agent: Proc;
  let url = "";
  before(async () => {
    url = `tcp://127.0.0.1:${await freePort()}`;
    server = startCli(["server", "--standalone", "--listen", url]);
    await server.waitFor("listening");
    agent = startCli(["agent", "--server", url, "--name", "web-1", "--handlers", handlers]);
    await until(() => /connected/.test(agent.all), 20_000, "the agent to connect");
  });
  after(async () => {
    for (const p of [agent, server]) p.child.kill("SIGKILL");
    await Promise.all([agent.exited, server.exited]);
  });

  it("muster stream … | head -3: three items, no error, exit 0, the stream stopped on the agent", async () => {
    const r = await piped(["stream", "--server", url, "web-1", "forever", "--json"], 3);
    assert.equal(r.out.trim().split("\n").length, 3, r.out);
    assert.equal(r.status, 0, r.err);
    assert.doesNotMatch(r.err, /EPIPE|Unhandled|Error/, r.err);
    await until(() => /forever: stopped after/.test(agent.err), 5000, "the agent's stream to stop");
  });

  it("piped, a long result is printed whole (it is cut only on a terminal)", async () => {
    const r = await runCli(["call", "--server", url, "web-1", "sys.info"]);
    assert.equal(r.code, 0, r.err);
    const line = r.out.split("\n").find((l) => l.startsWith("web-1"))!;
    assert.ok(line.length > 160, `a sys.info line of ${line.length} characters`);
    assert.doesNotMatch(line, /…$/);
    const json = JSON.parse(line.slice(line.indexOf("{"))) as { name: string; memory: unknown };
    assert.equal(json.name, "web-1");
    assert.ok(json.memory, "the whole value, to its last field");
  });

  it("muster call … | head -1 and muster agents | head -1: no error, exit 0", async () => {
    for (let i = 0; i < 3; i++) {
      const r = await piped(["call", "--server", url, "all", "sys.ping"], 1);
      assert.equal(r.out.trim().split("\n").length, 1);
      assert.equal(r.status, 0, r.err);
      assert.doesNotMatch(r.err, /EPIPE|Unhandled/, r.err);
    }
    const a = await piped(["agents", "--server", url], 1);
    assert.equal(a.status, 0, a.err);
    assert.doesNotMatch(a.err, /EPIPE|Unhandled/);
  });
});
