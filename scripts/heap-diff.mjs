#!/usr/bin/env node
// Compares two V8 heap snapshots (.heapsnapshot, from `v8.writeHeapSnapshot()` or DevTools):
// `node scripts/heap-diff.mjs BEFORE AFTER [N] [--per K]` lists the kinds of object (type and
// constructor or string) that grew most in self size, with their counts. `--per K` divides by K
// (e.g. the connections opened between the two snapshots), giving bytes and objects per one.
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const perAt = args.indexOf("--per");
const per = perAt >= 0 ? Number(args[perAt + 1]) : 1;
const [before, after, n = "30"] = args.filter((_, k) => perAt < 0 || (k !== perAt && k !== perAt + 1));
if (!before || !after || !(per > 0)) {
  console.error("usage: node scripts/heap-diff.mjs BEFORE.heapsnapshot AFTER.heapsnapshot [N] [--per K]");
  process.exit(2);
}

/** Self size and count per kind of object: `type name` (strings and code grouped by type). */
function summarise(file) {
  const snap = JSON.parse(readFileSync(file, "utf8"));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const width = fields.length;
  const out = new Map();
  const nodes = snap.nodes;
  for (let k = 0; k < nodes.length; k += width) {
    const type = types[nodes[k + iType]];
    const grouped =
      type === "string" ||
      type === "concatenated string" ||
      type === "sliced string" ||
      type === "code" ||
      type === "number";
    const key = grouped ? `(${type})` : `${type} ${snap.strings[nodes[k + iName]]}`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += nodes[k + iSize];
    e.count++;
    out.set(key, e);
  }
  return out;
}

const a = summarise(before);
const b = summarise(after);
const rows = [];
for (const [key, e] of b) {
  const o = a.get(key) ?? { size: 0, count: 0 };
  rows.push({ key, size: (e.size - o.size) / per, count: (e.count - o.count) / per });
}
rows.sort((x, y) => y.size - x.size);
const total = rows.reduce((s, r) => s + r.size, 0);
const unit = per === 1 ? "" : " per one";
console.log(`self size grown${unit}: ${total.toFixed(0)} B`);
for (const r of rows.slice(0, Number(n)))
  console.log(
    `${r.size.toFixed(1).padStart(10)} B ${r.count.toFixed(2).padStart(8)} objects  ${r.key.slice(0, 100)}`,
  );
