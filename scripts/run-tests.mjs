#!/usr/bin/env node
// Runs every compiled test file under dist/ (or under the folders given) with node's test
// runner (or the files and folders given), one process group per file, two files at a time. Each file has a deadline: a file
// that is still running when it passes (a hung test, or a handle that keeps its process alive
// after its tests ended) is killed with everything it started, and reported as failed by name,
// so one stuck file can never hold the whole suite. A file's output is printed whole when it
// ends; a summary of every file comes last. Files named *.alone.test.js run after the others,
// one at a time; files named *.ports.test.js (fixed ports) beside them or alone (see below).
//
//   node scripts/run-tests.mjs [file or dir…] [--file-timeout=SECONDS] [--jobs=N] [node --test flags…]
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? fallback : Number(a.slice(name.length + 3));
};
const fileTimeoutS = option("file-timeout", Number(process.env.MUSTER_TEST_FILE_TIMEOUT ?? 600));
const jobs = option("jobs", 2);
if (!(fileTimeoutS > 0) || !(jobs >= 1)) {
  console.error("run-tests: --file-timeout and --jobs take positive numbers");
  process.exit(2);
}
const roots = args.filter((a) => !a.startsWith("-"));
const flags = args.filter((a) => a.startsWith("-") && !/^--(file-timeout|jobs)=/.test(a));

const files = [];
function walk(dir) {
  if (!statSync(dir).isDirectory()) {
    files.push(dir);
    return;
  }
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

const COUNTS = ["tests", "pass", "fail", "cancelled", "skipped", "todo"];
const running = new Set();
const results = [];
const started = Date.now();

function runFile(file) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(
      process.execPath,
      ["--enable-source-maps", "--test", "--test-reporter=tap", ...flags, file],
      { stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    running.add(child);
    const chunks = [];
    child.stdout.on("data", (c) => chunks.push(c));
    child.stderr.on("data", (c) => chunks.push(c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, fileTimeoutS * 1000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      // Whatever the file started and left behind goes with it.
      killGroup(child);
      const out = Buffer.concat(chunks).toString("utf8");
      const counts = {};
      for (const k of COUNTS) {
        const m = out.match(new RegExp(`^# ${k} (\\d+)$`, "m"));
        counts[k] = m ? Number(m[1]) : 0;
      }
      const failed = [...out.matchAll(/^\s*not ok \d+ - (.*)$/gm)]
        .map((m) => m[1])
        .filter((t) => !/# (TODO|SKIP)\b/.test(t));
      const ok = !timedOut && code === 0;
      resolve({ file, ok, code, signal, timedOut, seconds: (Date.now() - t0) / 1000, counts, failed, out });
    });
  });
}

function killGroup(child) {
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    for (const c of running) killGroup(c);
    process.exit(130);
  });
}

// Files named *.alone.test.js run last, one at a time with nothing beside them: they measure
// under load that other files would disturb (the soak). Files named *.ports.test.js bind the
// fixed ports that the documentation shows (the docs' shell sessions, 3001 to 40999): they run
// in a lane of their own beside the others when the kernel hands out ports for port 0 and for
// outgoing connections only above 40999 (.ci/run sets that), so that no other file can be given
// one of them; otherwise after the others, alone.
const alone = files.filter((f) => f.endsWith(".alone.test.js"));
const ports = files.filter((f) => f.endsWith(".ports.test.js"));
const shared = files.filter((f) => !alone.includes(f) && !ports.includes(f));
function ephemeralPortsFrom() {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  } catch {
    return 0;
  }
}
const portsBeside = ports.length > 0 && ephemeralPortsFrom() > 40999;
if (ports.length > 0)
  console.log(
    portsBeside
      ? "# files with fixed ports run beside the others (ephemeral ports start above 40999)"
      : `# files with fixed ports run alone (ephemeral ports start at ${ephemeralPortsFrom() || "an unknown port"})`,
  );

/** A worker function over `list`: every call of it takes the next file until none is left. */
function lane(list) {
  let next = 0;
  return async function worker() {
    while (next < list.length) {
      const file = list[next++];
      const r = await runFile(file);
      results.push(r);
      process.stdout.write(r.out.endsWith("\n") ? r.out : `${r.out}\n`);
      const verdict = r.timedOut
        ? `KILLED: still running after ${fileTimeoutS} s`
        : r.ok
          ? "ok"
          : `FAILED (exit ${r.code ?? r.signal})`;
      process.stdout.write(
        `# [${results.length}/${files.length}] ${r.file}: ${verdict}, ${r.counts.pass} passed, ` +
          `${r.counts.fail} failed, ${r.counts.todo} todo, ${r.counts.skipped} skipped, ${r.seconds.toFixed(1)} s\n`,
      );
    }
  };
}
const sharedWorker = lane(shared);
await Promise.all([
  ...Array.from({ length: Math.min(jobs, shared.length) }, () => sharedWorker()),
  ...(portsBeside ? [lane(ports)()] : []),
]);
if (!portsBeside) await lane(ports)();
await lane(alone)();

const total = Object.fromEntries(COUNTS.map((k) => [k, results.reduce((n, r) => n + r.counts[k], 0)]));
const bad = results.filter((r) => !r.ok);
console.log("\n# ---- summary ----");
console.log(`# files ${results.length}, failed ${bad.length}`);
for (const k of COUNTS) console.log(`# ${k} ${total[k]}`);
console.log(`# duration_s ${((Date.now() - started) / 1000).toFixed(1)}`);
for (const r of results
  .slice()
  .sort((a, b) => b.seconds - a.seconds)
  .slice(0, 5))
  console.log(`# slowest: ${r.file} ${r.seconds.toFixed(1)} s`);
for (const r of bad) {
  const why = r.timedOut ? `killed after ${fileTimeoutS} s` : `exit ${r.code ?? r.signal}`;
  console.log(`# FAILED ${r.file} (${why})${r.failed.length > 0 ? `: ${r.failed.join("; ")}` : ""}`);
}
process.exit(bad.length === 0 ? 0 : 1);
