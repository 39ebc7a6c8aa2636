#!/usr/bin/env node
// Prints the functions with the most self time in a V8 .cpuprofile (from `node --cpu-prof`):
// `node scripts/profile-top.mjs FILE [N] [--inclusive]` (inclusive: time in a function and
// everything it called).
import { readFileSync } from "node:fs";

const inclusive = process.argv.includes("--inclusive");
const [file, n = "30"] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
if (!file) {
  console.error("usage: node scripts/profile-top.mjs FILE.cpuprofile [N]");
  process.exit(2);
}
const prof = JSON.parse(readFileSync(file, "utf8"));
const byId = new Map(prof.nodes.map((node) => [node.id, node]));
const parent = new Map();
for (const node of prof.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
const self = new Map();
const dt = prof.timeDeltas;
for (let k = 0; k < prof.samples.length; k++) {
  const seen = new Set();
  for (let id = prof.samples[k]; id !== undefined; id = inclusive ? parent.get(id) : undefined) {
    const f = byId.get(id).callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
    if (seen.has(key)) continue;
    seen.add(key);
    self.set(key, (self.get(key) ?? 0) + (dt[k] ?? 0));
  }
}
const total = dt.reduce((a, b) => a + b, 0);
const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(n));
console.log(`total ${(total / 1000).toFixed(0)} ms`);
for (const [key, us] of rows)
  console.log(
    `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${key}`,
  );
