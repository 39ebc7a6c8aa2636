#!/usr/bin/env node
// Takes the screenshots of docs/dashboard.md: a server with tokens, a few agents with labels
// and a swarm of 200, one agent suspect and one gone, a call from the console, a run, then
// each page of the dashboard in headless Chromium, saved as docs/images/dashboard-<page>.png.
//
//   npm run build && node scripts/dashboard-screenshots.mjs
//
// It needs Chromium (/usr/bin/chromium, or MUSTER_CHROMIUM).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(REPO, "dist/src/cli/main.js");
const SWARM = join(REPO, "dist/test/support/agent-swarm.js");
const OUT = join(REPO, "docs/images");
const { generateKeyFile } = await import(join(REPO, "dist/src/auth/keys.js"));
const { issueToken } = await import(join(REPO, "dist/src/auth/tokens.js"));
const { launch } = await import(join(REPO, "dist/test/support/browser.js"));

const home = mkdtempSync(join(tmpdir(), "muster-shots-"));
const keyFile = join(home, "auth.key");
const key = generateKeyFile(keyFile, "EdDSA");
const procs = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start(file, args, env = {}) {
  const child = spawn(process.execPath, [file, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, MUSTER_HOME: home, ...env },
  });
  const p = { child, out: "" };
  child.stdout.on("data", (d) => {
    p.out += d;
  });
  child.stderr.on("data", () => {});
  procs.push(p);
  return p;
}

async function until(what, predicate, ms = 60_000) {
  const end = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const ws = `ws://127.0.0.1:${port}`;
const base = `http://127.0.0.1:${port}`;
const admin = await issueToken(key, { role: "admin", subject: "ada" });
const auth = { authorization: `Bearer ${admin}` };
const state = async (name) => {
  const r = await fetch(`${base}/api/agents/${name}`, { headers: auth });
  return r.status === 200 ? (await r.json()).state : undefined;
};

let browser;
try {
  const server = start(CLI, [
    "server",
    "--listen",
    ws,
    "--auth-key",
    keyFile,
    "--heartbeat",
    "1s",
    "--name",
    "ctl-1",
  ]);
  await until("the server", () => server.out.includes("listening on"));
  const agents = [
    ["web-1", "role=web", "zone=eu"],
    ["web-2", "role=web", "zone=eu"],
    ["web-3", "role=web", "zone=us"],
    ["db-1", "role=db", "zone=eu"],
    ["db-2", "role=db", "zone=us"],
    ["cache-1", "role=cache", "zone=eu"],
  ];
  const byName = new Map();
  for (const [name, ...labels] of agents) {
    const token = await issueToken(key, {
      role: "agent",
      subject: name,
      labels: Object.fromEntries(labels.map((l) => l.split("="))),
    });
    const args = ["agent", "--server", ws, "--name", name, "--token", token, "--runs", "exec"];
    args.push("--handlers", join(REPO, "test/fixtures/slow-handlers.mjs"));
    for (const l of labels) args.push("--label", l);
    byName.set(name, start(CLI, args));
  }
  const swarm = start(SWARM, [
    "--prefix",
    "edge-",
    "--count",
    "200",
    "--server",
    ws,
    "--label",
    "role=edge",
    "--key",
    keyFile,
  ]);
  await until("the swarm", () => swarm.out.includes("ready 200"));
  for (const [name] of agents) await until(name, async () => (await state(name)) === "connected");
  // One agent silent (suspect), one gone.
  byName.get("db-2").child.kill("SIGSTOP");
  byName.get("cache-1").child.kill("SIGTERM");
  await until("db-2 suspect", async () => (await state("db-2")) === "suspect");

  // A run, for the Runs page.
  const stage = join(home, "stage");
  mkdirSync(stage);
  writeFileSync(
    join(stage, "work.sh"),
    'i=0\nwhile [ $i -lt 400 ]; do echo "@stat trx=step kind=write us=$((200 + (i * 37) % 900))"; i=$((i + 1)); sleep 0.02; done\n',
  );
  writeFileSync(
    join(stage, "load.yaml"),
    'stage:\n  name: load\n  compute:\n    instances: 3\n  stats:\n    freq: 500ms\n  exec:\n    command: ["sh", "work.sh"]\n    files: [work.sh]\n    trx: [step]\n',
  );
  const run = start(
    CLI,
    ["run", "--server", ws, "--select", "role=web", "--disable-local", join(stage, "load.yaml")],
    {
      MUSTER_TOKEN: admin,
    },
  );
  await new Promise((r) => run.child.on("exit", r));

  const b = await launch();
  if (typeof b === "string") throw new Error(b);
  browser = b;
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${base}/ui/`);
  await page.fill("#token", admin);
  await page.click("button[type=submit]");
  await page.waitForSelector('.vrow[data-key="cache-1"] .badge.s-offline');
  mkdirSync(OUT, { recursive: true });
  const shoot = async (name) => {
    await sleep(700);
    await page.screenshot({ path: join(OUT, `dashboard-${name}.png`) });
    process.stdout.write(`docs/images/dashboard-${name}.png\n`);
  };
  await shoot("fleet");

  await page.goto(`${base}/ui/#console`);
  await page.fill("input[name=target]", "role=web,zone=eu");
  await page.fill("input[name=method]", "echo");
  await page.fill("textarea[name=request]", '{"deploy": "v2.4.1"}');
  await page.click("button[type=submit]");
  await page.waitForSelector(".summary");
  await page.fill("input[name=target]", "role!=edge");
  await page.fill("input[name=method]", "sleep");
  await page.fill("textarea[name=request]", '{"ms": 200}');
  await page.fill("input[name=timeoutMs]", "2000");
  await page.click("button[type=submit]");
  await page.waitForSelector(".summary", { timeout: 10_000 });
  await page.click('.grid .cell[data-agent="web-1"]');
  await shoot("console");

  await page.goto(`${base}/ui/#events`);
  await page.waitForSelector(".vrow");
  await shoot("events");

  await page.goto(`${base}/ui/#runs`);
  await page.waitForSelector(".chart canvas");
  await shoot("runs");

  await page.goto(`${base}/ui/#servers`);
  await page.waitForSelector("table[aria-label=flags] tbody tr");
  await shoot("servers");
} finally {
  await browser?.close();
  for (const p of procs) {
    p.child.kill("SIGCONT");
    p.child.kill("SIGKILL");
  }
  rmSync(home, { recursive: true, force: true });
}
