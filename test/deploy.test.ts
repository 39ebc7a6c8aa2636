// The deployment files under deploy/ are what docs/deploy.md shows, systemd and logrotate take
// them, every muster command line in them is one the CLI takes, and the recipe works: the
// server and an agent started as the units start them (under a root of the test's own) have
// their logs rotated by the logrotate file, and the container's health check tells a ready
// server from a gone one.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLI, type Proc, runCli, startCli } from "./support/cli.js";
import {
  dockerInstructions,
  envPairs,
  execForm,
  filesUnder,
  includedBlocks,
  REPO,
  underRoot,
  unitCommand,
  unitDirectives,
} from "./support/deploy-files.js";

const BIN = "/usr/local/bin/muster";
const UNITS = ["deploy/systemd/muster-server.service", "deploy/systemd/muster-agent@.service"];
const LOGROTATE = "deploy/logrotate/muster";
const DOCKERFILE = "deploy/container/Dockerfile";
/** The agent instance the template unit is tried with. */
const INSTANCE = "web-1";
/** Nothing from the environment the tests run in: no config file, token or key of its own. */
const CLEAN = {
  MUSTER_CONFIG: undefined,
  MUSTER_TOKEN: undefined,
  MUSTER_TEXT_SECRET: undefined,
  MUSTER_AUTH_KEY: undefined,
  MUSTER_SERVER: undefined,
};

const read = (path: string): string => readFileSync(join(REPO, path), "utf8");
const installed = (command: string): boolean => spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;

const dir = mkdtempSync(join(tmpdir(), "muster-deploy-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An executable standing for the installed `muster`: the built CLI. */
function shim(): string {
  const path = join(dir, "bin", "muster");
  if (!existsSync(path)) {
    mkdirSync(join(dir, "bin"), { recursive: true });
    writeFileSync(path, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(path, 0o755);
  }
  return path;
}

/** A root of its own where the units expect their files: /etc/muster/*.yaml, the directories. */
function makeRoot(name: string): string {
  const root = join(dir, name);
  for (const d of [
    "etc/muster",
    "var/lib/muster",
    "var/log/muster",
    "run/muster",
    `run/muster-agent/${INSTANCE}`,
  ])
    mkdirSync(join(root, d), { recursive: true });
  for (const f of ["muster.yaml", "agent.yaml"])
    writeFileSync(join(root, "etc/muster", f), underRoot(read(`deploy/config/${f}`), root));
  return root;
}

interface MusterCommand {
  where: string;
  args: string[];
  env: Record<string, string>;
}

/** The muster command lines of a unit (ExecStart=, ExecStartPre=, …), paths under `root`. */
function unitCommands(unit: string, root: string): MusterCommand[] {
  const directives = unitDirectives(read(unit));
  const env: Record<string, string> = {};
  for (const d of directives.filter((x) => x.key === "Environment"))
    for (const [k, v] of envPairs(d.value)) env[k] = underRoot(v, root);
  return directives
    .filter((d) => /^Exec[A-Z][A-Za-z]*$/.test(d.key))
    .map((d) => ({ key: d.key, words: unitCommand(d.value, INSTANCE) }))
    .filter((c) => c.words[0] === BIN)
    .map((c) => ({
      where: `${unit} ${c.key}`,
      args: c.words.slice(1).map((w) => underRoot(w, root)),
      env,
    }));
}

/** The Dockerfile's command (ENTRYPOINT and CMD), its files (COPY) and environment (ENV). */
function containerCommand(root: string): MusterCommand {
  const instructions = dockerInstructions(read(DOCKERFILE));
  const copied = new Map<string, string>();
  const env: Record<string, string> = {};
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  for (const [op, rest] of instructions) {
    if (op === "COPY" && !rest.startsWith("--")) {
      const [from, to] = rest.split(/\s+/);
      copied.set(to!, join(REPO, from!));
    }
    // The last stage's environment is the one that runs.
    if (op === "FROM") for (const k of Object.keys(env)) delete env[k];
    if (op === "ENV") for (const [k, v] of envPairs(rest)) env[k] = underRoot(v, root);
    if (op === "ENTRYPOINT") entrypoint = execForm(rest);
    if (op === "CMD") cmd = execForm(rest);
  }
  const words = [...entrypoint, ...cmd];
  assert.equal(words[0], "muster", `${DOCKERFILE}: the image runs muster`);
  return {
    where: `${DOCKERFILE} ENTRYPOINT and CMD`,
    args: words.slice(1).map((w) => copied.get(w) ?? w),
    env,
  };
}

describe("deploy/", () => {
  it("docs/deploy.md shows every file under deploy/ word for word, and no file that is not there", () => {
    const blocks = includedBlocks(read("docs/deploy.md"));
    const shipped = filesUnder("deploy");
    assert.ok(shipped.length >= 8, shipped.join(", "));
    assert.deepEqual(blocks.map((b) => b.path).sort(), shipped.slice().sort());
    for (const b of blocks) assert.equal(b.text, read(b.path), `docs/deploy.md:${b.line}: ${b.path} differs`);
  });

  it("systemd-analyze verify takes the units", (t) => {
    if (!installed("systemd-analyze")) return t.skip("systemd-analyze is not installed");
    const version = Number(
      /systemd (\d+)/.exec(spawnSync("systemd-analyze", ["--version"]).stdout.toString())?.[1],
    );
    const checked = join(dir, "units");
    mkdirSync(checked, { recursive: true });
    for (const unit of UNITS) {
      // verify checks that the command exists: the built CLI stands for the installed one.
      const file = join(checked, unit.split("/").pop()!);
      writeFileSync(file, read(unit).replaceAll(BIN, shim()));
      const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8", timeout: 60_000 });
      assert.equal(r.status, 0, `${unit}:\n${r.stdout}${r.stderr}`);
      for (const line of `${r.stdout}${r.stderr}`.split("\n").filter((l) => l.trim() !== "")) {
        // The restart backoff is systemd 254's; older versions say they ignore it.
        if (version < 254 && /Unknown key '(RestartSteps|RestartMaxDelaySec)'/.test(line)) {
          t.diagnostic(`systemd ${version}: ${line}`);
          continue;
        }
        assert.fail(`${unit}: systemd-analyze verify: ${line}`);
      }
    }
  });

  it("every muster command line of the units and the Dockerfile passes --check-config", async () => {
    const root = makeRoot("check");
    const key = join(dir, "check.key");
    assert.equal((await runCli(["token", "keygen", "--key", key], 20_000, CLEAN)).code, 0);
    const token = join(root, "var/lib/muster", `${INSTANCE}.token`);
    const made = await runCli(
      ["token", "create", "--name", INSTANCE, "--role", "agent", "--key", key, "--out", token],
      20_000,
      CLEAN,
    );
    assert.equal(made.code, 0, made.err);
    const commands = [...UNITS.flatMap((u) => unitCommands(u, root)), containerCommand(root)];
    assert.deepEqual(
      commands.map((c) => c.where),
      [
        `${UNITS[0]} ExecStartPre`,
        `${UNITS[0]} ExecStart`,
        `${UNITS[1]} ExecStart`,
        `${DOCKERFILE} ENTRYPOINT and CMD`,
      ],
    );
    for (const c of commands) {
      const args = c.args.includes("--check-config") ? c.args : [...c.args, "--check-config"];
      const r = await runCli(args, 20_000, { ...CLEAN, MUSTER_HOME: join(dir, "check-home"), ...c.env });
      assert.equal(r.code, 0, `${c.where}: muster ${args.join(" ")}\n${r.out}${r.err}`);
      assert.match(r.out, /^configuration ok \(config file \S+\.yaml\)$/m, c.where);
    }
    assert.equal(existsSync(join(root, "var/lib/muster/auth.key")), false, "a check makes no key");
  });

  it("logrotate -d takes the logrotate file", (t) => {
    if (!installed("logrotate")) return t.skip("logrotate is not installed");
    // As /etc/logrotate.d installs it: mode 0644 (logrotate ignores a file others may write).
    const conf = join(dir, "logrotate-d.conf");
    writeFileSync(conf, read(LOGROTATE), { mode: 0o644 });
    const r = spawnSync("logrotate", ["-d", "-s", join(dir, "logrotate-d.state"), conf], {
      encoding: "utf8",
      timeout: 60_000,
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.match(out, /^Handling 2 logs$/m);
    assert.doesNotMatch(out, /^error:/m);
  });
});

describe("the recipe, run under a root of the test's own", () => {
  let root: string;
  let server: Proc | undefined;
  let agent: Proc | undefined;
  let ws = "";

  after(async () => {
    for (const p of [agent, server]) p?.child.kill("SIGKILL");
    await Promise.all([agent?.exited, server?.exited]);
  });

  it("the server and an agent start as their units start them", async () => {
    root = makeRoot("live");
    const [start] = unitCommands(UNITS[0]!, root).filter((c) => c.where.endsWith(" ExecStart"));
    // Ports of the test's own: a flag wins over the config file.
    server = startCli(
      [
        ...start!.args,
        "--listen",
        "tcp://127.0.0.1:0",
        "--listen",
        "ws://127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
      ],
      { ...CLEAN, ...start!.env },
    );
    await server.waitFor(/^text on unix:\S+$/m);
    assert.match(server.out, new RegExp(`^text on unix:${root}/run/muster/text\\.sock$`, "m"));
    const tcp = /^listening on (tcp:\/\/\S+)$/m.exec(server.out)![1]!;
    ws = /^listening on ws:\/\/(\S+)$/m.exec(server.out)![1]!;
    const token = join(root, "var/lib/muster", `${INSTANCE}.token`);
    const made = await runCli(
      ["token", "create", "--name", INSTANCE, "--role", "agent", "--out", token],
      20_000,
      {
        ...CLEAN,
        ...start!.env,
      },
    );
    assert.equal(made.code, 0, made.err);
    const [agentStart] = unitCommands(UNITS[1]!, root).filter((c) => c.where.endsWith(" ExecStart"));
    agent = startCli([...agentStart!.args, "--server", tcp], { ...CLEAN, ...agentStart!.env });
    await agent.waitFor(/^text on unix:\S+$/m);
    const log = join(root, "var/log/muster", `agent-${INSTANCE}.log`);
    for (const started = Date.now(); !/"msg":"connected"/.test(readIfAny(log)); ) {
      if (Date.now() - started > 15_000)
        assert.fail(`the agent did not connect:\n${readIfAny(log)}${agent.all}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it("logrotate rotates both logs, and LOG_ROTATE makes each process reopen its own", (t) => {
    if (!installed("logrotate")) return t.skip("logrotate is not installed");
    assert.ok(server !== undefined && agent !== undefined, "the server and the agent run");
    const conf = join(dir, "logrotate-live.conf");
    writeFileSync(conf, underRoot(read(LOGROTATE), root).replaceAll(BIN, shim()), { mode: 0o644 });
    const r = spawnSync("logrotate", ["-f", "-s", join(dir, "logrotate-live.state"), conf], {
      encoding: "utf8",
      timeout: 60_000,
      // Undefined entries are left out: the postrotate commands see no MUSTER_* of ours.
      env: { ...process.env, ...CLEAN },
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    for (const name of ["server", `agent-${INSTANCE}`]) {
      const log = join(root, "var/log/muster", `${name}.log`);
      assert.match(readIfAny(`${log}.1`), /LOG_ROTATE received: reopening log files/, `${name}.log.1`);
      assert.match(readIfAny(log), /log files reopened/, `${name}.log, reopened`);
    }
  });

  it("the container's health check: 0 while the server is ready, 1 once it is gone", async () => {
    assert.ok(server !== undefined, "the server runs");
    const health = dockerInstructions(read(DOCKERFILE)).find(([op]) => op === "HEALTHCHECK");
    assert.ok(health, `${DOCKERFILE} has a HEALTHCHECK`);
    const [command, ...args] = execForm(health[1]);
    assert.equal(command, "node");
    assert.ok(
      args.some((a) => a.includes("127.0.0.1:33075/readyz")),
      args.join(" "),
    );
    // The same check, against the test's server instead of port 33075.
    const probe = (): number | null =>
      spawnSync(
        process.execPath,
        args.map((a) => a.replace("127.0.0.1:33075", ws)),
        { timeout: 20_000 },
      ).status;
    assert.equal(probe(), 0);
    server.child.kill("SIGKILL");
    await server.exited;
    assert.equal(probe(), 1);
  });
});

function readIfAny(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
