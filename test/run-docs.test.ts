// docs/runs.md's stage examples are accepted as written, and the exec one runs.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { loadStages } from "../src/run/engine/load.js";
import type { RunEvent } from "../src/run/events.js";
import { runLocally } from "../src/run/local-run.js";

it("docs/runs.md: the exec and handler stage examples load as written; the exec one runs", async () => {
  const doc = readFileSync(new URL("../../docs/runs.md", import.meta.url), "utf8");
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.equal(blocks.length, 2, "an exec and a handler example");
  const dir = mkdtempSync(join(tmpdir(), "muster-docs-runs-"));
  writeFileSync(join(dir, "build.yaml"), blocks[0]!);
  writeFileSync(join(dir, "warm.yaml"), blocks[1]!);
  writeFileSync(
    join(dir, "bench.sh"),
    'for i in 1 2 3; do echo "@stat trx=request kind=read us=1200"; done\necho "target $1"\n',
  );
  const [build, warm] = await loadStages([join(dir, "build.yaml"), join(dir, "warm.yaml")]);
  assert.equal(build!.kind, "exec");
  assert.equal(build!.instances, 4);
  assert.deepEqual((build!.spec as unknown as { command: string[] }).command, [
    "sh",
    "bench.sh",
    "http://10.0.0.5/",
  ]);
  assert.equal(warm!.kind, "handler");
  assert.equal(warm!.runtimeMs, 10_000);
  // Here alone, briefly: one instance, the script's three events merged.
  const [short] = await loadStages([join(dir, "build.yaml")], { instances: 1 });
  const events: RunEvent[] = [];
  const out = await runLocally({ stages: [short!], emit: (e) => events.push(e) });
  assert.equal(out.ok, true, out.error?.message);
  const reads = events.reduce(
    (n, e) => n + (e.t === "interval" ? (e.merged.combined.total.n[0] ?? 0) : 0),
    0,
  );
  assert.equal(reads, 3);
  const done = events.find((e) => e.t === "instance-done");
  assert.match(
    done?.t === "instance-done" ? (done.summary.exit?.output ?? "") : "",
    /target http:\/\/10\.0\.0\.5\//,
  );
});
