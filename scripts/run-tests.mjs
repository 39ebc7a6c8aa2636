#!/usr/bin/env node
// Finds every compiled test file under dist/ and runs them with node's test runner.
// Node 20's `--test` takes no globs, so the list is built here.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const roots = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const flags = process.argv.slice(2).filter((a) => a.startsWith("-"));
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".test.js")) files.push(p);
  }
}
for (const root of roots.length > 0 ? roots : ["dist/src", "dist/test"]) walk(root);
files.sort();
if (files.length === 0) {
  console.error("run-tests: no test files found");
  process.exit(1);
}
const child = spawn(
  process.execPath,
  ["--enable-source-maps", "--test", "--test-concurrency=2", ...flags, ...files],
  { stdio: "inherit" },
);
child.on("exit", (code, signal) => process.exit(signal ? 1 : (code ?? 1)));
