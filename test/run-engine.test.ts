// The SQL engine without a database: stage files (_all.yaml, params, human numbers, overrides)
// and trx files parsed as Finch does, a precise error (file, line, what) for every construct
// outside the subset, the data generators and their scopes.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { makeGenerator } from "../src/run/engine/data/generators.js";
import { KeyBinder, type RunCounters } from "../src/run/engine/data/keys.js";
import { parseDsn } from "../src/run/engine/dsn.js";
import { loadStages } from "../src/run/engine/load.js";
import type { SqlSpec } from "../src/run/engine/sql-spec.js";
import { parseTrxFile } from "../src/run/engine/trx-file.js";
import { StageError } from "../src/run/engine/types.js";
import { parseDuration, parseStringInt } from "../src/run/engine/values.js";
import { KIND } from "../src/run/stats/types.js";

const fixtures = new URL("../../test/fixtures/finch/", import.meta.url).pathname;
const env = {};

function dir(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), "muster-stage-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  return d;
}

async function refusal(files: Record<string, string>, stage = "s.yaml"): Promise<StageError> {
  const d = dir(files);
  try {
    await loadStages([join(d, stage)], { env, cpuCores: 4 });
  } catch (err) {
    assert.ok(err instanceof StageError, `a StageError, got ${String(err)}`);
    return err;
  }
  assert.fail("the stage was accepted");
}

describe("values and DSNs", () => {
  it("string-ints, durations and Go DSNs as Finch reads them", () => {
    assert.equal(parseStringInt("1,000"), 1000);
    assert.equal(parseStringInt("10k"), 10_000);
    assert.equal(parseStringInt("1,000,000"), 1_000_000);
    assert.equal(parseStringInt("1KiB"), 1024);
    assert.equal(parseStringInt("1GiB"), 2 ** 30);
    assert.equal(parseStringInt("1.5k"), 1500);
    assert.equal(parseStringInt("ten"), undefined);
    assert.equal(parseStringInt("1,00"), undefined);
    assert.equal(parseDuration("1m30s"), 90_000);
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("5"), undefined);
    assert.deepEqual(parseDsn("root@tcp(127.0.0.1:3306)/bench"), {
      host: "127.0.0.1",
      port: 3306,
      user: "root",
      password: "",
      database: "bench",
    });
    assert.deepEqual(parseDsn("u:p@ss@tcp(db:3307)/x?tls=false"), {
      host: "db",
      port: 3307,
      user: "u",
      password: "p@ss",
      database: "x",
    });
    const bad = parseDsn("u:secret@tcp(db:99999)/x");
    assert.ok("error" in bad && !bad.error.includes("secret"), "the error never repeats the DSN");
  });
});

describe("stage files", () => {
  it("Finch's sysbench layout: _all.yaml params and stats, -p overrides, --dsn and -D, human numbers", async () => {
    const [setup, ro] = await loadStages(
      [join(fixtures, "sysbench/setup.yaml"), join(fixtures, "sysbench/read-only.yaml")],
      {
        params: { rows: "5k" },
        dsn: "root:pw@tcp(127.0.0.1:3306)/db1",
        database: "db2",
        env,
        cpuCores: 4,
      },
    );
    assert.equal(setup!.name, "setup");
    assert.equal(setup!.stats.disable, true, "the stage's stats section wins over _all.yaml's");
    assert.deepEqual([...setup!.files.keys()].sort(), [
      "trx/insert-rows.sql",
      "trx/schema.sql",
      "trx/secondary-index.sql",
    ]);
    const spec = ro!.spec as SqlSpec;
    assert.equal(ro!.stats.freqMs, 500, "stats.freq from _all.yaml");
    assert.equal(spec.params.rows, "5k", "-p overrides _all.yaml");
    assert.equal(spec.trx[0]!.data.id!.params.max, "5k", "$params.rows expanded");
    assert.equal(spec.mysql.database, "db2", "-D overrides the DSN's database");
    assert.equal(spec.mysql.password, "pw");
    assert.equal(ro!.runtimeMs, 1000);
    assert.equal(ro!.instances, 1);
  });

  it("$sys.CPU_CORES, workload groups, --instances, FINCH_DSN and FINCH_DB", async () => {
    const [xfer] = await loadStages([join(fixtures, "xfer/xfer.yaml")], {
      env: { FINCH_DSN: "bench:x@tcp(10.0.0.9:3306)/a", FINCH_DB: "b" },
      cpuCores: 6,
      instances: 3,
    });
    const spec = xfer!.spec as SqlSpec;
    assert.equal(spec.workload[0]!.clients, 6, "$params.clients = $sys.CPU_CORES");
    assert.equal(spec.mysql.host, "10.0.0.9");
    assert.equal(spec.mysql.database, "b");
    assert.equal(xfer!.instances, 3);
  });

  it("an exec stage: its command and files", async () => {
    const d = dir({
      "s.yaml":
        "stage:\n  runtime: 2s\n  exec:\n    command: [sh, run.sh, $params.n]\n    files: [run.sh]\n  params:\n    n: 5\n",
      "run.sh": "echo hi\n",
    });
    const [s] = await loadStages([join(d, "s.yaml")], { env, cpuCores: 1 });
    assert.equal(s!.kind, "exec");
    assert.deepEqual((s!.spec as unknown as { command: string[] }).command, ["sh", "run.sh", "5"]);
    assert.deepEqual([...s!.files.keys()], ["run.sh"]);
  });

  it("every construct outside the subset is refused with its file, line and what is wrong", async () => {
    const sql = { "q.sql": "SELECT 1\n" };
    const cases: Array<[Record<string, string>, RegExp, number | undefined]> = [
      [
        { "s.yaml": "stage:\n  trx:\n    - file: q.sql\n  warmup: 5s\n", ...sql },
        /stage: "warmup" is not supported/,
        4,
      ],
      [
        { "s.yaml": "stage:\n  compute:\n    instances: 0\n  trx:\n    - file: q.sql\n", ...sql },
        /compute.instances must be at least 1/,
        3,
      ],
      [
        { "s.yaml": "stage:\n  runtime: 10 minutes\n  trx:\n    - file: q.sql\n", ...sql },
        /stage.runtime: "10 minutes" is not a duration/,
        2,
      ],
      [
        { "s.yaml": "stage:\n  workload:\n    - clients: lots\n  trx:\n    - file: q.sql\n", ...sql },
        /workload.clients: "lots" is not a whole number/,
        3,
      ],
      [{ "s.yaml": "stage:\n  trx:\n    - file: ../q.sql\n", ...sql }, /outside the stage's directory/, 3],
      [
        { "s.yaml": "stage:\n  trx:\n    - file: none.sql\n" },
        /cannot read the trx file none.sql: ENOENT/,
        undefined,
      ],
      [{ "s.yaml": "stage:\n  trx:\n  - file: q.sql\n   bad: [\n", ...sql }, /not valid YAML/, undefined],
      [
        {
          "s.yaml": "stage:\n  stats:\n    report:\n      graphite: {}\n  trx:\n    - file: q.sql\n",
          ...sql,
        },
        /reporter "graphite" is not supported/,
        4,
      ],
      [
        {
          "s.yaml": "stage:\n  trx:\n    - file: q.sql\n      data:\n        d:\n          scope: trx\n",
          ...sql,
        },
        /data key d needs a generator/,
        6,
      ],
      [
        { "s.yaml": "stage:\n  trx:\n    - file: q.sql\n  params:\n    a: $params.nope\n", ...sql },
        /\$params.nope is not defined/,
        5,
      ],
      [
        { "_all.yaml": "workload: []\n", "s.yaml": "stage:\n  trx:\n    - file: q.sql\n", ...sql },
        /_all.yaml: "workload" is not supported/,
        1,
      ],
      [
        { "s.yaml": "stage:\n  mysql:\n    mycnf: /etc/my.cnf\n  trx:\n    - file: q.sql\n", ...sql },
        /stage.mysql: "mycnf" is not supported/,
        3,
      ],
    ];
    for (const [files, why, line] of cases) {
      const e = await refusal(files);
      assert.match(e.message, why, JSON.stringify(files));
      if (line !== undefined) assert.equal(e.line, line, `${e.message}`);
      assert.ok(e.message.includes(e.file), "the message names the file");
    }
  });
});

const scope = { params: { rows: "2,000", n: "3" }, cpuCores: 2, env: {} };

describe("trx files", () => {
  it("statements, modifiers, copies with copy-number, csv rows, keys and @PREV", () => {
    const text = [
      "BEGIN",
      "",
      "-- prepare",
      "-- copies: $params.n",
      "SELECT c FROM t/*!copy-number*/ WHERE id = @id -- a trailing comment",
      "",
      "SELECT c FROM t WHERE id BETWEEN @r AND @PREV",
      "",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Finch's own param syntax
      "-- rows: ${params.rows}",
      "INSERT INTO t VALUES /*!csv 3 (NULL, @k, @k, @s)*/",
      "",
      "-- save-columns: @a, _",
      "-- save-insert-id: @a",
      "SELECT a, b FROM t",
      "",
      "COMMIT",
    ].join("\n");
    const data = {
      id: { scope: "" },
      r: { scope: "" },
      k: { scope: "" },
      s: { scope: "stage" },
      a: { scope: "" },
    };
    const st = parseTrxFile(text, { trx: "t.sql", file: "t.sql", data, scope });
    assert.equal(st.length, 1 + 3 + 1 + 1 + 1 + 1);
    assert.equal(st[0]!.begin, true);
    assert.equal(st[1]!.pieces[0], "SELECT c FROM t1 WHERE id = ");
    assert.equal(st[3]!.pieces[0], "SELECT c FROM t3 WHERE id = ");
    assert.ok(st[1]!.prepare && st[3]!.prepare);
    assert.equal(st[1]!.kind, KIND.READ);
    assert.deepEqual(
      st[4]!.uses.map((u) => u.key),
      ["r", "PREV"],
    );
    const ins = st[5]!;
    assert.equal(ins.rows, 2000);
    assert.equal(ins.kind, KIND.WRITE);
    assert.equal(ins.uses.length, 9, "3 rows × 3 uses");
    assert.deepEqual(
      ins.uses.map((u) => u.row),
      [1, 1, 1, 2, 2, 2, 3, 3, 3],
    );
    assert.deepEqual(
      ins.uses.map((u) => u.explicit),
      [true, false, false, true, false, false, true, false, false],
      "the first @k of each row makes the row's value; @s (stage scope) is never called per row",
    );
    assert.equal(
      ins.pieces.join("?"),
      "INSERT INTO t VALUES (NULL, ?, ?, ?), (NULL, ?, ?, ?), (NULL, ?, ?, ?)",
    );
    assert.deepEqual(st[6]!.saveColumns, ["a", null]);
    assert.equal(st[6]!.saveInsertId, "a");
    assert.equal(st[7]!.commit, true);
    assert.equal(st[5]!.line, 10);
  });

  it("refusals name the line: an unknown modifier, an unbound key, @PREV first, copies out of range", () => {
    const bad: Array<[string, RegExp, number]> = [
      ["SELECT 1\n\n-- retry: 3\nSELECT 2\n", /modifier "-- retry: 3" is not supported/, 3],
      ["SELECT @nope\n", /@nope is not defined/, 1],
      ["\n\nSELECT @PREV\n", /@PREV with no data key before it/, 3],
      ["-- copies: 1000000\nSELECT 1\n", /copies/, 1],
      ["-- rows: none\nSELECT 1\n", /-- rows: "none"/, 1],
      ["-- save-columns: d\nSELECT 1\n", /save-columns: give a data key/, 1],
      ["INSERT INTO t VALUES /*!csv 0 (1)*/\n", /csv N/, 1],
    ];
    for (const [text, why, line] of bad) {
      assert.throws(
        () => parseTrxFile(text, { trx: "x.sql", file: "x.sql", data: {}, scope }),
        (e: StageError) =>
          e instanceof StageError && why.test(e.message) && e.line === line && e.file === "x.sql",
        text,
      );
    }
    assert.throws(
      () => parseTrxFile("\n\n", { trx: "x.sql", file: "x.sql", data: {}, scope }),
      /no statements/,
    );
  });
});

describe("data generators and scopes", () => {
  it("ranges, the normal distribution centred, int-range pairs, auto-inc, str-fill-az, xid, int-gaps", () => {
    const int = makeGenerator("int", { min: "5", max: "9" });
    for (let i = 0; i < 500; i++) {
      const [v] = int.values() as [number];
      assert.ok(v >= 5 && v <= 9);
    }
    const normal = makeGenerator("int", { max: "1000", dist: "normal" });
    const vals = Array.from({ length: 4000 }, () => normal.values()[0] as number);
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
    assert.ok(mean > 450 && mean < 550, `normal mean ${mean} near the middle`);
    const within = vals.filter((v) => Math.abs(v - 500) < 125).length / vals.length;
    assert.ok(within > 0.6 && within < 0.76, `about 68 % within one stddev (125): ${within}`);
    const [lo, hi] = makeGenerator("int-range", { max: "1000", size: "10" }).values() as [number, number];
    assert.equal(hi - lo, 9);
    assert.deepEqual(
      [0, 1, 2].map(() => null).map(() => 0),
      [0, 0, 0],
    );
    const ai = makeGenerator("auto-inc", { start: "100", step: "5" });
    assert.deepEqual([ai.values()[0], ai.values()[0]], [105, 110]);
    assert.match(makeGenerator("str-fill-az", { len: "12" }).values()[0] as string, /^[a-zA-Z]{12}$/);
    const x1 = makeGenerator("xid", {}).values()[0] as string;
    assert.match(x1, /^[0-9a-v]{20}$/);
    assert.notEqual(makeGenerator("xid", {}).values()[0], x1);
    const gaps = makeGenerator("int-gaps", { min: "1", max: "100", p: "10" });
    const seen = new Set(Array.from({ length: 2000 }, () => gaps.values()[0] as number));
    assert.equal(seen.size, 10, "10 % of 100 integers are ever read");
    assert.throws(() => makeGenerator("int", { maximum: "5" }), /param "maximum" is not supported/);
    assert.throws(() => makeGenerator("rand-int", {}), /generator "rand-int" is not supported/);
  });

  it("statement, trx and row scopes: one value per statement, per trx, per csv row", () => {
    const data = { d: { scope: "" }, t: { scope: "trx" } };
    const st = parseTrxFile(
      "SELECT @d, @d, @t\n\nSELECT @d, @t\n\nINSERT INTO x VALUES /*!csv 2 (@d, @d)*/\n",
      { trx: "a.sql", file: "a.sql", data, scope },
    );
    const gens = { d: makeGenerator("auto-inc", {}), t: makeGenerator("auto-inc", { start: "100" }) };
    const binder = new KeyBinder((_trx, key) => ({
      gen: gens[key as "d" | "t"],
      scope: data[key as "d" | "t"].scope,
    }));
    const { uses } = binder.forClient({ client: 0, clientGroup: 0, execGroup: 0 }, st);
    const c: RunCounters = { iter: 1, trx: 1, stmt: 0, conn: 1 };
    const run = (i: number): unknown[] => {
      c.stmt++;
      return uses[i]!.flatMap((g) => g(c));
    };
    assert.deepEqual(run(0), [1, 1, 101], "statement-scoped @d once per statement; trx-scoped @t");
    assert.deepEqual(run(1), [1, 101], "another statement: its own copy of @d; the same @t in the trx");
    assert.deepEqual(run(2), [1, 1, 2, 2], "a value per csv row, repeated within the row");
    c.trx++;
    assert.deepEqual(run(0), [2, 2, 102], "the next trx: new values");
  });
});
