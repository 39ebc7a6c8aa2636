// Text messages end to end: `muster server` and `muster agent` as real processes with text
// endpoints, and nc and socat — programs that know nothing of muster — as the clients.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { freePort, runCli, startCli } from "./support/cli.js";
import { until } from "./support/fleet.js";

const HANDLERS = new URL("../../test/fixtures/text-handlers.mjs", import.meta.url).pathname;

function have(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
}

/** Sends `input` with socat to `address` (a socat address) and returns what came back. */
async function socat(address: string, input: string): Promise<string> {
  // After its input ends socat waits -t seconds for the peer: a stream peer closes first,
  // UDP never does, so there the wait is short.
  const wait = address.startsWith("UDP:") ? "0.1" : "5";
  const child = execFile("socat", ["-t", wait, "-", address], { timeout: 10_000 });
  child.stdin!.end(input);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((resolve) => child.on("exit", resolve));
  return out;
}

const dir = mkdtempSync(join(tmpdir(), "muster-text-e2e-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("text messages through the real CLI, with nc and socat", () => {
  const hasSocat = have("socat");
  const hasNc = have("nc");

  it("signals the server and an agent over TCP, UDP and a Unix socket; rotates logs; stops both", async (t) => {
    if (!hasSocat) {
      t.skip("socat is not installed (Debian package socat): this test needs a plain text client");
      return;
    }
    const [port, tcp, udp] = [await freePort(), await freePort(), await freePort()];
    const sock = join(dir, "text.sock");
    const serverLog = join(dir, "server.log");
    const agentLog = join(dir, "agent.log");
    const server = startCli([
      "server",
      "--standalone",
      "--name",
      "hub",
      "--listen",
      `tcp://127.0.0.1:${port}`,
      "--text",
      `tcp://127.0.0.1:${tcp}`,
      "--text",
      `udp://127.0.0.1:${udp}`,
      "--text",
      `unix:${sock}`,
      "--text-secret",
      "s3cret",
      "--log-file",
      serverLog,
    ]);
    const agent = startCli([
      "agent",
      "--server",
      `tcp://127.0.0.1:${port}`,
      "--name",
      "web-1",
      "--handlers",
      HANDLERS,
      "--log-file",
      agentLog,
    ]);
    try {
      await server.waitFor(`text on unix:${sock}`);
      // Until the agent has joined, the server says it is unavailable.
      let hi = "";
      for (const start = Date.now(); !hi.startsWith("<hub:web_1 DAD"); ) {
        if (Date.now() - start > 10_000) assert.fail(`web-1 never answered HI; last: ${hi}`);
        hi = await socat(`TCP:127.0.0.1:${tcp}`, "web_1/HI\n");
        if (!hi.startsWith("<hub:web_1 DAD")) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(hi, "<hub:web_1 DAD from=fixture\n");

      const tcpOut = await socat(
        `TCP:127.0.0.1:${tcp}`,
        "ALIVE serial=3\nweb_1/ALIVE serial=4\nnobody/ALIVE\nhello\n",
      );
      const lines = tcpOut.trimEnd().split("\n");
      assert.equal(lines.length, 4, tcpOut);
      assert.match(lines[0]!, /^ABSOLUTELY reply_timestamp=\d+\.\d{9};serial=3$/);
      assert.match(lines[1]!, /^<hub:web_1 ABSOLUTELY reply_timestamp=\d+\.\d{9};serial=4$/);
      assert.equal(
        lines[2],
        "SERVICE_UNAVAILABLE command=ALIVE;message=no agent named nobody is known;service=nobody",
      );
      assert.equal(lines[3], 'INVALID message=column 1: command "hello" must be uppercase: HELLO');

      const unixOut = await socat(`UNIX-CONNECT:${sock}`, "*/HELP\n");
      assert.match(unixOut, /^<hub:web_1 COMMANDS list=ALIVE,HELP,.*\n$/);
      assert.match(unixOut, /,HI,/);

      if (hasNc) {
        const nc = execFile("nc", ["-N", "-w", "5", "127.0.0.1", String(tcp)], { timeout: 10_000 });
        nc.stdin!.end("web_1/HI\n");
        let out = "";
        nc.stdout!.on("data", (d: Buffer) => {
          out += d.toString();
        });
        await new Promise((r) => nc.on("exit", r));
        assert.equal(out, "<hub:web_1 DAD from=fixture\n");
      } else t.diagnostic("nc is not installed (Debian package netcat-openbsd): its part was skipped");

      // Log rotation over UDP: without the secret nothing happens; with it the agent reopens.
      renameSync(agentLog, `${agentLog}.1`);
      await socat(`UDP:127.0.0.1:${udp}`, "web_1/LOG_ROTATE");
      await until(
        () =>
          readFileSync(serverLog, "utf8").includes("wrong secret_code") ||
          readFileSync(serverLog, "utf8").includes("no secret_code"),
        5000,
        "the server to log the dropped datagram",
      );
      assert.equal(existsSync(agentLog), false, "nothing reopened without the secret");
      await socat(`UDP:127.0.0.1:${udp}`, "web_1/LOG_ROTATE secret_code=s3cret");
      await until(() => existsSync(agentLog), 5000, "the agent to reopen its log file");
      await until(
        () => readFileSync(agentLog, "utf8").includes("log files reopened"),
        5000,
        "the line after reopening",
      );
      const before = readFileSync(`${agentLog}.1`, "utf8");
      assert.match(before, /LOG_ROTATE received: reopening log files/);
      assert.doesNotMatch(before, /log files reopened/);
      assert.doesNotMatch(readFileSync(serverLog, "utf8"), /s3cret/, "the secret is never logged");

      // The server's own log, rotated by a UDP message to the server itself.
      renameSync(serverLog, `${serverLog}.1`);
      await socat(`UDP:127.0.0.1:${udp}`, "LOG_ROTATE secret_code=s3cret");
      await until(
        () => existsSync(serverLog) && readFileSync(serverLog, "utf8").includes("log files reopened"),
        5000,
        "the server to reopen its log",
      );

      // STOP for the agent through the server, then for the server.
      await socat(`TCP:127.0.0.1:${tcp}`, "web_1/STOP\n");
      assert.equal(await agent.exited, 0);
      await socat(`TCP:127.0.0.1:${tcp}`, "STOP\n");
      assert.equal(await server.exited, 0);
      assert.equal(existsSync(sock), false, "the Unix socket file is removed on exit");
    } finally {
      agent.child.kill("SIGKILL");
      server.child.kill("SIGKILL");
    }
  });

  it("an agent's own text endpoint answers directly", async (t) => {
    if (!hasSocat) {
      t.skip("socat is not installed (Debian package socat)");
      return;
    }
    const [port, text] = [await freePort(), await freePort()];
    const server = startCli(["server", "--standalone", "--listen", `tcp://127.0.0.1:${port}`]);
    const agent = startCli([
      "agent",
      "--server",
      `tcp://127.0.0.1:${port}`,
      "--name",
      "web-2",
      "--handlers",
      HANDLERS,
      "--text",
      `tcp://127.0.0.1:${text}`,
    ]);
    try {
      await agent.waitFor(`text on tcp://127.0.0.1:${text}`);
      assert.equal(await socat(`TCP:127.0.0.1:${text}`, "HI\n"), "DAD from=fixture\n");
      await socat(`TCP:127.0.0.1:${text}`, "QUITTING\n");
      assert.equal(await agent.exited, 0);
    } finally {
      agent.child.kill("SIGKILL");
      server.child.kill("SIGKILL");
    }
  });

  it("refuses bad --text flags with exit status 2", async () => {
    let r = await runCli(["server", "--text", "ftp://127.0.0.1:1"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--text: text address "ftp:\/\/127\.0\.0\.1:1": use tcp:\/\/host:port/);
    r = await runCli(["server", "--text", "tls://127.0.0.1:0"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--text tls:\/\/… needs --tls-cert and --tls-key/);
    r = await runCli(["agent", "--text", "udp://127.0.0.1:99999"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /port 99999 is beyond 65535/);
  });
});
