// examples/hi-bye as real processes: the client starts before its server and waits; the
// HI/DAD/CLIMB/TOP/WHO/MOM/BYE exchange; the client quits on BYE; LOG_ROTATE over UDP
// reopens the server's log file; `muster signal … QUIT` stops the server.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { freePort, type Proc, runCli, startScript } from "./support/cli.js";
import { until } from "./support/fleet.js";

const CLIENT = new URL("../examples/hi-bye/client.js", import.meta.url).pathname;
const SERVER = new URL("../examples/hi-bye/server.js", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "muster-hi-bye-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The `message` fields of the "text message received" trace lines, in order. */
function received(out: string): string[] {
  return out
    .split("\n")
    .filter((l) => l.includes('"text message received"'))
    .map((l) => (JSON.parse(l) as { message: string }).message);
}

it("examples/hi-bye: the client waits for its server, the exchange runs, BYE ends the client, QUIT the server", async () => {
  const [port, rotatePort, clientRotatePort] = [await freePort(), await freePort(), await freePort()];
  const log = join(dir, "server.log");
  const client = startScript(CLIENT, [
    "--server",
    `127.0.0.1:${port}`,
    "--pause",
    "50ms",
    "--logrotate-listen",
    `127.0.0.1:${clientRotatePort}`,
    "--trace",
  ]);
  let server: Proc | undefined;
  try {
    // Before the server is up the client keeps trying.
    await until(
      () => (client.all.match(/server not there yet/g) ?? []).length >= 2,
      10_000,
      "two failed attempts",
    );
    server = startScript(SERVER, [
      "--listen",
      `127.0.0.1:${port}`,
      "--log-rotate-listen",
      `127.0.0.1:${rotatePort}`,
      "--log-file",
      log,
      "--trace",
    ]);
    assert.equal(await client.exited, 0, client.all);
    assert.deepEqual(received(client.all), ["HI", "CLIMB", "WHO", "BYE"]);
    assert.match(client.all, /^BYE$/m);
    await until(() => received(readFileSync(log, "utf8")).length === 3, 5000, "the server's trace lines");
    assert.deepEqual(received(readFileSync(log, "utf8")), ["DAD", "TOP", "MOM"]);

    // logrotate renamed the file; LOG_ROTATE over UDP makes the server start a fresh one.
    renameSync(log, `${log}.1`);
    const rotate = await runCli(["signal", "--host", `127.0.0.1:${rotatePort}`, "LOG_ROTATE"]);
    assert.equal(rotate.code, 0, rotate.err);
    await until(
      () => existsSync(log) && readFileSync(log, "utf8").includes("log files reopened"),
      5000,
      "a fresh log",
    );
    assert.match(readFileSync(`${log}.1`, "utf8"), /LOG_ROTATE received: reopening log files/);

    const quit = await runCli(["signal", "--type", "tcp", "--host", `127.0.0.1:${port}`, "QUIT"]);
    assert.equal(quit.code, 0, quit.err);
    assert.equal(await server.exited, 0, server.all);
    assert.match(readFileSync(log, "utf8"), /QUIT received: closing the listeners/);
  } finally {
    client.child.kill("SIGKILL");
    server?.child.kill("SIGKILL");
  }
});
