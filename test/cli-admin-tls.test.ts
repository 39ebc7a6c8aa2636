// The admin commands over an https:// admin URL (a server's wss:// listener) with a CA of the
// test's own, through the built CLI: without --tls-ca they stop with the fix named, with it (or
// --tls-insecure) they work, without NODE_EXTRA_CA_CERTS. `muster agents accept` reaches a
// wss:// server the same way.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { hasOpenssl, makeCertificates } from "./support/certs.js";
import { type Proc, runCli, startCli } from "./support/cli.js";

const skip = hasOpenssl ? false : "openssl is not installed: no certificates for an https:// admin API";

describe("admin commands over https:// with --tls-ca and --tls-insecure", { skip }, () => {
  let dir: string;
  let env: Record<string, string | undefined>;
  let server: Proc;
  let wss: string;
  let https: string;
  let ca: string;
  let foreign: string;

  const muster = (args: string[]) => runCli(args, 20_000, env);
  /** What every command says when the certificate does not verify: the reason, and the fix. */
  const untrusted = (): RegExp =>
    new RegExp(
      `^muster: cannot reach the admin API at ${https.replace(/\./g, "\\.")}: its certificate does not verify \\([A-Z_]+: [^)]+\\): give the CA that signed it with --tls-ca FILE, or --tls-insecure to skip the check \\(testing only\\)\\n$`,
    );

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "muster-admin-tls-"));
    makeCertificates(dir);
    ca = join(dir, "ca.pem");
    foreign = join(dir, "foreign.pem");
    // The CLI's own trust only: no extra CA from the environment, no token or URL either.
    env = {
      MUSTER_HOME: join(dir, "home"),
      NODE_EXTRA_CA_CERTS: undefined,
      MUSTER_TOKEN: undefined,
      MUSTER_ADMIN: undefined,
      MUSTER_CONFIG: undefined,
    };
    server = startCli(
      [
        "server",
        "--listen",
        "wss://127.0.0.1:0",
        "--tls-cert",
        join(dir, "server.pem"),
        "--tls-key",
        join(dir, "server.key"),
        "--approve",
      ],
      env,
    );
    await server.waitFor(/listening on wss:\/\/\S+/);
    wss = /listening on (wss:\/\/\S+)/.exec(server.out)![1]!;
    https = wss.replace(/^wss:/, "https:");
  });
  after(async () => {
    server?.child.kill("SIGKILL");
    await server?.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it("without --tls-ca: status, flags, flags set and token revoke stop with exit status 3, naming the fix", async () => {
    for (const args of [
      ["status", "--admin", wss],
      ["flags", "--admin", https],
      ["flags", "set", "log-level=debug", "--admin", https],
      ["token", "revoke", "AAAAAAAAAAAAAAAAAAAAAA", "--server", https],
    ]) {
      const r = await muster(args);
      assert.equal(r.code, 3, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, untrusted(), args.join(" "));
    }
  });

  it("a CA that did not sign the server's certificate is refused the same way", async () => {
    const r = await muster(["status", "--admin", https, "--tls-ca", foreign]);
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, untrusted());
  });

  it("with --tls-ca: status, flags and flags set (the option before or after set) work", async () => {
    const status = await muster(["status", "--admin", wss, "--tls-ca", ca]);
    assert.equal(status.code, 0, status.err);
    assert.match(
      status.out,
      new RegExp(`^admin {6}${https.replace(/\./g, "\\.")}\\nhealth {5}ok\\nreadiness {2}ready\\n`),
    );
    const set = await muster(["flags", "set", "log-level=debug", "--admin", https, "--tls-ca", ca, "--json"]);
    assert.equal(set.code, 0, set.err);
    const before = await muster(["flags", "--admin", https, "--tls-ca", ca, "set", "heartbeat-interval=2s"]);
    assert.equal(before.code, 0, before.err);
    const list = await muster(["flags", "--admin", https, "--tls-ca", ca, "--json"]);
    assert.equal(list.code, 0, list.err);
    const flags = JSON.parse(list.out) as Array<{ name: string; value: unknown; source: string }>;
    assert.deepEqual(
      flags
        .filter((f) => f.name === "log-level" || f.name === "heartbeat-interval")
        .map((f) => [f.name, f.value, f.source]),
      [
        ["log-level", "debug", "api"],
        ["heartbeat-interval", 2000, "api"],
      ],
    );
  });

  it("with --tls-insecure: the certificate is not checked", async () => {
    const r = await muster(["status", "--admin", https, "--tls-insecure", "--json"]);
    assert.equal(r.code, 0, r.err);
    assert.equal((JSON.parse(r.out) as { readiness: string }).readiness, "ready");
  });

  it("token revoke --server takes --tls-ca", async () => {
    const r = await muster(["token", "revoke", "AAAAAAAAAAAAAAAAAAAAAA", "--server", https, "--tls-ca", ca]);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      new RegExp(`^revoked token AAAAAAAAAAAAAAAAAAAAAA through ${https.replace(/\./g, "\\.")}: `),
    );
  });

  it("--tls-ca and --tls-insecure are refused where they mean nothing, and an unreadable CA file", async () => {
    const plain = await muster(["status", "--admin", "http://127.0.0.1:9", "--tls-ca", ca]);
    assert.equal(plain.code, 2);
    assert.equal(
      plain.err,
      "muster: --tls-ca and --tls-insecure are for an https:// admin URL; --admin is http://127.0.0.1:9 (plain HTTP)\n",
    );
    const file = await muster(["token", "revoke", "AAAAAAAAAAAAAAAAAAAAAA", "--tls-insecure"]);
    assert.equal(file.code, 2);
    assert.equal(file.err, "muster: --tls-ca and --tls-insecure go with --server\n");
    const missing = await muster(["flags", "--admin", https, "--tls-ca", join(dir, "missing.pem")]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /^muster: --tls-ca: cannot read .*missing\.pem: ENOENT\n$/);
  });

  it("agents accept reaches a wss:// server with --tls-ca, and names the certificate without it", async () => {
    const enrol = join(dir, "enrol.token");
    const own = join(dir, "edge-1.token");
    const made = await muster(["token", "create", "--name", "edge-*", "--role", "enrol", "--out", enrol]);
    assert.equal(made.code, 0, made.err);
    const agent = startCli(
      [
        "agent",
        "--server",
        wss,
        "--tls-ca",
        ca,
        "--name",
        "edge-1",
        "--enrol-token-file",
        enrol,
        "--token-file",
        own,
      ],
      env,
    );
    try {
      await agent.waitFor(/^pending: /m);
      const without = await muster(["agents", "accept", "edge-1", "--server", wss]);
      assert.equal(without.code, 3, without.err);
      assert.match(
        without.err,
        /^muster: cannot reach the server at wss:\/\/\S+: .*certificate.*: give the CA that signed its certificate with --tls-ca FILE, or --tls-insecure to skip the check \(testing only\)$/m,
      );
      const r = await muster(["agents", "accept", "edge-1", "--server", wss, "--tls-ca", ca]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^accepted edge-1 \(fingerprint [0-9a-f]{16}, from /);
      await agent.waitFor(/^enrolled$/m);
      assert.ok(existsSync(own), "the agent keeps the token it was issued");
    } finally {
      agent.child.kill("SIGKILL");
      await agent.exited;
    }
  });

  it("shutdown with --tls-ca drains the server, which exits 0", async () => {
    const r = await muster(["shutdown", "--admin", https, "--tls-ca", ca]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^draining: calls in flight have up to 10s to finish, then the server stops\n$/);
    assert.equal(await server.exited, 0);
  });
});
