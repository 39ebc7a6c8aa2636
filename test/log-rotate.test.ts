// --log-file and rotation: after the file is renamed, SIGHUP (or reopenLogFiles) makes the
// process write to a fresh file at the same path, and no line is lost or written twice.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createCliLogger, reopenLogFiles } from "../src/cli/logger.js";
import { freePort, runCli, startCli } from "./support/cli.js";
import { until } from "./support/fleet.js";

const lines = (file: string): Array<Record<string, unknown>> =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("log files", () => {
  it("a rotation in the middle of 20,000 lines loses none and repeats none", () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-log-"));
    try {
      const file = join(dir, "app.log");
      const log = createCliLogger({ level: "info", trace: false, file }, "test");
      for (let i = 0; i < 20_000; i++) {
        log.info({ i }, "line");
        if (i === 12_345) {
          renameSync(file, `${file}.1`);
          assert.ok(reopenLogFiles() >= 1);
        }
      }
      const before = lines(`${file}.1`).map((l) => l.i);
      const after = lines(file).map((l) => l.i);
      assert.equal(before.at(-1), 12_345);
      assert.equal(after[0], 12_346);
      assert.deepEqual(
        [...before, ...after],
        Array.from({ length: 20_000 }, (_, i) => i),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("muster server --log-file: SIGHUP after a rename starts a fresh file; a bad path is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-log-"));
    const file = join(dir, "server.log");
    const port = await freePort();
    const url = `tcp://127.0.0.1:${port}`;
    const server = startCli(["server", "--standalone", "--listen", url, "--log-file", file]);
    const procs = [server];
    try {
      await server.waitFor(`listening on ${url}`);
      assert.equal(server.err, "", "nothing on standard error: the log goes to the file");
      const a1 = startCli(["agent", "--server", url, "--name", "first"]);
      procs.push(a1);
      await until(
        () => readFileSync(file, "utf8").includes('"first"'),
        10_000,
        "the server to log agent first",
      );
      renameSync(file, `${file}.1`);
      server.child.kill("SIGHUP");
      await until(
        () => {
          try {
            return readFileSync(file, "utf8") !== undefined;
          } catch {
            return false;
          }
        },
        5000,
        "a fresh log file",
      );
      const a2 = startCli(["agent", "--server", url, "--name", "second"]);
      procs.push(a2);
      await until(
        () => readFileSync(file, "utf8").includes('"second"'),
        10_000,
        "the server to log agent second",
      );
      assert.equal(server.child.exitCode, null, "SIGHUP did not stop the server");
      const old = readFileSync(`${file}.1`, "utf8");
      assert.match(old, /"first"/);
      assert.doesNotMatch(old, /"second"/);
      assert.doesNotMatch(readFileSync(file, "utf8"), /"first"/);
      for (const l of [...lines(`${file}.1`), ...lines(file)]) assert.equal(typeof l.msg, "string");

      const bad = await runCli([
        "server",
        "--standalone",
        "--listen",
        url,
        "--log-file",
        join(`${file}.1`, "under-a-file.log"),
      ]);
      assert.equal(bad.code, 2);
      assert.match(bad.err, /--log-file: cannot open /);
    } finally {
      for (const p of procs) p.child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
