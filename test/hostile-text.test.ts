// Hostile peers on the text endpoints of a real `muster server` with authentication (the
// default): state-changing text commands need a credential, a web page cannot speak to a text
// port, and a STOP from the network always drains. Plain `nc` (skipped, saying why, when it is not
// installed) and `muster signal` are the honest clients.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";
import { until } from "./support/fleet.js";
import { LineClient } from "./support/line-client.js";

const HANDLERS = new URL("../../test/fixtures/hostile-text-handlers.mjs", import.meta.url).pathname;
const home = mkdtempSync(join(tmpdir(), "muster-hostile-text-"));
const env = { MUSTER_HOME: home };
const procs: Proc[] = [];
after(() => {
  for (const p of procs) p.child.kill("SIGKILL");
  rmSync(home, { recursive: true, force: true });
});
const start = (args: string[], extra: Record<string, string> = {}): Proc => {
  const p = startCli(args, { ...env, ...extra });
  procs.push(p);
  return p;
};

/** Resolves once the process has written a line matching `re` (its log goes to standard error). */
async function logged(p: Proc, re: RegExp): Promise<void> {
  await until(() => re.test(p.all), 15_000, `${re} in the output:\n${p.all}`);
}

async function create(args: string[]): Promise<string> {
  const r = await runCli(["token", "create", ...args], 20_000, env);
  assert.equal(r.code, 0, r.err);
  return r.out.trim();
}

/** Sends `input` on a new connection, ends our side, and resolves with the lines once the server closes. */
async function exchange(port: number, input: string): Promise<string[]> {
  const c = await LineClient.tcp(port);
  c.socket.end(input);
  await until(() => c.closed, 15_000, "the server to close the text connection");
  return c.lines;
}

/** `muster server` with authentication, a TCP and a UDP text endpoint, and web-1 attached. */
async function startServer(): Promise<{ server: Proc; agent: Proc; tcp: number; udp: number }> {
  const [port, tcp, udp] = [await freePort(), await freePort(), await freePort()];
  const server = start([
    "server",
    "--name",
    "hub",
    "--listen",
    `tcp://127.0.0.1:${port}`,
    "--text",
    `tcp://127.0.0.1:${tcp}`,
    "--text",
    `udp://127.0.0.1:${udp}`,
    "--call-timeout",
    "60s",
    "--drain-timeout",
    "60s",
    "--log-json",
  ]);
  await server.waitFor(`text on udp://127.0.0.1:${udp}`);
  const agent = start([
    "agent",
    "--server",
    `tcp://127.0.0.1:${port}`,
    "--name",
    "web-1",
    "--token-file",
    join(home, "web-1.token"),
    "--handlers",
    HANDLERS,
  ]);
  // Once web-1 has joined, an operator's ALIVE reaches it.
  const t0 = Date.now();
  for (;;) {
    const lines = await exchange(tcp, `web_1/ALIVE token=${tokens.operator}\n`);
    if (lines[0]?.startsWith("<hub:web_1 ABSOLUTELY")) break;
    if (Date.now() - t0 > 20_000) assert.fail(`web-1 never answered: ${lines.join(" | ")}\n${agent.all}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { server, agent, tcp, udp };
}

const tokens = { operator: "", admin: "" };

describe("text endpoints of a server with authentication", () => {
  let s: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    assert.equal((await runCli(["token", "keygen"], 20_000, env)).code, 0);
    tokens.operator = await create(["--name", "ops", "--role", "operator"]);
    tokens.admin = await create(["--name", "root", "--role", "admin"]);
    writeFileSync(join(home, "web-1.token"), await create(["--name", "web-1", "--role", "agent"]));
    writeFileSync(join(home, "op.token"), tokens.operator);
    writeFileSync(join(home, "admin.token"), tokens.admin);
    s = await startServer();
  });

  it("refuses */STOP without a credential, and no agent stops", async () => {
    const lines = await exchange(
      s.tcp,
      `*/STOP\nweb_1/STOP token=not.a.token\nweb_1/ALIVE serial=1;token=${tokens.operator}\n`,
    );
    assert.equal(lines.length, 3, lines.join("\n"));
    assert.match(lines[0]!, /^INVALID code=UNAUTHENTICATED;command=STOP;message=.*needs a credential/);
    assert.match(lines[1]!, /^INVALID code=UNAUTHENTICATED;command=STOP;message=token is malformed/);
    // Had either STOP gone through, web-1 would be gone before this line.
    assert.match(lines[2]!, /^<hub:web_1 ABSOLUTELY reply_timestamp=\S+;serial=1$/);
    assert.equal(s.agent.child.exitCode, null, "web-1 still runs");
    // An operator may route to agents, but only an admin may stop the server.
    const denied = await exchange(s.tcp, `STOP token=${tokens.operator}\nHELP\n`);
    assert.match(denied[0]!, /^INVALID code=PERMISSION_DENIED;command=STOP;message=ops .*admin/);
    assert.match(denied[1]!, /^COMMANDS list=ALIVE,HELP,/, "read-only built-ins stay open on loopback");
  });

  it("refuses a UDP STOP without the secret (and without a token)", async () => {
    const udp = createSocket("udp4");
    await new Promise<void>((r) => udp.send("STOP", s.udp, "127.0.0.1", () => r()));
    udp.close();
    await logged(s.server, /"transport":"udp".*needs a credential|needs a credential.*"transport":"udp"/);
    const alive = await exchange(s.tcp, "ALIVE serial=2\n");
    assert.match(alive[0]!, /^ABSOLUTELY .*serial=2$/);
    assert.doesNotMatch(s.server.all, /stopping: draining/);
  });

  it("closes a connection that speaks HTTP at once: nothing in its body runs", async () => {
    const body = `web_1/STOP token=${tokens.operator}\nALIVE serial=3\n`;
    const request = [
      "POST / HTTP/1.1",
      `Host: 127.0.0.1:${s.tcp}`,
      "Content-Type: text/plain",
      `Content-Length: ${Buffer.byteLength(body)}`,
      "",
      body,
    ].join("\r\n");
    // A browser keeps its side open: the server has to close it.
    const socket = connect({ port: s.tcp, host: "127.0.0.1", allowHalfOpen: true });
    const c = new LineClient(socket);
    await new Promise((r) => socket.once("connect", r));
    socket.write(request);
    await until(() => c.closed || socket.readableEnded, 15_000, "the server to close the HTTP connection");
    socket.destroy();
    assert.ok(!c.lines.some((l) => l.includes("ABSOLUTELY")), c.lines.join("\n"));
    const alive = await exchange(s.tcp, `web_1/ALIVE serial=4;token=${tokens.operator}\n`);
    assert.match(alive[0]!, /^<hub:web_1 ABSOLUTELY .*serial=4$/, "web-1 was not stopped");
  });

  it("muster signal sends the credential: --token-file, or one minted from the local key", async () => {
    const host = `127.0.0.1:${s.tcp}`;
    const withFile = await runCli(
      ["signal", "-t", "tcp", "-H", host, "-r", "--token-file", join(home, "op.token"), "web_1/ALIVE"],
      20_000,
      env,
    );
    assert.equal(withFile.code, 0, withFile.err);
    assert.match(withFile.out, /^<hub:web_1 (\S+\/)?ABSOLUTELY /);
    const minted = await runCli(["signal", "-t", "tcp", "-H", host, "-r", "*/ALIVE"], 20_000, env);
    assert.equal(minted.code, 0, minted.err);
    assert.match(minted.out, /^<hub:web_1 (\S+\/)?ABSOLUTELY /);
    const elsewhere = mkdtempSync(join(tmpdir(), "muster-no-key-"));
    try {
      const none = await runCli(["signal", "-t", "tcp", "-H", host, "-r", "*/ALIVE"], 20_000, {
        MUSTER_HOME: elsewhere,
      });
      assert.equal(none.code, 1);
      assert.match(none.out, /^(\S+\/)?INVALID code=UNAUTHENTICATED;command=ALIVE;/);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it("drains on a STOP from the network, and a second STOP does not cut the drain short", async () => {
    const release = join(home, "release");
    const held = await LineClient.tcp(s.tcp);
    held.socket.write(`web_1/HOLD file=${release};token=${tokens.operator}\n`);
    await until(() => existsSync(`${release}.started`), 15_000, "web-1 to start HOLD");
    assert.deepEqual(await exchange(s.tcp, `STOP token=${tokens.admin}\n`), []);
    await logged(s.server, /stopping: draining/);
    assert.deepEqual(
      await exchange(s.tcp, `QUITTING token=${tokens.admin}\nSTOP token=${tokens.admin}\n`),
      [],
    );
    await logged(s.server, /the drain goes on/);
    assert.equal(s.server.child.exitCode, null, "still draining");
    writeFileSync(release, "");
    await until(() => held.lines.length > 0, 15_000, "the reply to HOLD");
    assert.deepEqual(held.lines, ["<hub:web_1 HELD"]);
    assert.equal(await s.server.exited, 0);
    assert.match(s.server.all, /"abandoned":0/);
    for (const token of [tokens.operator, tokens.admin])
      assert.ok(!s.server.all.includes(token.split(".")[2]!), "no token reaches the log");
  });

  it("the one-liner of docs/text.md stops a server with an admin token", async (t) => {
    if (spawnSync("sh", ["-c", "command -v nc"]).status !== 0) {
      t.skip("nc is not installed (.ci/run installs netcat-openbsd)");
      return;
    }
    s.agent.child.kill("SIGKILL");
    const doc = readFileSync(new URL("../../docs/text.md", import.meta.url), "utf8");
    const line = /^printf 'STOP token=.*nc .*$/m.exec(doc)?.[0];
    assert.ok(line, "docs/text.md has the nc one-liner");
    s = await startServer();
    const port = /127\.0\.0\.1 (\d+)/.exec(line)![1]!;
    const shell = line.replace(`127.0.0.1 ${port}`, `127.0.0.1 ${s.tcp}`);
    const r = spawnSync("sh", ["-c", shell], { cwd: home, timeout: 20_000 });
    assert.equal(r.status, 0, String(r.stderr));
    assert.equal(await s.server.exited, 0);
    assert.match(s.server.all, /stopping: draining/);
  });
});
