// Server URLs on the command line: host:port alone means ws://, and a scheme the command line
// cannot dial is a usage error (exit 2) naming the ones it can.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";

describe("--server URLs", () => {
  let server: Proc;
  let port = 0;
  before(async () => {
    port = await freePort();
    server = startCli(["server", "--standalone", "--listen", `ws://127.0.0.1:${port}`]);
    await server.waitFor("listening");
  });
  after(async () => {
    server.child.kill("SIGKILL");
    await server.exited;
  });

  it("host:port alone is ws://host:port, as --admin host:port is", async () => {
    const r = await runCli(["agents", "--server", `127.0.0.1:${port}`, "--json"]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), []);
  });

  it("memory://, ftp:// and words are usage errors (exit 2) naming the schemes that work", async () => {
    for (const [args, why] of [
      [
        ["agents", "--server", "memory://server"],
        /memory:\/\/ is not a scheme the command line dials: give ws:\/\/, wss:\/\/, tcp:\/\/, tls:\/\//,
      ],
      [["call", "--server", "ftp://127.0.0.1:1", "all", "sys.ping"], /ftp:\/\/ is not a scheme/],
      [["agent", "--server", "memory://server", "--name", "x"], /--server: memory:\/\/ is not a scheme/],
      [["run", "--server", "127.0.0.1", "x.yaml"], /"127.0.0.1" is not a server URL: give ws:\/\/host:port/],
    ] as const) {
      const r = await runCli([...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, why);
    }
  });
});
