// `muster server --config` and `muster agent --config` through the built CLI: the file's values
// stand for flags not given (flag > environment variable > file > default), `muster flags` says
// which came from the file, bad files are refused with exit status 2, the file name and the
// line, and --check-config checks without listening or writing anything.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runCli, startCli } from "./support/cli.js";

const dir = mkdtempSync(join(tmpdir(), "muster-cli-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** No config file, text secret or token from the environment the tests run in. */
const CLEAN = { MUSTER_CONFIG: undefined, MUSTER_TEXT_SECRET: undefined, MUSTER_TOKEN: undefined };

let files = 0;
/** Writes a config file of these lines; returns its path. */
function config(...lines: string[]): string {
  const file = join(dir, `c${++files}.yaml`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

function muster(args: string[], env: Record<string, string | undefined> = {}) {
  return runCli(args, 20_000, { ...CLEAN, ...env });
}

describe("muster server --config", () => {
  it("takes its flags from the file; a flag wins; muster flags says file, option or default", async () => {
    const file = config(
      "# the server of this test",
      "listen: [tcp://127.0.0.1:0, ws://127.0.0.1:0]",
      "admin: 127.0.0.1:0",
      "standalone: true",
      "heartbeat: 3s",
      "resume-window: 2m",
      "log-level: debug",
    );
    const server = startCli(["server", "--config", file, "--resume-window", "45s"], CLEAN);
    try {
      await server.waitFor(/admin on http:\/\/\S+/);
      assert.match(server.out, /^listening on tcp:\/\/127\.0\.0\.1:\d+$/m);
      assert.match(server.out, /^listening on ws:\/\/127\.0\.0\.1:\d+$/m);
      const admin = /admin on (http:\/\/\S+)/.exec(server.out)![1]!;
      const r = await muster(["flags", "--admin", admin, "--json"]);
      assert.equal(r.code, 0, r.err);
      const flags = Object.fromEntries(
        (JSON.parse(r.out) as Array<{ name: string; value: unknown; source: string }>).map((f) => [
          f.name,
          [f.value, f.source],
        ]),
      );
      assert.deepEqual(flags["heartbeat-interval"], [3000, "file"]);
      assert.deepEqual(flags["log-level"], ["debug", "file"]);
      assert.deepEqual(flags["resume-window"], [45_000, "option"]);
      assert.deepEqual(flags["call-timeout"], [10_000, "default"]);
      const table = await muster(["flags", "--admin", admin]);
      assert.match(table.out, /^heartbeat-interval +3s +cluster +file +/m);
    } finally {
      server.child.kill("SIGKILL");
      await server.exited;
    }
  });

  it("$MUSTER_CONFIG names the file when --config is not given; --config wins over it", async () => {
    const bad = config("listen: [tcp://127.0.0.1:0]", "standalone: true", "colour: blue");
    const good = config("listen: [tcp://127.0.0.1:0]", "standalone: true");
    const fromEnv = await muster(["server", "--check-config"], { MUSTER_CONFIG: bad });
    assert.equal(fromEnv.code, 2);
    assert.match(fromEnv.err, new RegExp(`^muster: ${bad}:3: unknown key "colour"`));
    const flag = await muster(["server", "--config", good, "--check-config"], { MUSTER_CONFIG: bad });
    assert.equal(flag.code, 0, flag.err);
    assert.match(flag.out, new RegExp(`^configuration ok \\(config file ${good}\\)$`, "m"));
  });

  it("an environment variable wins over the file, a flag over both", async () => {
    // An empty secret is refused: whichever of the three is in force shows.
    const file = config("listen: [tcp://127.0.0.1:0]", "standalone: true", 'text-secret: ""');
    const fileOnly = await muster(["server", "--config", file, "--check-config"]);
    assert.equal(fileOnly.code, 2);
    assert.match(fileOnly.err, /--text-secret cannot be empty/);
    const env = await muster(["server", "--config", file, "--check-config"], {
      MUSTER_TEXT_SECRET: "s3cret",
    });
    assert.equal(env.code, 0, env.err);
    const envEmpty = await muster(
      ["server", "--config", config("standalone: true", "text-secret: s3cret"), "--check-config"],
      {
        MUSTER_TEXT_SECRET: "",
      },
    );
    assert.equal(envEmpty.code, 2, "an empty $MUSTER_TEXT_SECRET wins over the file's");
    const flag = await muster(["server", "--config", file, "--check-config", "--text-secret", "x"], {
      MUSTER_TEXT_SECRET: "",
    });
    assert.equal(flag.code, 0, flag.err);
  });

  it("--check-config checks without listening, creating the signing key or opening the log file", async () => {
    const home = mkdtempSync(join(dir, "home-"));
    const log = join(dir, "check.log");
    const file = config("listen: [tcp://127.0.0.1:0]", `log-file: ${log}`);
    const r = await muster(["server", "--config", file, "--check-config"], { MUSTER_HOME: home });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /does not exist yet: it is created at the first start/);
    assert.match(r.out, /^configuration ok/m);
    assert.doesNotMatch(r.out, /listening on/);
    assert.equal(existsSync(join(home, "auth.key")), false, "no signing key made");
    assert.equal(existsSync(log), false, "no log file opened");
    const missing = config("tls-cert: missing.pem", "tls-key: missing.key");
    const tls = await muster(["server", "--config", missing, "--check-config"], { MUSTER_HOME: home });
    assert.equal(tls.code, 2);
    assert.match(tls.err, /^muster: --tls-cert: cannot read missing\.pem: ENOENT/);
  });
});

describe("muster server and agent refuse a bad config file with exit status 2", () => {
  const cases: Array<[what: string, command: string, lines: string[], message: RegExp]> = [
    [
      "an unknown key, with the nearest flag",
      "server",
      ["standalone: true", "", "hearbeat: 5s"],
      /^muster: FILE:3: unknown key "hearbeat"; did you mean "heartbeat"\?\n/,
    ],
    [
      "an unknown key far from any flag",
      "agent",
      ["name: a", "colour: blue"],
      /^muster: FILE:2: unknown key "colour": the keys are the command's long flag names \(see --help\)\n/,
    ],
    [
      "a list for one value",
      "server",
      ["heartbeat:", "  - 1s", "  - 2s"],
      /^muster: FILE:2: heartbeat: give one value, not a list\n/,
    ],
    [
      "a flag that is not true or false",
      "server",
      ["", "standalone: yes"],
      /^muster: FILE:2: standalone: "yes" is not true or false/,
    ],
    [
      "a label that is not key: value",
      "agent",
      ["label:", "  role: [web]"],
      /^muster: FILE:2: label: each label is key: value, e.g. role: web\n/,
    ],
    [
      "a server URL of another scheme, with its item's line",
      "agent",
      ["server:", "  - ws://127.0.0.1:1", "  - ftp://x:1"],
      /^muster: FILE:3: server: ftp:\/\/ is not a scheme/,
    ],
    [
      "YAML that does not parse",
      "server",
      ["standalone: true", "listen: [ws://a:1", "heartbeat: 5s"],
      /^muster: FILE:\d+: not valid YAML: /,
    ],
    [
      "a key given twice",
      "agent",
      ["name: a", "name: b"],
      /^muster: FILE:2: not valid YAML: Map keys must be unique\n/,
    ],
    [
      "a file that is not a mapping",
      "agent",
      ["- name: a"],
      /^muster: FILE:1: the config file must be a mapping of flag names to values/,
    ],
    [
      "a file that names another",
      "server",
      ["config: other.yaml"],
      /^muster: FILE:1: config goes on the command line only/,
    ],
  ];
  for (const [what, command, lines, message] of cases)
    it(`${command}: ${what}`, async () => {
      const file = config(...lines);
      const r = await muster([command, "--config", file]);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, new RegExp(message.source.replace("FILE", file.replace(/[.]/g, "\\."))));
    });

  it("a value the flag's parser refuses, with the same message as the flag", async () => {
    const flag = await muster(["server", "--heartbeat", "5 seconds"]);
    assert.equal(flag.code, 2);
    const why = '"5 seconds" is not a duration: use a number and a unit, e.g. 500ms, 3s, 2m, 1h';
    assert.ok(flag.err.includes(why), flag.err);
    const file = config("standalone: true", "heartbeat: 5 seconds");
    const r = await muster(["server", "--config", file]);
    assert.equal(r.code, 2);
    assert.equal(r.err, `muster: ${file}:2: heartbeat: ${why}\n`);
  });

  it("a file that cannot be read, a directory, a file over 1 MiB", async () => {
    const missing = join(dir, "missing.yaml");
    const r = await muster(["agent", "--config", missing]);
    assert.equal(r.code, 2);
    assert.equal(r.err, `muster: ${missing}: cannot read the config file: ENOENT (no such file)\n`);
    const d = await muster(["server", "--config", dir]);
    assert.equal(d.code, 2);
    assert.match(d.err, /cannot read the config file: EISDIR/);
    const big = join(dir, "big.yaml");
    writeFileSync(big, `${"# padding\n".repeat(110_000)}standalone: true\n`);
    const b = await muster(["server", "--config", big]);
    assert.equal(b.code, 2);
    assert.equal(b.err, `muster: ${big}: the config file is larger than the 1 MiB allowed\n`);
  });
});

describe("muster agent --config", () => {
  it("takes its server list, name and labels from the file", async () => {
    const server = startCli(["server", "--standalone", "--listen", "tcp://127.0.0.1:0"], CLEAN);
    let agent: ReturnType<typeof startCli> | undefined;
    try {
      await server.waitFor(/listening on tcp:\/\/\S+/);
      const url = /listening on (tcp:\/\/\S+)/.exec(server.out)![1]!;
      const file = config(
        "server:",
        "  - ws://127.0.0.1:9", // nothing there: tried, then the next
        `  - ${url}`,
        "server-order: ordered",
        "name: cfg-1",
        "label: {role: web, zone: eu}",
        "reconnect-max: 500ms",
      );
      agent = startCli(["agent", "--config", file], CLEAN);
      const start = Date.now();
      for (;;) {
        const r = await muster(["agents", "--server", url, "--json"]);
        const list = JSON.parse(r.out || "[]") as Array<{ name: string; state: string; labels: unknown }>;
        const me = list.find((a) => a.name === "cfg-1" && a.state === "connected");
        if (me !== undefined) {
          assert.deepEqual(me.labels, { role: "web", zone: "eu" });
          break;
        }
        if (Date.now() - start > 15_000) assert.fail(`cfg-1 not connected: ${r.out}${r.err}${agent.all}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      agent?.child.kill("SIGKILL");
      server.child.kill("SIGKILL");
      await Promise.all([agent?.exited, server.exited]);
    }
  });

  it("--check-config reads the token file the flags name and exits 0 without connecting", async () => {
    const token = join(dir, "agent.token");
    const file = config("server: [tcp://127.0.0.1:9]", "name: check-1", `token-file: ${token}`);
    const none = await muster(["agent", "--config", file, "--check-config"]);
    assert.equal(none.code, 2);
    assert.match(none.err, /--token-file: .*agent\.token cannot be read or is empty/);
    const key = join(dir, "agent-test.key");
    assert.equal((await muster(["token", "keygen", "--key", key])).code, 0);
    const made = await muster([
      "token",
      "create",
      "--name",
      "check-1",
      "--role",
      "agent",
      "--key",
      key,
      "--out",
      token,
    ]);
    assert.equal(made.code, 0, made.err);
    const r = await muster(["agent", "--config", file, "--check-config"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `configuration ok (config file ${file})\n`);
  });
});
