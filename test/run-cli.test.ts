// `muster run` through the real CLI: an exec stage run here alone, then on a server with three
// agent processes and this process as the fourth instance; an agent killed mid-run; Ctrl-C.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";
import { until } from "./support/fleet.js";

/** A stage directory: an exec stage whose script prints `n` stats lines, then sleeps `sleep` s. */
function stageDir(o: {
  instances: number;
  n: number;
  sleep?: number;
  runtime?: string;
  freq?: string;
}): string {
  const dir = mkdtempSync(join(tmpdir(), "muster-run-"));
  writeFileSync(
    join(dir, "work.sh"),
    `i=0\nwhile [ $i -lt ${o.n} ]; do echo "@stat trx=step kind=write us=$((100 + i))"; i=$((i + 1)); done\necho "done on $MUSTER_RUN_INSTANCE"\n${o.sleep ? `sleep ${o.sleep}\n` : ""}`,
  );
  writeFileSync(
    join(dir, "count.yaml"),
    [
      "stage:",
      "  name: count",
      ...(o.runtime ? [`  runtime: ${o.runtime}`] : []),
      "  compute:",
      `    instances: ${o.instances}`,
      "  stats:",
      `    freq: ${o.freq ?? "200ms"}`,
      "  exec:",
      '    command: ["sh", "work.sh"]',
      "    files: [work.sh]",
      "    trx: [step]",
      "",
    ].join("\n"),
  );
  return dir;
}

/** The merged total events (write kind) over every interval of the JSON events. */
function mergedWrites(out: string): { writes: number; events: Array<Record<string, unknown>> } {
  const events = out
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  let writes = 0;
  for (const e of events)
    if (e.t === "interval")
      writes += (e.merged as { combined: { total: { n: number[] } } }).combined.total.n[1] ?? 0;
  return { writes, events };
}

describe("muster run, an exec stage, through the CLI", () => {
  it("runs here alone when the stage takes one instance; the table and the summary are shown", async () => {
    const dir = stageDir({ instances: 1, n: 500 });
    const r = await runCli(["run", join(dir, "count.yaml")], 30_000);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /stage count: 1 instance/);
    assert.match(r.err, /stage done in/);
    assert.match(r.out, /interval/, "the stdout reporter's table");
    const j = await runCli(["run", join(dir, "count.yaml"), "--json"], 30_000);
    assert.equal(j.code, 0, j.err);
    assert.equal(mergedWrites(j.out).writes, 500);
  });

  it("Ctrl-C mid-run: every instance stops within a second, the stats gathered are printed, exit 130", async () => {
    const dir = stageDir({ instances: 1, n: 40, sleep: 60 });
    const run = startCli(["run", join(dir, "count.yaml")]);
    try {
      await until(() => /started on local/.test(run.err), 20_000, "the stage to start");
      await new Promise((r) => setTimeout(r, 300));
      run.child.kill("SIGINT");
      assert.equal(await run.exited, 130, run.err);
      assert.match(run.err, /stopping every instance/);
      assert.match(run.err, /summary: 40 events in/, "the stats gathered before the stop");
    } finally {
      run.child.kill("SIGKILL");
    }
  });

  it("a stage that takes 4 instances, without --server: a usage error naming the fix", async () => {
    const dir = stageDir({ instances: 4, n: 10 });
    const r = await runCli(["run", join(dir, "count.yaml")], 30_000);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /takes 4 instances \(this one and 3 agents\): give --server/);
  });

  it("the server restarted between stages: the stages not yet started go again once it is back", async () => {
    const port = await freePort();
    const url = `tcp://127.0.0.1:${port}`;
    const one = stageDir({ instances: 1, n: 20 });
    const two = stageDir({ instances: 2, n: 30 });
    let server = startCli(["server", "--standalone", "--listen", url]);
    await server.waitFor("listening");
    // The second stage waits for an agent labelled role=late, which only the restarted server gets.
    const run = startCli([
      "run",
      "--server",
      url,
      "--select",
      "role=late",
      "--boot-timeout",
      "30s",
      "--json",
      join(one, "count.yaml"),
      join(two, "count.yaml"),
    ]);
    let agent: Proc | undefined;
    try {
      await run.waitFor('"t":"waiting","stage":1', 30_000);
      server.child.kill("SIGKILL");
      await server.exited;
      server = startCli(["server", "--standalone", "--listen", url]);
      await server.waitFor("listening");
      agent = startCli([
        "agent",
        "--server",
        url,
        "--name",
        "late-1",
        "--label",
        "role=late",
        "--runs",
        "exec",
      ]);
      const code = await run.exited;
      assert.equal(code, 0, run.err + run.out);
      const { writes, events } = mergedWrites(run.out);
      const again = events.find((e) => e.t === "resubmitting") as { from: number } | undefined;
      assert.equal(again?.from, 1, "from the second stage");
      assert.equal(
        events.filter((e) => e.t === "stage" && e.stage === 0).length,
        1,
        "the first stage ran once",
      );
      assert.ok(events.some((e) => e.t === "stage-done" && e.stage === 1 && e.ok === true));
      assert.equal(writes, 20 + 2 * 30, "the first stage's 20, then two instances' 30");
    } finally {
      for (const p of [run, server, ...(agent ? [agent] : [])]) p.child.kill("SIGKILL");
    }
  });

  describe("on a server with three agents", () => {
    let server: Proc;
    const agents: Proc[] = [];
    let url = "";
    before(async () => {
      const port = await freePort();
      url = `tcp://127.0.0.1:${port}`;
      server = startCli(["server", "--standalone", "--listen", url, "--resume-window", "3s"]);
      await server.waitFor("listening");
      for (const name of ["w1", "w2", "w3"]) {
        const a = startCli([
          "agent",
          "--server",
          url,
          "--name",
          name,
          "--label",
          "role=bench",
          "--runs",
          "exec",
        ]);
        agents.push(a);
        await until(() => /connected/.test(a.all), 20_000, `agent ${name} to connect`);
      }
    });
    after(async () => {
      for (const p of [...agents, server]) p.child.kill("SIGKILL");
      await Promise.all([...agents, server].map((p) => p.exited));
    });

    it("instances: 4 (3 agents + this one): merged counts equal the sum of the instances', CSV written; muster runs lists it", async () => {
      const dir = stageDir({ instances: 4, n: 300 });
      const csv = join(dir, "out.csv");
      const r = await runCli(
        [
          "run",
          "--server",
          url,
          "--select",
          "role=bench",
          join(dir, "count.yaml"),
          "--json",
          "--report",
          `csv=${csv}`,
        ],
        60_000,
      );
      assert.equal(r.code, 0, r.err + r.out);
      const { writes, events } = mergedWrites(r.out);
      assert.equal(writes, 4 * 300, "every instance's 300 events, merged once");
      const started = events.find((e) => e.t === "started") as { instances: string[] } | undefined;
      assert.deepEqual(started?.instances.sort(), ["local", "w1", "w2", "w3"]);
      const lines = readFileSync(csv, "utf8").trim().split("\n");
      assert.match(lines[0]!, /^interval,duration,runtime,clients,QPS/);
      assert.ok(lines.length >= 2, "a row per merged interval");
      const runs = await runCli(["runs", "--server", url, "--json"]);
      assert.equal(runs.code, 0, runs.err);
      const list = JSON.parse(runs.out) as Array<{ state: string; stages: string[] }>;
      assert.equal(list[0]?.state, "done");
      assert.deepEqual(list[0]?.stages, ["count"]);
    });

    it("an agent killed mid-run: reported at once as lost; with --on-loss abort the run fails, the stats gathered shown", async () => {
      const dir = stageDir({ instances: 3, n: 50, sleep: 30, runtime: "20s" });
      const run = startCli([
        "run",
        "--server",
        url,
        "--select",
        "w1,w2",
        "--disable-local",
        "--instances",
        "2",
        join(dir, "count.yaml"),
        "--json",
      ]);
      await run.waitFor('"t":"started"', 30_000);
      agents[0]!.child.kill("SIGKILL");
      const code = await run.exited;
      assert.equal(code, 1, run.err);
      const { events } = mergedWrites(run.out);
      // Reported at once as unreachable, then lost when its session could not resume.
      const down = events.findIndex((e) => e.t === "unreachable" && e.instance === "w1");
      const lostAt = events.findIndex((e) => e.t === "lost" && e.instance === "w1");
      assert.ok(down >= 0, "the dropped link was reported");
      assert.ok(lostAt > down, "then the instance was lost");
      assert.ok(
        events.some((e) => e.t === "interval"),
        "the stats gathered were reported",
      );
    });
  });
});
