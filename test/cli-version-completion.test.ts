// `muster version` and `muster completion bash|zsh|fish` through the built CLI: the version of
// this build, its protocol and Node.js (and a real server's with --admin); completion scripts
// made from the program's own commands, checked in the shells themselves.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import { promisify } from "node:util";
import { parse } from "yaml";
import { PROTOCOL_VERSION } from "../src/wire/frame.js";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

interface Built {
  commit: string;
  buildTime: string;
}
/** dist/build-info.json as it is now (a build in between rewrites it). */
const builtNow = (): Built =>
  JSON.parse(readFileSync(new URL("../build-info.json", import.meta.url), "utf8")) as Built;

/** Runs `muster ARGS` with the build info as it was before and after: the CLI read one of them. */
async function withBuild(
  args: string[],
): Promise<{ code: number | null; out: string; err: string; builds: Built[] }> {
  const before = builtNow();
  const r = await runCli(args);
  return { ...r, builds: [before, builtNow()] };
}

/** `actual` deep-equals `expected(build)` for one of the builds. */
function equalForOne(actual: unknown, builds: Built[], expected: (b: Built) => unknown): void {
  const matches = builds.some((b) => {
    try {
      assert.deepEqual(actual, expected(b));
      return true;
    } catch {
      return false;
    }
  });
  if (!matches) assert.deepEqual(actual, expected(builds.at(-1)!));
}

describe("muster version", () => {
  const procs: Proc[] = [];
  after(async () => {
    for (const p of procs) p.child.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.exited));
  });

  it("prints this CLI's version, build, protocol and Node.js", async () => {
    const r = await withBuild(["version"]);
    assert.equal(r.code, 0, r.err);
    const commits = r.builds.map((b) => (b.commit === "unknown" ? "" : `commit ${b.commit.slice(0, 12)}`));
    assert.ok(
      commits.some((c) =>
        new RegExp(`^muster {4}${pkg.version.replaceAll(".", "\\.")}\\b.*${c}`, "m").test(r.out),
      ),
      r.out,
    );
    assert.match(r.out, new RegExp(`^protocol  ${PROTOCOL_VERSION}$`, "m"));
    assert.match(r.out, new RegExp(`^node {6}${process.versions.node.replaceAll(".", "\\.")} \\(`, "m"));
    assert.doesNotMatch(r.out, /^server/m, "without --admin nothing is asked");
    const short = await runCli(["--version"]);
    assert.equal(short.out.trim(), pkg.version);
  });

  it("-o json and -o yaml (and --json)", async () => {
    const expected = (b: Built) => ({
      version: pkg.version,
      commit: b.commit,
      buildTime: b.buildTime,
      node: process.versions.node,
      protocol: PROTOCOL_VERSION,
      platform: `${process.platform}/${process.arch}`,
    });
    const json = await withBuild(["version", "-o", "json"]);
    assert.equal(json.code, 0, json.err);
    assert.equal(json.out.trim().split("\n").length, 1);
    equalForOne(JSON.parse(json.out), json.builds, expected);
    const alias = await withBuild(["version", "--json"]);
    equalForOne(JSON.parse(alias.out), alias.builds, expected);
    const yaml = await withBuild(["version", "-o", "yaml"]);
    equalForOne(parse(yaml.out), yaml.builds, expected);
    const bad = await runCli(["version", "-o", "toml"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /give -o wide, -o json or -o yaml/);
  });

  it("--admin: the server's version too, from a real server", async () => {
    const port = await freePort();
    const server = startCli(["server", "--standalone", "--listen", `ws://127.0.0.1:${port}`]);
    procs.push(server);
    await server.waitFor("listening on");
    const admin = `http://127.0.0.1:${port}`;
    const json = await withBuild(["version", "--admin", admin, "-o", "json"]);
    assert.equal(json.code, 0, json.err);
    equalForOne(JSON.parse(json.out).server, json.builds, (b) => ({
      admin,
      version: pkg.version,
      commit: b.commit,
      buildTime: b.buildTime,
      node: process.versions.node,
    }));
    const text = await runCli(["version", "--admin", `ws://127.0.0.1:${port}`]);
    assert.equal(text.code, 0, text.err);
    assert.match(
      text.out,
      new RegExp(
        `^server {4}${pkg.version.replaceAll(".", "\\.")}\\b.*, Node ${process.versions.node} at ${admin}$`,
        "m",
      ),
    );
    const gone = await runCli(["version", "--admin", `127.0.0.1:${await freePort()}`]);
    assert.equal(gone.code, 3);
    assert.match(gone.out, /^muster /m, "this CLI's version is printed before the server is asked");
  });
});

/** Whether `shell` runs here. */
async function have(shell: string): Promise<boolean> {
  try {
    await run(shell, ["-c", "exit 0"]);
    return true;
  } catch {
    return false;
  }
}

describe("muster completion", () => {
  const dir = mkdtempSync(join(tmpdir(), "muster-completion-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const script = async (shell: string): Promise<string> => {
    const r = await runCli(["completion", shell]);
    assert.equal(r.code, 0, r.err);
    const file = join(dir, `muster.${shell}`);
    writeFileSync(file, r.out);
    return file;
  };

  it("bash: muster ag<TAB> offers agent agents, muster agents --w offers --watch", async (t: TestContext) => {
    if (!(await have("bash"))) {
      t.skip("bash is not installed");
      return;
    }
    const file = await script("bash");
    // COMP_WORDS as bash splits the line, the last word being the one completed.
    const complete = async (...words: string[]): Promise<string> => {
      const quoted = words.map((w) => `'${w}'`).join(" ");
      const { stdout } = await run("bash", [
        "-c",
        `source "$1"; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _muster; echo "\${COMPREPLY[*]}"`,
        "bash",
        file,
      ]);
      return stdout.trim();
    };
    assert.equal(await complete("muster", "ag"), "agent agents");
    assert.equal(await complete("muster", "agents", "--w"), "--watch");
    assert.equal(await complete("muster", "agents", "-o", ""), "wide json yaml");
    assert.equal(await complete("muster", "agents", "--output", "=", "y"), "yaml");
    assert.equal(await complete("muster", "token", "l"), "list");
    assert.equal(await complete("muster", "token", "list", "--a"), "--all");
    assert.equal(await complete("muster", "token", "create", "--role", "a"), "agent admin");
    assert.equal(await complete("muster", "--server", "x", "ver"), "version");
    assert.equal(await complete("muster", "completion", "--h"), "--help");
    const { stdout } = await run("bash", ["-c", `source "$1"; complete -p muster`, "bash", file]);
    assert.match(stdout, /complete -o default -F _muster muster/);
  });

  it("bash: every command of --help is offered, new ones included", async () => {
    const top = await runCli(["--help"]);
    const section = /\nCommands:\n([\s\S]*?)\n\n/.exec(top.out)?.[1] ?? "";
    const commands = [...section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)]
      .map((m) => m[1]!)
      .filter((c) => c !== "help");
    assert.ok(commands.includes("version") && commands.includes("completion"), commands.join(" "));
    const bash = (await runCli(["completion", "bash"])).out;
    const root = /^ {4}''\) echo '([^']*)' ;;$/m.exec(bash)?.[1]?.split(" ");
    assert.deepEqual(root?.slice().sort(), commands.slice().sort());
  });

  it("zsh: the script parses (zsh -n) and completes commands, flags and choices", async (t: TestContext) => {
    if (!(await have("zsh"))) {
      t.skip("zsh is not installed: its syntax check is skipped");
      return;
    }
    const file = await script("zsh");
    await run("zsh", ["-n", file]);
    // The completion system's functions stand in as printers of what would be offered.
    const stubs = `compdef() { :; }
_describe() { print -r -- "\${(P@)4%%:*}"; }
compadd() { shift; print -r -- "$@"; }
_files() { print FILES; }
source "$1"
t() { words=("$@"); CURRENT=$#words; _muster; }`;
    const complete = async (...words: string[]): Promise<string> => {
      const { stdout } = await run("zsh", [
        "-c",
        `${stubs}\nt ${words.map((w) => `'${w}'`).join(" ")}`,
        "zsh",
        file,
      ]);
      return stdout.trim();
    };
    assert.match(await complete("muster", "ag"), /(^| )agent agents( |$)/);
    assert.match(await complete("muster", "agents", "--w"), /(^| )--watch( |$)/);
    assert.equal(await complete("muster", "agents", "-o", ""), "wide json yaml");
    assert.equal(await complete("muster", "token", ""), "keygen create inspect list revoke");
  });

  it("fish: the script parses (fish -n) and completes commands, flags and choices", async (t: TestContext) => {
    if (!(await have("fish"))) {
      t.skip("fish is not installed: its syntax check is skipped");
      return;
    }
    const file = await script("fish");
    await run("fish", ["-n", file]);
    const complete = async (line: string): Promise<string[]> => {
      const { stdout } = await run("fish", ["-c", `source $argv[1]; complete -C '${line}'`, file]);
      return stdout
        .trim()
        .split("\n")
        .map((l) => l.split("\t")[0]!);
    };
    assert.deepEqual(await complete("muster ag"), ["agent", "agents"]);
    assert.deepEqual(await complete("muster agents --w"), ["--watch"]);
    assert.deepEqual((await complete("muster agents -o ")).sort(), ["json", "wide", "yaml"]);
    assert.deepEqual(await complete("muster token l"), ["list"]);
  });

  it("another shell is a usage error", async () => {
    const r = await runCli(["completion", "ksh"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /no completion for "ksh": give bash, zsh or fish/);
  });
});
