// Every shell block of the README and of docs/*.md runs as written, in order, one session per
// document, in a fresh HOME, against the built CLI (test/support/doc-shell.ts). The documents
// use the fixed ports they show (33075, 3001, 9090, …): the file's name tells the test runner
// (scripts/run-tests.mjs), which runs it beside the others only where no other file can be
// given one of those ports.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { DocShell, REPO, type StepResult, shellBlocks, steps } from "./support/doc-shell.js";

/** What a command's output must show, by document: [command pattern, output pattern]. */
const CHECKS: Record<string, Array<[RegExp, RegExp]>> = {
  "README.md": [
    [/muster agents$/, /^web-1\s.*connected[\s\S]*^web-2\s.*connected/m],
    [/call web-1 sys\.info/, /^web-1\s+ok\s/m],
    [/call 'role=web' sys\.ping/, /2 ok, 0 timeout, 0 error, 0 not connected/],
    [/call all greet/, /"hello ann, from operator [^"]+"[\s\S]*"hello ann, from operator/],
    [/stream web-1 tail/, /^\{"line":100\}\n\{"line":101\}\n\{"line":102\}\n?$/],
    [/numbers-client/, /checksum/i],
    [/nc -N 127\.0\.0\.1 3001/, /web_1 ABSOLUTELY .*serial=7/],
    [/--reply HELP/, /COMMANDS/],
    [/muster servers/, /^s1\s[\s\S]*^s2\s/m],
    [/call all sys\.info --server ws:\/\/127\.0\.0\.1:35075/, /^db-1\s+ok\s/m],
    [/muster run ping\.yaml/, /summary: 500 events/],
    [/--select role=bench --instances 2/, /summary: 1,?000 events/],
    [/muster runs$/, /ping/],
    [/readyz/, /ready/],
    [/metrics/, /^muster_agents/m],
    [/muster status/, /agents/i],
    [/33075\/ui\//, /^200$/m],
    [/api\/calls/, /"type":"done","summary":\{"ok":2,/],
    [/call flaky-1 sys\.ping/, /^flaky-1\s+ok\s/m],
    [/agents accept edge-1/, /accepted edge-1/],
  ],
  "docs/auth.md": [
    [/^muster agents\s*$/, /^web-1\s.*role=web.*connected/m],
    [/agents --server ws:\/\/127\.0\.0\.1:37075/, /^edge-1\s.*pending/m],
    [/agents accept edge-1/, /accepted edge-1/],
  ],
  "docs/cli.md": [[/token inspect/, /web-1/]],
  "docs/dashboard.md": [
    [/-w '%\{http_code\} %\{content_type\}/, /^200 text\/html; charset=utf-8$/m],
    [/api\/live\/servers/, /"type":"snapshot","page":"servers"/],
  ],
  "docs/cluster.md": [
    [/^muster servers/, /^s1\s+self\s[\s\S]*^s2\s+ready\s/m],
    [/muster agents --server/, /^web-1\s.*\bs1\b[\s\S]*^web-2\s.*\bs2\b/m],
    [/muster call all sys\.info/, /2 ok, 0 timeout, 0 error, 0 not connected/],
  ],
  "docs/numbers.md": [
    [/numbers-client --mode stateful 100/, /checksum/i],
    [/numbers-client --mode stateless/, /Count: 10\b/],
  ],
  "docs/operations.md": [
    [/readyz/, /ready/],
    [/metrics \| promtool/, /^$|^\s*$/],
    [/api\/agents\/web-1/, /"name":"web-1"/],
    [/api\/flags/, /"heartbeat-interval"/],
  ],
  "docs/transports.md": [
    [/^npx muster agents --server/, /^edge-1\s.*site=lab.*connected\s+grpc 127\.0\.0\.1:\d+/m],
    [/call site=lab sys\.ping --server grpc/, /1 ok, 0 timeout, 0 error, 0 not connected/],
    [
      /call site=lab sys\.ping --server ws/,
      /^edge-2\s+ok\s[\s\S]*2 ok, 0 timeout, 0 error, 0 not connected/m,
    ],
  ],
  "docs/text.md": [
    [/web_1\/ALIVE/, /web_1 ABSOLUTELY .*serial=7/],
    [/--reply HELP/, /COMMANDS/],
  ],
};

/** Commands of the documents that are run differently, and why. */
const INSTEAD: Record<string, { run?: string; why: string }> = {
  "npm ci && npm run demo": {
    run: "npm run demo",
    why: "npm ci is not run (it would replace the installation the suite runs on); the demo runs in the repository",
  },
  "npm test": { why: "this is the test suite itself" },
};

/** The documents with shell blocks (the others have nothing to run). */
const documents = [
  "README.md",
  ...readdirSync(join(REPO, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`),
].filter((doc) => shellBlocks(readFileSync(join(REPO, doc), "utf8")).length > 0);

/** Tools the documents use besides muster, and whether this machine has each. */
const TOOLS = ["nc", "curl", "openssl", "nats-server", "promtool"];
function missingTools(text: string): string[] {
  return TOOLS.filter((tool) => {
    if (!new RegExp(`(^|[\\s|(])${tool}\\s`, "m").test(text)) return false;
    try {
      execFileSync("bash", ["-c", `command -v ${tool} || test -x /usr/sbin/${tool}`], { stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
}

async function runDocument(t: TestContext, doc: string): Promise<void> {
  const blocks = shellBlocks(readFileSync(join(REPO, doc), "utf8"));
  const missing = missingTools(
    blocks
      .filter((b) => b.notRun === undefined)
      .map((b) => b.text)
      .join("\n"),
  );
  if (missing.length > 0) {
    t.skip(`${doc} uses ${missing.join(", ")}, which this machine does not have (.ci/run installs them)`);
    return;
  }
  const shell = new DocShell(doc);
  const results: StepResult[] = [];
  try {
    for (const block of blocks) {
      if (block.notRun !== undefined) {
        t.diagnostic(`${doc}:${block.line}: block not run: ${block.notRun}`);
        continue;
      }
      for (const step of steps(block)) {
        const instead = INSTEAD[step.text];
        if (instead !== undefined) {
          t.diagnostic(`${doc}:${step.line}: ${step.text}: ${instead.why}`);
          if (instead.run !== undefined)
            execFileSync("bash", ["-c", instead.run], { cwd: REPO, stdio: "pipe", timeout: 120_000 });
          continue;
        }
        results.push(await shell.run(step, 120_000));
      }
    }
  } finally {
    await shell.close();
  }
  for (const [command, output] of CHECKS[doc] ?? []) {
    const r = results.find((x) => command.test(x.step.text));
    assert.ok(r, `${doc}: no command matches ${command}`);
    assert.match(r.output, output, `${doc}:${r.step.line}: ${r.step.text}`);
  }
}

describe("the documents' shell blocks run as written", () => {
  it("the README and the guides have shell blocks to run", () => {
    for (const doc of ["README.md", "docs/auth.md", "docs/cluster.md", "docs/operations.md", "docs/text.md"])
      assert.ok(documents.includes(doc), doc);
  });
  for (const doc of documents) it(doc, { timeout: 600_000 }, (t) => runDocument(t, doc));
});
