import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort, type Proc, printed, runCli, startCli } from "./support/cli.js";

const FIXTURES = fileURLToPath(new URL("../../test/fixtures/tls/", import.meta.url));

describe("grpc:// and grpcs:// through the command line", () => {
  const procs: Proc[] = [];
  after(() => {
    for (const p of procs) p.child.kill("SIGKILL");
  });
  const start = (args: string[]): Proc => {
    const p = startCli(args);
    procs.push(p);
    return p;
  };

  it("agents on grpc and grpcs are listed, called and authenticated; a cut grpc link resumes", async () => {
    const [wsPort, grpcPort, grpcsPort, proxyPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const ws = `ws://127.0.0.1:${wsPort}`;
    const server = start([
      "server",
      "--listen",
      ws,
      "--listen",
      `grpc://127.0.0.1:${grpcPort}`,
      "--listen",
      `grpcs://127.0.0.1:${grpcsPort}`,
      "--tls-cert",
      `${FIXTURES}cert.pem`,
      "--tls-key",
      `${FIXTURES}key.pem`,
      "--log-json",
    ]);
    await server.waitFor(`listening on grpcs://127.0.0.1:${grpcsPort}`);
    assert.match(server.out, new RegExp(`listening on grpc://127\\.0\\.0\\.1:${grpcPort}`));

    const tokens: Record<string, string> = {};
    for (const name of ["g-1", "g-2", "g-3"]) {
      const t = await runCli(["token", "create", "--name", name, "--role", "agent", "--label", "via=grpc"]);
      assert.equal(t.code, 0, t.err);
      tokens[name] = t.out.trim();
    }
    const agent = (name: string, url: string, extra: string[] = []): Proc =>
      start(["agent", "--server", url, "--name", name, "--token", tokens[name]!, "--log-json", ...extra]);
    const g1 = agent("g-1", `grpc://127.0.0.1:${grpcPort}`);
    const g2 = agent("g-2", `grpcs://localhost:${grpcsPort}`, ["--tls-ca", `${FIXTURES}ca.pem`]);
    await printed(g1, '"msg":"connected"');
    await printed(g2, '"msg":"connected"');

    const listed = await runCli(["agents", "--server", ws, "--json"]);
    assert.equal(listed.code, 0, listed.err);
    const agents = JSON.parse(listed.out) as Array<{ name: string; state: string; transport: string }>;
    assert.deepEqual(agents.map((a) => [a.name, a.state, a.transport]).sort(), [
      ["g-1", "connected", "grpc"],
      ["g-2", "connected", "grpcs"],
    ]);
    const call = await runCli(["call", "via=grpc", "sys.ping", "--server", ws, "--json", "--timeout", "5s"]);
    assert.equal(call.code, 0, call.out + call.err);
    assert.match(call.out, /"summary":\{"ok":2,"error":0,"timeout":0,"notConnected":0\}/);

    // A token that is not the agent's own is refused over grpc exactly as over ws and tcp.
    const wrong = start([
      "agent",
      "--server",
      `grpc://127.0.0.1:${grpcPort}`,
      "--name",
      "g-9",
      "--token",
      tokens["g-3"]!,
      "--log-json",
    ]);
    await printed(
      wrong,
      '"reason":"the token is for agent g-3, not g-9","msg":"the server refused this agent: retrying"',
    );
    wrong.child.kill("SIGKILL");

    // Through a proxy that cuts every connection after a second: the session resumes each time
    // and calls keep working.
    const proxy = start([
      "chaos-proxy",
      "--target",
      `127.0.0.1:${grpcPort}`,
      "--listen",
      `127.0.0.1:${proxyPort}`,
      "--cut-every",
      "1s",
    ]);
    await proxy.waitFor("listening on");
    const g3 = agent("g-3", `grpc://127.0.0.1:${proxyPort}`);
    await printed(g3, '"msg":"connected"');
    await printed(g3, '"msg":"session resumed"', 20_000);
    for (let i = 0; i < 3; i++) {
      const r = await runCli(["call", "g-3", "sys.ping", "--server", ws, "--timeout", "10s"]);
      assert.equal(r.code, 0, r.out + r.err);
    }
    assert.doesNotMatch(
      g3.all,
      /"msg":"connected".*"msg":"connected"/s,
      "every cut was resumed, not a new session",
    );

    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);
  });

  it("refuses a grpcs listener without a certificate, and a bad grpc URL, with a clear message", async () => {
    const r = await runCli(["server", "--listen", "grpcs://127.0.0.1:0"]);
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.err, /grpcs:\/\/127\.0\.0\.1:0 needs a TLS certificate and key/);
    const bad = await runCli(["agent", "--server", "grpc://127.0.0.1:99999"]);
    assert.equal(bad.code, 2, bad.out + bad.err);
    assert.match(bad.err, /port|99999/);
  });
});
