// `-o wide|json|yaml` of the listing commands and `muster agents --watch`, through the built CLI
// against a standalone server on loopback: the forms agree with each other and with --json, a
// bad form is a usage error, a table is cut on a terminal only, and a watch prints each change.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parse, parseAllDocuments } from "yaml";
import type { AgentInfo } from "../src/presence/presence.js";
import { CLI, freePort, type Proc, runCli, startCli, TEST_MUSTER_HOME } from "./support/cli.js";

const run = promisify(execFile);

/** A label longer than any terminal cell: it is cut on a terminal, whole elsewhere. */
const LONG = "x".repeat(120);

/** Whether `script` (util-linux) can give a command a terminal. */
async function haveScript(): Promise<boolean> {
  try {
    await run("script", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/** Runs `muster ARGS` on a pseudo-terminal 100 columns wide: what the terminal showed. */
async function onTerminal(args: string[]): Promise<string> {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const { stdout } = await run("script", ["-qec", `stty cols 100; exec ${quoted}`, "/dev/null"], {
    env: { ...process.env, MUSTER_HOME: TEST_MUSTER_HOME },
    timeout: 20_000,
  });
  return stdout.replaceAll("\r", "");
}

describe("-o wide|json|yaml and --watch", () => {
  const procs: Proc[] = [];
  let ws = "";
  let http = "";
  const agentsJson = async (): Promise<AgentInfo[]> => {
    const r = await runCli(["agents", "--server", ws, "-o", "json"]);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as AgentInfo[];
  };
  const connected = (name: string) => async (): Promise<void> => {
    const start = Date.now();
    while (!(await agentsJson()).some((a) => a.name === name && a.state === "connected")) {
      if (Date.now() - start > 20_000) throw new Error(`${name} did not connect`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const startAgent = (name: string, ...labels: string[]): Proc => {
    const p = startCli(["agent", "--server", ws, "--name", name, ...labels.flatMap((l) => ["--label", l])]);
    procs.push(p);
    return p;
  };

  before(async () => {
    const port = await freePort();
    ws = `ws://127.0.0.1:${port}`;
    http = `http://127.0.0.1:${port}`;
    const server = startCli(["server", "--standalone", "--listen", ws]);
    procs.push(server);
    await server.waitFor("listening on");
    startAgent("web-1", "role=web", `long=${LONG}`);
    await connected("web-1")();
  });
  after(async () => {
    for (const p of procs) p.child.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.exited));
  });

  it("agents: -o json is --json, -o yaml the same list, -o wide more columns; piped, nothing is cut", async () => {
    const json = await runCli(["agents", "--server", ws, "-o", "json"]);
    const alias = await runCli(["agents", "--server", ws, "--json"]);
    const long = await runCli(["agents", "--server", ws, "--output=json"]);
    for (const r of [json, alias, long]) assert.equal(r.code, 0, r.err);
    const list = JSON.parse(json.out) as AgentInfo[];
    assert.deepEqual(
      list.map((a) => [a.name, a.state, a.labels.long]),
      [["web-1", "connected", LONG]],
    );
    for (const r of [alias, long])
      assert.deepEqual(
        (JSON.parse(r.out) as AgentInfo[]).map((a) => [a.name, a.sessionId]),
        [["web-1", list[0]!.sessionId]],
      );

    const yaml = await runCli(["agents", "--server", ws, "-o", "yaml"]);
    assert.equal(yaml.code, 0, yaml.err);
    assert.match(yaml.out, /^- name: web-1$/m);
    const parsed = parse(yaml.out) as AgentInfo[];
    assert.deepEqual(
      parsed.map((a) => [a.name, a.state, a.sessionId, a.labels]),
      [["web-1", "connected", list[0]!.sessionId, { role: "web", long: LONG }]],
    );

    const text = await runCli(["agents", "--server", ws]);
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^NAME +LABELS +STATE +ADDRESS +VERSION +CONNECTED SINCE +LAST SEEN$/m);
    assert.doesNotMatch(text.out, /SESSION/);
    assert.ok(text.out.includes(`long=${LONG}`), "piped, the long label is whole");
    assert.doesNotMatch(text.out + text.err, /…|cut/);

    const wide = await runCli(["agents", "--server", ws, "-o", "wide"]);
    assert.equal(wide.code, 0, wide.err);
    assert.match(
      wide.out,
      /^NAME +LABELS +STATE +ADDRESS .* LAST SEEN +RTT +CALLS +SESSION +REASON +TEXT NAME$/m,
    );
    // The text name is what text messages call the agent: web-1 is web_1 there.
    assert.match(wide.out, new RegExp(`^web-1 .*long=${LONG} .* ${list[0]!.sessionId} +- +web_1$`, "m"));
  });

  it("a bad -o, or --json with another -o, is a usage error naming the forms", async () => {
    for (const args of [
      ["agents", "-o", "xml", "--server", ws],
      ["servers", "--output", "table", "--server", ws],
      ["runs", "-o", "JSON", "--server", ws],
      ["flags", "-o", "csv", "--admin", http],
    ]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, /give -o wide, -o json or -o yaml/, args.join(" "));
    }
    const both = await runCli(["agents", "--server", ws, "--json", "-o", "yaml"]);
    assert.equal(both.code, 2);
    assert.match(both.err, /--json is -o json: it cannot go with -o yaml/);
  });

  it("servers, runs and flags take -o too", async () => {
    const servers = await runCli(["servers", "--server", ws, "-o", "yaml"]);
    assert.equal(servers.code, 0, servers.err);
    const s = parse(servers.out) as Array<{ name: string; state: string; urls: string[] }>;
    assert.deepEqual(
      s.map((x) => [x.state, x.urls]),
      [["self", [ws]]],
    );
    const serversWide = await runCli(["servers", "--server", ws, "-o", "wide"]);
    assert.match(serversWide.out, new RegExp(`^NAME +STATE +AGENTS .*URLS\\n\\S+ +self +1 .* ${ws}$`, "m"));

    const runs = await runCli(["runs", "--server", ws, "-o", "json"]);
    assert.equal(runs.code, 0, runs.err);
    assert.deepEqual(JSON.parse(runs.out), []);
    const runsYaml = await runCli(["runs", "--server", ws, "-o", "yaml"]);
    assert.equal(runsYaml.out, "[]\n");
    const runsWide = await runCli(["runs", "--server", ws, "-o", "wide"]);
    assert.equal(runsWide.out, "no runs on this server\n");

    const flagsJson = await runCli(["flags", "--admin", http, "-o", "json"]);
    const flagsAlias = await runCli(["flags", "--admin", http, "--json"]);
    assert.equal(flagsJson.code, 0, flagsJson.err);
    const names = (JSON.parse(flagsJson.out) as Array<{ name: string }>).map((f) => f.name);
    assert.ok(names.includes("log-level") && names.includes("heartbeat-interval"), names.join(","));
    assert.deepEqual(
      (JSON.parse(flagsAlias.out) as Array<{ name: string }>).map((f) => f.name),
      names,
    );
    const flagsYaml = await runCli(["flags", "--admin", http, "-o", "yaml"]);
    assert.deepEqual(
      (parse(flagsYaml.out) as Array<{ name: string }>).map((f) => f.name),
      names,
    );
    // -o before or after `set`: the new list, as asked.
    for (const args of [
      ["flags", "-o", "yaml", "set", "log-level=debug", "--admin", http],
      ["flags", "set", "log-level=info", "--admin", http, "-o", "yaml"],
    ]) {
      const set = await runCli(args);
      assert.equal(set.code, 0, set.err);
      const level = (parse(set.out) as Array<{ name: string; value: unknown }>).find(
        (f) => f.name === "log-level",
      );
      assert.equal(level?.value, args.includes("log-level=debug") ? "debug" : "info", args.join(" "));
    }
  });

  it("on a terminal a long cell is cut, with a hint naming -o wide; -o wide cuts nothing", async (t) => {
    if (!(await haveScript())) {
      t.skip("no `script` command to give the CLI a terminal");
      return;
    }
    const cut = await onTerminal(["agents", "--server", ws]);
    assert.match(cut, /^web-1 +role=web,long=x+… +connected /m);
    assert.ok(!cut.includes(LONG), "the long label is cut");
    assert.match(cut, /\(long cells are cut to fit the terminal: -o wide shows them whole\)/);
    for (const line of cut.split("\n").filter((l) => l.startsWith("NAME") || l.startsWith("web-1")))
      assert.ok(line.length <= 100, `a line of ${line.length} characters: ${line}`);
    const wide = await onTerminal(["agents", "--server", ws, "-o", "wide"]);
    assert.ok(wide.includes(`long=${LONG}`), wide);
    assert.doesNotMatch(wide, /…|cut to fit/);
  });

  it("agents --watch: the list, then one line per change, until Ctrl-C (text, json and yaml)", async () => {
    const text = startCli(["agents", "--server", ws, "--watch"]);
    const json = startCli(["agents", "--server", ws, "-w", "-o", "json"]);
    const yaml = startCli(["agents", "--server", ws, "-w", "-o", "yaml"]);
    procs.push(text, json, yaml);
    await text.waitFor(/^NAME +LABELS +STATE[^\n]*\nweb-1 +role=web,long=x+ +connected /m);
    await json.waitFor('"event":"listed"');
    await yaml.waitFor("event: listed");

    const web2 = startAgent("web-2", "role=web");
    await text.waitFor(/^\S+Z {2}web-2 {2}joined, connected \(role=web, ws 127\.0\.0\.1:\d+\)$/m, 20_000);
    // Each watcher reads the list on its own: each must have seen web-2 before it leaves.
    await json.waitFor('"event":"join"', 20_000);
    await yaml.waitFor("event: join", 20_000);
    web2.child.kill("SIGTERM");
    await web2.exited;
    await text.waitFor(/^\S+Z {2}web-2 {2}(connected|resuming) → offline\b/m, 20_000);
    await json.waitFor('"state":"offline"', 20_000);
    await yaml.waitFor("state: offline", 20_000);

    for (const p of [text, json, yaml]) p.child.kill("SIGINT");
    assert.deepEqual(await Promise.all([text.exited, json.exited, yaml.exited]), [0, 0, 0]);
    // The table came once, web-1 in it, and no line for web-1: it did not change.
    assert.equal(text.out.match(/^NAME /gm)?.length, 1);
    assert.doesNotMatch(text.out, /^\S+Z {2}web-1 /m);

    const events = json.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string; from?: string; agent: AgentInfo });
    assert.deepEqual(
      events.map((e) => [e.event, e.agent.name, e.agent.state]).filter((e) => e[2] !== "resuming"),
      [
        ["listed", "web-1", "connected"],
        ["join", "web-2", "connected"],
        ["state", "web-2", "offline"],
      ],
    );
    assert.match(events.at(-1)!.from!, /^(connected|resuming)$/);
    const docs = parseAllDocuments(yaml.out).map((d) => d.toJS() as { event: string; agent: AgentInfo });
    assert.deepEqual(docs.map((d) => [d.event, d.agent.name]).slice(0, 2), [
      ["listed", "web-1"],
      ["join", "web-2"],
    ]);
  });

  it("agents --watch ends quietly, status 0, when its reader goes away", async () => {
    const watch = startCli(["agents", "--server", ws, "-w", "-o", "json"]);
    procs.push(watch);
    await watch.waitFor('"event":"listed"');
    watch.child.stdout!.destroy();
    // The next change is written to a closed pipe.
    startAgent("web-3");
    const status = await Promise.race([
      watch.exited,
      new Promise<string>((r) => setTimeout(() => r("still running"), 30_000).unref()),
    ]);
    assert.equal(status, 0, watch.err);
    assert.doesNotMatch(watch.err, /EPIPE|Error/);
  });

  it("--watch goes with the list only", async () => {
    const r = await runCli(["agents", "accept", "edge-1", "--watch", "--server", ws]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--watch goes with the list/);
  });
});
