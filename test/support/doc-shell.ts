// Runs the shell blocks of a Markdown document as written, in order, as one session in one
// bash: a fresh HOME and working directory, `muster` and `npx muster` resolving to the built
// CLI, background jobs (`cmd &`) kept running until the document ends. After a background
// command it waits, as a person would, until the command says it is ready (a server's
// "listening on", an agent's "connected"); a foreground command must exit 0 within its time.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const REPO = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
const CLI = join(REPO, "dist/src/cli/main.js");

/** A ```sh block of a document. */
export interface ShellBlock {
  /** Line of the opening fence (1-based). */
  line: number;
  text: string;
  /** Why it is not run, from a `<!-- not run: … -->` comment right above the fence. */
  notRun?: string;
}

/** One command of a block: continuation lines and here-documents joined. */
export interface Step {
  line: number;
  text: string;
  background: boolean;
}

export function shellBlocks(markdown: string): ShellBlock[] {
  const lines = markdown.split("\n");
  const blocks: ShellBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(sh|bash|shell)\s*$/.test(lines[i]!)) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    const above = /^<!-- not run: (.*) -->$/.exec(lines[start - 1] ?? "");
    blocks.push({ line: start + 1, text: body.join("\n"), ...(above ? { notRun: above[1]! } : {}) });
  }
  return blocks;
}

/** Where an unquoted `#` starts a comment in `line`, or -1. */
function commentAt(line: string): number {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"') i++;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "\\") i++;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return i;
  }
  return -1;
}

export function steps(block: ShellBlock): Step[] {
  const lines = block.text.split("\n");
  const out: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const at = block.line + 1 + i;
    const raw = lines[i]!;
    const c = commentAt(raw);
    let text = (c === -1 ? raw : raw.slice(0, c)).trimEnd();
    if (text.trim() === "") continue;
    while (text.endsWith("\\") && i + 1 < lines.length) {
      const nextRaw = lines[++i]!;
      const nc = commentAt(nextRaw);
      text = `${text.slice(0, -1).trimEnd()} ${(nc === -1 ? nextRaw : nextRaw.slice(0, nc)).trim()}`;
    }
    const heredoc = /<<-?\s*'?([A-Za-z_]+)'?/.exec(text);
    if (heredoc) {
      const body: string[] = [];
      while (i + 1 < lines.length && lines[i + 1] !== heredoc[1]) body.push(lines[++i]!);
      i++; // the terminator
      text = `${text}\n${body.join("\n")}\n${heredoc[1]}`;
    }
    const background = /&\s*$/.test(text) && !/&&\s*$/.test(text);
    out.push({ line: at, text: background ? text.replace(/&\s*$/, "").trimEnd() : text, background });
  }
  return out;
}

/** What a background command prints once it is ready, by what it runs. */
const READY: Array<[RegExp, RegExp, string]> = [
  [/muster (server|numbers|chaos-proxy)\b/, /^listening on /m, "listening on"],
  [/muster agent\b.*--enrol-token/, /pending/, "its enrolment request pending"],
  [/muster agent\b/, /"msg":"connected"/, "connected"],
  [/nats-server\b/, /Server is ready/, "Server is ready"],
];

export interface StepResult {
  step: Step;
  output: string;
  status: number;
}

/** One shell session for one document. */
export class DocShell {
  readonly home: string;
  readonly cwd: string;
  readonly results: StepResult[] = [];
  readonly #sh: ChildProcessWithoutNullStreams;
  #out = "";
  #exited = false;
  #n = 0;
  #bg = 0;

  constructor(readonly name: string) {
    this.home = mkdtempSync(join(tmpdir(), "doc-home-"));
    this.cwd = join(this.home, "work");
    const bin = join(this.cwd, "node_modules", ".bin");
    mkdirSync(bin, { recursive: true });
    symlinkSync(REPO, join(this.cwd, "node_modules", "muster"));
    // What `npm install muster` makes: a `muster` command on the project's PATH (npx) and, as
    // after a global install, on the shell's.
    const shim = join(bin, "muster");
    writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(shim, 0o755);
    const env: Record<string, string> = {
      PATH: `${bin}:${join(REPO, "node_modules", ".bin")}:${process.env.PATH ?? "/usr/bin:/bin"}:/usr/sbin:/sbin`,
      HOME: this.home,
      LANG: "C.UTF-8",
      TERM: "dumb",
      NO_COLOR: "1",
    };
    this.#sh = spawn("bash", ["--noprofile", "--norc"], { cwd: this.cwd, env, detached: true });
    this.#sh.stdout.on("data", (d: Buffer) => {
      this.#out += d.toString("utf8");
    });
    this.#sh.stderr.on("data", (d: Buffer) => {
      this.#out += d.toString("utf8");
    });
    this.#sh.on("exit", () => {
      this.#exited = true;
    });
    // Every background job in its own process group, so that the end of the document stops it
    // with everything it started.
    this.#sh.stdin.write("set -m\nexec 2>&1\n");
  }

  /** Runs one step; throws with what it printed when it fails or is not ready in time. */
  async run(step: Step, timeoutMs = 60_000): Promise<StepResult> {
    // A document's fixed port can be held for a moment by another program's outgoing connection
    // (the kernel hands out ports from 32768 up): a background command that could not listen has
    // done nothing, so it is tried again a few times before the step fails.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#run(step, timeoutMs);
      } catch (e) {
        if (!step.background || attempt === 5 || !/EADDRINUSE/.test(String(e))) throw e;
        await sleep(1_000);
      }
    }
  }

  async #run(step: Step, timeoutMs: number): Promise<StepResult> {
    const n = ++this.#n;
    const marker = `__step_${n}_done__`;
    const from = this.#out.length;
    if (step.background) {
      const log = `.bg-${++this.#bg}.log`;
      this.#sh.stdin.write(`{\n${step.text}\n} </dev/null >${log} 2>&1 &\necho "${marker} $!"\n`);
      const pid = Number(/ (\d+)\n/.exec(await this.#until(marker, from, 10_000))?.[1]);
      const rule = READY.find(([cmd]) => cmd.test(step.text));
      if (rule === undefined)
        throw new Error(`line ${step.line}: no readiness rule for background command: ${step.text}`);
      // A command with --log-file says it there.
      const logFile = /--log-file\s+(\S+)/.exec(step.text)?.[1];
      const logPath = join(this.cwd, logFile ?? log);
      const started = Date.now();
      for (;;) {
        let text = "";
        try {
          text = readFileSync(logPath, "utf8");
        } catch {}
        if (rule[1].test(text)) {
          const r = { step, output: text, status: 0 };
          this.results.push(r);
          return r;
        }
        if (!isAlive(pid))
          throw new Error(`line ${step.line}: ${step.text}\nexited before "${rule[2]}":\n${text}`);
        if (Date.now() - started > timeoutMs)
          throw new Error(
            `line ${step.line}: ${step.text}\nnot "${rule[2]}" after ${timeoutMs} ms:\n${text}`,
          );
        await sleep(50);
      }
    }
    this.#sh.stdin.write(`{\n${step.text}\n} </dev/null\nprintf '\\n${marker} %d\\n' $?\n`);
    const tail = await this.#until(marker, from, timeoutMs, step);
    const at = tail.lastIndexOf(`\n${marker} `);
    const output = tail.slice(0, at);
    const status = Number(tail.slice(at + marker.length + 2).trim());
    const r = { step, output, status };
    this.results.push(r);
    if (status !== 0) throw new Error(`line ${step.line}: ${step.text}\nexit status ${status}:\n${output}`);
    return r;
  }

  async #until(marker: string, from: number, timeoutMs: number, step?: Step): Promise<string> {
    const started = Date.now();
    for (;;) {
      const i = this.#out.indexOf(`${marker} `, from);
      const eol = i === -1 ? -1 : this.#out.indexOf("\n", i);
      if (eol !== -1) return this.#out.slice(from, eol + 1);
      if (this.#exited) throw new Error(`the shell exited: ${this.#out.slice(from)}`);
      if (Date.now() - started > timeoutMs)
        throw new Error(
          `line ${step?.line}: ${step?.text}\nstill running after ${timeoutMs} ms:\n${this.#out.slice(from)}`,
        );
      await sleep(20);
    }
  }

  /** Stops every background job (SIGTERM, then SIGKILL), ends the shell, removes the directories. */
  async close(): Promise<void> {
    if (!this.#exited) {
      this.#sh.stdin.write(`jobs -p > .jobs; echo __jobs__ \n`);
      try {
        await this.#until("__jobs__", 0, 5000);
      } catch {}
      let pids: number[] = [];
      try {
        pids = readFileSync(join(this.cwd, ".jobs"), "utf8").split("\n").filter(Boolean).map(Number);
      } catch {}
      for (const pid of pids) signalGroup(pid, "SIGTERM");
      const until = Date.now() + 15_000;
      while (pids.some(isGroupAlive) && Date.now() < until) await sleep(100);
      for (const pid of pids) signalGroup(pid, "SIGKILL");
      this.#sh.stdin.end();
      signalGroup(this.#sh.pid!, "SIGKILL");
    }
    rmSync(this.home, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {}
}
