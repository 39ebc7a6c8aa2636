// `muster status`, `muster flags`, `muster shutdown` and `muster token revoke --server` as a user runs them, against the admin
// API served over a fake AdminHost: output, exit statuses, refusals and an unreachable server.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CLI, freePort } from "./support/cli.js";
import {
  type FakeAdminHost,
  fakeAdminHost,
  fakeAgent,
  serveAdmin,
  TOKENS,
} from "./support/fake-admin-host.js";

const home = mkdtempSync(join(tmpdir(), "muster-status-"));

/** Runs `muster …` with an environment of our own: no token, no admin URL, no key. */
function muster(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const clean = { ...process.env };
  for (const k of ["MUSTER_TOKEN", "MUSTER_ADMIN", "MUSTER_AUTH_KEY", "MUSTER_HOME"]) delete clean[k];
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...clean, MUSTER_HOME: home, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    }),
  );
}

describe("muster status, flags and shutdown", () => {
  let host: FakeAdminHost;
  let url: string;
  let stop: () => Promise<void>;

  before(async () => {
    host = fakeAdminHost({
      agents: [
        fakeAgent("web-1", "connected"),
        fakeAgent("web-2", "connected"),
        fakeAgent("db-1", "offline"),
      ],
    });
    ({ url, close: stop } = await serveAdmin(host));
  });
  after(async () => {
    await stop();
    host.close();
    rmSync(home, { recursive: true, force: true });
  });

  it("status shows health, readiness, version, agents by state and flags; exit 0 when ready", async () => {
    const r = await muster(["status", "--admin", url, "--token", TOKENS.operator]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^admin {6}http:\/\/127\.0\.0\.1:\d+\nhealth {5}ok\nreadiness {2}ready\n/);
    assert.match(r.out, new RegExp(`^version    \\d+\\.\\d+\\.\\d+.*, Node ${process.versions.node}$`, "m"));
    assert.match(r.out, /^agents {5}3: 2 connected, 1 offline$/m);
    assert.match(r.out, /^FLAG +VALUE +SCOPE +SOURCE +DESCRIPTION$/m);
    assert.match(r.out, /^log-level +info +server +option +least severe log level written$/m);
    assert.match(r.out, /^heartbeat-interval +5s +server +default +PING interval on idle links$/m);
  });

  it("status --json, with the token from $MUSTER_TOKEN and the URL from $MUSTER_ADMIN", async () => {
    const r = await muster(["status", "--json"], { MUSTER_TOKEN: TOKENS.operator, MUSTER_ADMIN: url });
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out) as Record<string, unknown>;
    assert.equal(s.health, "ok");
    assert.equal(s.readiness, "ready");
    assert.equal(s.standalone, false);
    assert.deepEqual((s.agents as { total: number }).total, 3);
    assert.equal((s.version as { node: string }).node, process.versions.node);
    assert.deepEqual(
      (s.flags as Array<{ name: string }>).map((f) => f.name),
      ["log-level", "heartbeat-interval"],
    );
  });

  it("status exits 1 when the server is not ready, and when the token is refused", async () => {
    host.setReadiness("starting");
    try {
      const r = await muster(["status", "--admin", url, "--token", TOKENS.operator]);
      assert.equal(r.code, 1);
      assert.match(r.out, /^readiness {2}starting$/m);
    } finally {
      host.setReadiness("ready");
    }
    const none = await muster(["status", "--admin", url]);
    assert.equal(none.code, 1);
    assert.match(none.out, /^readiness {2}ready$/m);
    assert.match(
      none.err,
      /muster: GET \/version: 401 unauthenticated: no token: send Authorization: Bearer <token> \(no token given: use --token/,
    );
    const agent = await muster(["status", "--admin", url, "--token", TOKENS.agent]);
    assert.equal(agent.code, 1);
    assert.match(agent.err, /403 permission_denied: an agent token cannot use the admin API/);
  });

  it("status exits 3 when nothing answers, 2 for a malformed --admin", async () => {
    const port = await freePort();
    const r = await muster(["status", "--admin", `127.0.0.1:${port}`]);
    assert.equal(r.code, 3);
    assert.match(
      r.err,
      new RegExp(`muster: cannot reach the admin API at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`),
    );
    const bad = await muster(["status", "--admin", "ftp://x"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--admin: "ftp:\/\/x" is not an http:\/\/ or https:\/\/ URL/);
  });

  it("flags lists; flags set changes (admin), with --token-file", async () => {
    const list = await muster(["flags", "--admin", url, "--token", TOKENS.operator, "--json"]);
    assert.equal(list.code, 0, list.err);
    assert.deepEqual(
      (JSON.parse(list.out) as Array<{ name: string; value: unknown }>).map((f) => [f.name, f.value]),
      [
        ["log-level", "info"],
        ["heartbeat-interval", 5000],
      ],
    );
    const file = join(home, "token");
    writeFileSync(file, `${TOKENS.admin}\n`);
    const set = await muster([
      "flags",
      "set",
      "log-level=debug",
      "heartbeat-interval=2s",
      "--admin",
      url,
      "--token-file",
      file,
    ]);
    assert.equal(set.code, 0, set.err);
    assert.match(set.out, /^log-level +debug +server +api by ada /m);
    assert.match(set.out, /^heartbeat-interval +2s +server +api by ada /m);
    assert.deepEqual(host.state, { logLevel: "debug", heartbeatMs: 2000 });
    // Options before the subcommand's name count too.
    const before = await muster(["flags", "--admin", url, "--token", TOKENS.admin, "set", "log-level=info"]);
    assert.equal(before.code, 0, before.err);
    assert.equal(host.state.logLevel, "info");
  });

  it("flags set: exit 2 for a malformed NAME=VALUE, 1 with the server's message for a refusal", async () => {
    for (const arg of ["log-level", "=debug", "Log-Level=debug"]) {
      const r = await muster(["flags", "set", arg, "--admin", url, "--token", TOKENS.admin]);
      assert.equal(r.code, 2, arg);
      assert.match(r.err, /is not NAME=VALUE with a kebab-case name, e.g. log-level=debug/);
    }
    const twice = await muster(["flags", "set", "log-level=debug", "log-level=info", "--admin", url]);
    assert.equal(twice.code, 2);
    assert.match(twice.err, /flag log-level is given twice/);
    const bad = await muster([
      "flags",
      "set",
      "heartbeat-interval=2 seconds",
      "--admin",
      url,
      "--token",
      TOKENS.admin,
    ]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.err,
      /PUT \/api\/flags: 400 invalid_argument: heartbeat-interval: "2 seconds" is not a duration/,
    );
    const role = await muster([
      "flags",
      "set",
      "log-level=debug",
      "--admin",
      url,
      "--token",
      TOKENS.operator,
    ]);
    assert.equal(role.code, 1);
    assert.match(
      role.err,
      /403 permission_denied: PUT \/api\/flags needs the admin role; olga has the operator role/,
    );
    assert.equal(host.state.logLevel, "info");
  });

  it("token revoke --server revokes through the admin API (admin), sending the id only", async () => {
    const r = await muster([
      "token",
      "revoke",
      "Qm9vYmFyYmF6cXV4MTIz",
      "--server",
      url,
      "--token",
      TOKENS.admin,
      "--reason",
      "lost",
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `revoked token Qm9vYmFyYmF6cXV4MTIz through ${url}: in force on that server\n`);
    assert.deepEqual(
      host.revoked.map((x) => [x.id, x.reason, x.by]),
      [["Qm9vYmFyYmF6cXV4MTIz", "lost", "ada"]],
    );
    const again = await muster(["token", "revoke", "Qm9vYmFyYmF6cXV4MTIz", "--server", url], {
      MUSTER_TOKEN: TOKENS.admin,
    });
    assert.equal(again.code, 0, again.err);
    assert.equal(
      again.out,
      `token Qm9vYmFyYmF6cXV4MTIz was already revoked on ${url}; in force on that server\n`,
    );
    const operator = await muster(["token", "revoke", "abc", "--server", url, "--token", TOKENS.operator]);
    assert.equal(operator.code, 1);
    assert.match(operator.err, /POST \/api\/revocations: 403 permission_denied: .*needs the admin role/);
    const both = await muster([
      "token",
      "revoke",
      "abc",
      "--server",
      url,
      "--revocations",
      join(home, "r.txt"),
    ]);
    assert.equal(both.code, 2);
    assert.match(both.err, /--revocations is the file mode, --server the server's: give one/);
    const keyOnly = await muster(["token", "revoke", "abc", "--key", join(home, "nokey")]);
    assert.equal(keyOnly.code, 2);
    assert.match(keyOnly.err, /--token-file and --key go with --server/);
    const down = await muster(["token", "revoke", "abc", "--server", `127.0.0.1:${await freePort()}`]);
    assert.equal(down.code, 3);
  });

  it("shutdown asks for a drain (admin)", async () => {
    const refused = await muster(["shutdown", "--admin", url, "--token", TOKENS.operator]);
    assert.equal(refused.code, 1);
    assert.deepEqual(host.shutdowns, []);
    const r = await muster(["shutdown", "--admin", url, "--token", TOKENS.admin]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "draining: calls in flight have up to 30s to finish, then the server stops\n");
    assert.deepEqual(host.shutdowns, [{ subject: "ada", role: "admin" }]);
    const status = await muster(["status", "--admin", url, "--token", TOKENS.operator]);
    assert.equal(status.code, 1);
    assert.match(status.out, /^readiness {2}draining$/m);
  });
});

describe("muster status of a standalone server", () => {
  it("prints the standalone warning and needs no token", async () => {
    const host = fakeAdminHost({ standalone: true });
    const { url, close } = await serveAdmin(host);
    try {
      const r = await muster(["status", "--admin", url]);
      assert.equal(r.code, 0, r.err);
      assert.match(
        r.out,
        /^readiness {2}ready\nWARNING: standalone mode: no authentication, loopback only\n/m,
      );
    } finally {
      await close();
      host.close();
    }
  });
});
