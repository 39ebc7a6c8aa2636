// The profiling helpers of docs/benchmarks.md: profile-top.mjs on a real CPU profile and
// heap-diff.mjs on two real heap snapshots.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

const script = (name: string): string => new URL(`../../scripts/${name}`, import.meta.url).pathname;
const node = (args: string[], cwd?: string): string =>
  execFileSync(process.execPath, args, { encoding: "utf8", cwd, stdio: ["ignore", "pipe", "pipe"] });

describe("profiling scripts", () => {
  it("profile-top.mjs lists the function that burnt the CPU", () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-prof-"));
    try {
      const program =
        "function busyLoopForTheProfile(){let x=0;const end=Date.now()+400;while(Date.now()<end)x+=Math.sqrt(x+1);return x}busyLoopForTheProfile()";
      node(["--cpu-prof", `--cpu-prof-dir=${dir}`, "-e", program]);
      const [file] = readdirSync(dir);
      assert.ok(file, "a profile was written");
      const out = node([script("profile-top.mjs"), join(dir, file), "5"]);
      assert.match(out, /busyLoopForTheProfile/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("MUSTER_BENCH_ROUNDS_PROF profiles a fan-out's measured rounds in the benchmark server", () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-rounds-"));
    try {
      const run = new URL("../bench/run.js", import.meta.url).pathname;
      execFileSync(
        process.execPath,
        [run, "--quick", "--systems", "muster/tcp", "--scenarios", "fanout-1k", "--sizes", "64"],
        { env: { ...process.env, MUSTER_BENCH_ROUNDS_PROF: dir }, stdio: ["ignore", "pipe", "pipe"] },
      );
      const files = readdirSync(dir);
      // One profile per measurement window (fanout-1k interleaves several).
      assert.ok(files.length >= 1, "a profile was written");
      for (const f of files) assert.match(f, /^fanout-muster_tcp-\d+-64B-\d+-\d+\.cpuprofile$/);
      const out = node([script("profile-top.mjs"), join(dir, files[0] ?? ""), "40", "--inclusive"]);
      assert.match(out, /start/, "the fan-out's calls are in the profile");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("heap-diff.mjs counts the objects made between two snapshots, per one", () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-heap-"));
    try {
      const program = [
        "const v8 = require('node:v8');",
        "class ProbeForTheDiff { constructor(i) { this.i = i; this.tag = 'p' + i; } }",
        "v8.writeHeapSnapshot('before.heapsnapshot');",
        "globalThis.kept = Array.from({ length: 2000 }, (_, i) => new ProbeForTheDiff(i));",
        "v8.writeHeapSnapshot('after.heapsnapshot');",
      ].join("\n");
      node(["-e", program], dir);
      const out = node(
        [script("heap-diff.mjs"), "before.heapsnapshot", "after.heapsnapshot", "50", "--per", "2000"],
        dir,
      );
      const line = out.split("\n").find((l) => l.endsWith("object ProbeForTheDiff"));
      assert.ok(line, out);
      const [, bytes, objects] = /^\s*([\d.]+) B\s+([\d.]+) objects/.exec(line) ?? [];
      assert.equal(Number(objects), 1, "one object per one");
      assert.ok(Number(bytes) >= 16, `its self size (${bytes} B) is counted`);
      assert.throws(() => node([script("heap-diff.mjs"), "before.heapsnapshot"], dir), /usage/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
