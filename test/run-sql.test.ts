// Finch's benchmarks against a real MariaDB/MySQL (127.0.0.1:3306, root, no password): each
// test makes its own database and drops it. Locally through the library, then through the CLI
// on a server with three agent processes and this process as the fourth instance.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mysql from "mysql2/promise";
import { loadStages } from "../src/run/engine/load.js";
import type { RunEvent } from "../src/run/events.js";
import { runLocally } from "../src/run/local-run.js";
import { KIND } from "../src/run/stats/types.js";
import { captureLogger, type LogLine } from "./support/capture-logger.js";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";
import { until } from "./support/fleet.js";

const fixtures = new URL("../../test/fixtures/finch/", import.meta.url).pathname;
const ROOT = { host: "127.0.0.1", port: 3306, user: "root", password: "" };

/** Why no MySQL-compatible server can be used, or undefined. */
async function unreachable(): Promise<string | undefined> {
  try {
    const c = await mysql.createConnection({ ...ROOT, connectTimeout: 3000 });
    await c.end();
    return undefined;
  } catch (err) {
    return `no MySQL-compatible server at 127.0.0.1:3306 as root without a password: ${(err as Error).message}`;
  }
}
const skip = await unreachable();
if (skip) process.stdout.write(`# skipping the MariaDB tests: ${skip}\n`);

async function sql(q: string): Promise<unknown[]> {
  const c = await mysql.createConnection(ROOT);
  try {
    const [rows] = await c.query(q);
    return rows as unknown[];
  } finally {
    await c.end();
  }
}

async function freshDb(): Promise<string> {
  const db = `muster_test_${randomBytes(4).toString("hex")}`;
  await sql(`CREATE DATABASE ${db}`);
  return db;
}

const count = async (table: string): Promise<number> =>
  Number(((await sql(`SELECT COUNT(*) AS n FROM ${table}`)) as Array<{ n: number }>)[0]!.n);

function collect(): { events: RunEvent[]; emit: (e: RunEvent) => void } {
  const events: RunEvent[] = [];
  return { events, emit: (e) => events.push(e) };
}

const mergedTotals = (events: RunEvent[]) =>
  events.filter((e): e is Extract<RunEvent, { t: "interval" }> => e.t === "interval").map((e) => e.merged);

describe("Finch's benchmarks against MariaDB, run here", { skip }, () => {
  const dbs: string[] = [];
  after(async () => {
    for (const db of dbs) await sql(`DROP DATABASE IF EXISTS ${db}`);
  });

  it("sysbench: the setup inserts exactly its rows; read-only and write-only run with no errors", async () => {
    const db = await freshDb();
    dbs.push(db);
    const stages = await loadStages(
      ["setup.yaml", "read-only.yaml", "write-only.yaml"].map((f) => join(fixtures, "sysbench", f)),
      { dsn: `root@tcp(127.0.0.1:3306)/${db}` },
    );
    const c = collect();
    const out = await runLocally({ stages, emit: c.emit });
    assert.equal(out.ok, true, out.error?.message);
    assert.equal(
      await count(`${db}.sbtest1`),
      2000,
      "-- rows: $params.rows with /*!csv 100 …*/: exactly 2000",
    );
    const ro = mergedTotals(c.events.filter((e) => e.t !== "interval" || e.stage === 1));
    const reads = ro.reduce((n, m) => n + (m.combined.total.n[KIND.READ] ?? 0), 0);
    const commits = ro.reduce((n, m) => n + (m.combined.total.n[KIND.COMMIT] ?? 0), 0);
    assert.ok(reads > 0 && commits > 0, `read-only: ${reads} reads, ${commits} commits`);
    // Each trx: 3 copies of the point select and 2 range selects; the 2 clients' last trx may
    // be cut by the runtime before its COMMIT.
    assert.ok(reads >= commits * 5 && reads < (commits + 2) * 5, `${reads} reads for ${commits} commits`);
    for (const m of mergedTotals(c.events)) assert.deepEqual(m.combined.total.errors, {}, "no MySQL errors");
    const wo = mergedTotals(c.events.filter((e) => e.t !== "interval" || e.stage === 2));
    assert.ok(wo.reduce((n, m) => n + (m.combined.total.n[KIND.WRITE] ?? 0), 0) > 0, "write-only wrote");
  });

  it("aurora's copies and xfer's saved columns: tables numbered, rows per table, the transfer trx without errors", async () => {
    const db = await freshDb();
    dbs.push(db);
    const dsn = `root@tcp(127.0.0.1:3306)/${db}`;
    const aurora = await loadStages(
      ["setup.yaml", "write-only.yaml"].map((f) => join(fixtures, "aurora", f)),
      { dsn },
    );
    const a = collect();
    assert.equal((await runLocally({ stages: aurora, emit: a.emit })).ok, true);
    for (const t of [1, 2, 3])
      assert.equal(await count(`${db}.sbtest${t}`), 300, `sbtest${t}: -- copies with -- rows each`);
    const db2 = await freshDb();
    dbs.push(db2);
    const xfer = await loadStages(
      ["setup.yaml", "xfer.yaml"].map((f) => join(fixtures, "xfer", f)),
      {
        dsn: `root@tcp(127.0.0.1:3306)/${db2}`,
        params: { clients: "2" },
      },
    );
    const x = collect();
    const out = await runLocally({ stages: xfer, emit: x.emit });
    assert.equal(out.ok, true, out.error?.message);
    assert.equal(await count(`${db2}.customers`), 200, "two client groups of one exec group share -- rows");
    assert.equal(await count(`${db2}.balances`), 400);
    const xfers = await count(`${db2}.xfers`);
    assert.ok(xfers > 0, "transfers were made");
    const done = Number(
      ((await sql(`SELECT COUNT(*) AS n FROM ${db2}.xfers WHERE c3 = 'DONE'`)) as Array<{ n: number }>)[0]!.n,
    );
    assert.ok(done >= xfers - 2, `save-insert-id: the trx updated the row it inserted (${done} of ${xfers})`);
  });

  it("a password never appears in logs or events; a wrong one fails the boot naming the server, not the password", async () => {
    const db = await freshDb();
    dbs.push(db);
    const user = `mt_${randomBytes(3).toString("hex")}`;
    const password = `Pw-${randomBytes(6).toString("hex")}`;
    await sql(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
    await sql(`GRANT ALL ON ${db}.* TO '${user}'@'%'`);
    try {
      const lines: LogLine[] = [];
      const stages = await loadStages(
        [join(fixtures, "intro", "setup.yaml"), join(fixtures, "intro", "read-only.yaml")],
        {
          dsn: `${user}:${password}@tcp(127.0.0.1:3306)/${db}`,
        },
      );
      const c = collect();
      const out = await runLocally({ stages, emit: c.emit, logger: captureLogger(lines) });
      assert.equal(out.ok, true, out.error?.message);
      assert.equal(await count(`${db}.t1`), 1000);
      const said = JSON.stringify(lines) + JSON.stringify(c.events);
      assert.ok(lines.length > 0, "something was logged");
      assert.ok(!said.includes(password), "the password is never logged");
      const wrong = await loadStages([join(fixtures, "intro", "read-only.yaml")], {
        dsn: `${user}:nope@tcp(127.0.0.1:3306)/${db}`,
      });
      const w = collect();
      const failed = await runLocally({ stages: wrong, emit: w.emit });
      assert.equal(failed.ok, false);
      assert.match(failed.error!.message, new RegExp(`cannot connect to MySQL at 127.0.0.1:3306 as ${user}`));
      assert.ok(!failed.error!.message.includes("nope"));
    } finally {
      await sql(`DROP USER IF EXISTS '${user}'@'%'`);
    }
  });

  it("a stop (Ctrl-C) ends a stage with no runtime at once, its stats reported", async () => {
    const db = await freshDb();
    dbs.push(db);
    const dsn = `root@tcp(127.0.0.1:3306)/${db}`;
    const [setup] = await loadStages([join(fixtures, "intro", "setup.yaml")], { dsn });
    assert.equal((await runLocally({ stages: [setup!], emit: () => {} })).ok, true);
    const [ro] = await loadStages([join(fixtures, "intro", "read-only.yaml")], { dsn });
    delete ro!.runtimeMs;
    (ro!.spec as unknown as { runtimeMs: number }).runtimeMs = 0;
    const stop = new AbortController();
    const c = collect();
    const running = runLocally({
      stages: [ro!],
      signal: stop.signal,
      emit: (e) => {
        c.emit(e);
        if (e.t === "started") setTimeout(() => stop.abort(new Error("interrupted")), 300);
      },
    });
    const out = await running;
    assert.equal(out.ok, false);
    assert.ok(mergedTotals(c.events).reduce((n, m) => n + (m.combined.total.n[KIND.READ] ?? 0), 0) > 0);
  });
});

describe("Finch's sysbench through the CLI: a server, three agents and this process", { skip }, () => {
  let server: Proc;
  const agents: Proc[] = [];
  let url = "";
  let db = "";
  before(async () => {
    db = await freshDb();
    const port = await freePort();
    url = `tcp://127.0.0.1:${port}`;
    server = startCli(["server", "--standalone", "--listen", url]);
    await server.waitFor("listening");
    for (const name of ["b1", "b2", "b3"]) {
      const a = startCli(["agent", "--server", url, "--name", name, "--label", "role=bench"]);
      agents.push(a);
      await until(() => /connected/.test(a.all), 20_000, `agent ${name} to connect`);
    }
  });
  after(async () => {
    for (const p of [...agents, server]) p.child.kill("SIGKILL");
    await Promise.all([...agents, server].map((p) => p.exited));
    await sql(`DROP DATABASE IF EXISTS ${db}`);
  });

  it("setup here, then read-only and write-only on 4 instances: merged counts are the sum of the instances', the combined row, CSV", async () => {
    const dsn = `root@tcp(127.0.0.1:3306)/${db}`;
    const dir = join(fixtures, "sysbench");
    const setup = await runCli(["run", join(dir, "setup.yaml"), "--dsn", dsn], 60_000);
    assert.equal(setup.code, 0, setup.err);
    const out = mkdtempSync(join(tmpdir(), "muster-csv-"));
    const csv = join(out, "ro.csv");
    const r = await runCli(
      [
        "run",
        "--server",
        url,
        "--select",
        "role=bench",
        "--instances",
        "4",
        "--dsn",
        dsn,
        "--report",
        "stdout",
        "--report",
        `csv=${csv}`,
        join(dir, "read-only.yaml"),
        join(dir, "write-only.yaml"),
      ],
      90_000,
    );
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.err, /started on b1, b2, b3, local|started on .*local/);
    assert.match(r.out, /\(4 combined\)/, "the combined row");
    const rows = readFileSync(csv, "utf8").trim().split("\n");
    assert.match(rows[0]!, /^interval,duration,runtime,clients,QPS/);
    assert.ok(rows.length >= 2);
    assert.ok(
      readFileSync(join(out, "ro-2-write-only.csv"), "utf8").startsWith("interval,"),
      "the second stage's CSV",
    );
    const j = await runCli(
      ["run", "--server", url, "--instances", "4", "--dsn", dsn, "--json", join(dir, "read-only.yaml")],
      90_000,
    );
    assert.equal(j.code, 0, j.err);
    const events = j.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as RunEvent);
    const merged = mergedTotals(events);
    assert.ok(merged.length >= 2);
    for (const m of merged) {
      const sum = m.instances.reduce((n, i) => n + (i.total.n[KIND.TOTAL] ?? 0), 0);
      assert.equal(
        m.combined.total.n[KIND.TOTAL],
        sum,
        `interval ${m.interval}: combined = sum of instances`,
      );
      assert.equal(
        m.combined.clients,
        m.instances.reduce((n, i) => n + i.clients, 0),
      );
    }
    assert.equal(new Set(merged.flatMap((m) => m.instances.map((i) => i.instance))).size, 4);
  });
});
