#!/usr/bin/env node
// How the dashboard's Fleet page holds a large fleet: a standalone server, N agents (two swarm
// processes), the page open in headless Chromium while they join, while it is scrolled end to
// end, and while they all leave at once. Prints the time from each batch of deltas to the table
// on screen, the frame times while scrolling, and the page's JavaScript heap.
//
//   npm run build && node scripts/dashboard-load.mjs [agents, default 10000]
//
// It needs Chromium (/usr/bin/chromium, or MUSTER_CHROMIUM) and about 2 file descriptors per
// agent in the server's process.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(REPO, "dist/src/cli/main.js");
const SWARM = join(REPO, "dist/test/support/agent-swarm.js");
const { launch } = await import(join(REPO, "dist/test/support/browser.js"));
const total = Number(process.argv[2] ?? 10_000);
if (!(total >= 2)) {
  process.stderr.write("dashboard-load: give a number of agents ≥ 2\n");
  process.exit(2);
}

const procs = [];
function start(file, args) {
  const child = spawn(process.execPath, [file, ...args], { stdio: ["ignore", "pipe", "ignore"] });
  const p = { child, out: "" };
  child.stdout.on("data", (d) => {
    p.out += d;
  });
  procs.push(p);
  return p;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, predicate, ms = 180_000) {
  const end = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}
const stats = (list) => {
  const s = [...list].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return `${s.length} updates: median ${at(0.5).toFixed(1)} ms, p95 ${at(0.95).toFixed(1)} ms, max ${(s.at(-1) ?? 0).toFixed(1)} ms`;
};

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const ws = `ws://127.0.0.1:${port}`;
let browser;
try {
  const server = start(CLI, [
    "server",
    "--standalone",
    "--listen",
    ws,
    "--resume-window",
    "3s",
    "--max-connections-per-ip",
    String(total + 100),
  ]);
  await until("the server", () => server.out.includes("listening on"));
  const b = await launch();
  if (typeof b === "string") throw new Error(b);
  browser = b;
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`http://127.0.0.1:${port}/ui/`);
  await page.waitForSelector(".fleet [role=status].st-live");
  const perf = () => page.evaluate(() => (globalThis.musterPerf?.fleet ?? []).map((e) => e.ms));
  const count = (state) =>
    page.evaluate(
      (s) => Number(document.querySelector(`[data-state="${s}"]`)?.textContent.replace(/\D+/g, "") ?? 0),
      state,
    );

  const half = Math.floor(total / 2);
  const t0 = Date.now();
  const swarms = [
    start(SWARM, ["--prefix", "a-", "--count", String(half), "--server", ws]),
    start(SWARM, ["--prefix", "b-", "--count", String(total - half), "--server", ws]),
  ];
  await until(`${total} connected`, async () => (await count("connected")) === total);
  const joined = await perf();
  process.stdout.write(
    `${total} agents joined in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${stats(joined)}\n`,
  );

  // Scroll from top to bottom, 40 rows a frame, recording each frame's interval.
  const frames = await page.evaluate(async () => {
    const body = document.querySelector(".vbody");
    const times = [];
    let last = performance.now();
    body.scrollTop = 0;
    while (body.scrollTop + body.clientHeight < body.scrollHeight - 1) {
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      times.push(now - last);
      last = now;
      body.scrollTop += 40 * 28;
    }
    return times;
  });
  const f = [...frames].sort((a, b) => a - b);
  process.stdout.write(
    `scrolled ${total} rows in ${frames.length} frames: frame interval median ${f[Math.floor(f.length / 2)].toFixed(1)} ms, p95 ${f[Math.floor(f.length * 0.95)].toFixed(1)} ms, max ${f.at(-1).toFixed(1)} ms; ${await page.locator(".vrow").count()} rows in the page\n`,
  );

  await page.evaluate(() => {
    globalThis.musterPerf = undefined;
  });
  for (const s of swarms) s.child.kill("SIGKILL");
  await until(`${total} offline`, async () => (await count("offline")) === total);
  process.stdout.write(`all ${total} left (resuming, then offline): ${stats(await perf())}\n`);
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize);
  if (heap !== undefined) process.stdout.write(`page JavaScript heap: ${(heap / 1048576).toFixed(1)} MiB\n`);
} finally {
  await browser?.close();
  for (const p of procs) p.child.kill("SIGKILL");
}
