import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * MUSTER_HOME of every CLI process a test starts (unless the test gives its own): one fresh
 * folder per test process, so that keys and revocation lists never touch the user's home.
 */
export const TEST_MUSTER_HOME = mkdtempSync(join(tmpdir(), "muster-home-"));

/** The built CLI entry point. */
export const CLI = new URL("../../src/cli/main.js", import.meta.url).pathname;

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  /** Standard output and standard error together, in the order they arrived. */
  all: string;
  exited: Promise<number | null>;
  /** Resolves when standard output contains `text`. */
  waitFor(text: string | RegExp, ms?: number): Promise<void>;
}

/** Starts `muster …` as a long-running process. */
export function startCli(args: string[], env: Record<string, string | undefined> = {}): Proc {
  return startScript(CLI, args, env);
}

/** Starts a Node.js script (an example program, say) as a long-running process. */
export function startScript(
  file: string,
  args: string[],
  env: Record<string, string | undefined> = {},
): Proc {
  const child = spawn(process.execPath, [file, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { MUSTER_HOME: TEST_MUSTER_HOME, ...process.env, ...env },
  });
  const p: Proc = {
    child,
    out: "",
    err: "",
    all: "",
    exited: new Promise((resolve) => child.on("exit", (code) => resolve(code))),
    async waitFor(text, ms = 10_000) {
      const start = Date.now();
      const hit = (): boolean => (typeof text === "string" ? p.out.includes(text) : text.test(p.out));
      while (!hit()) {
        if (Date.now() - start > ms)
          throw new Error(`no ${String(text)} in output after ${ms} ms:\n${p.out}\n${p.err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  child.stdout!.on("data", (d: Buffer) => {
    p.out += d.toString();
    p.all += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    p.err += d.toString();
    p.all += d.toString();
  });
  return p;
}

/** Runs `muster …` to completion. */
export async function runCli(
  args: string[],
  timeoutMs = 20_000,
  env: Record<string, string | undefined> = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const p = startCli(args, env);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, out: p.out, err: p.err };
}

/** Waits until `p` has printed `text` on standard output or standard error. */
export async function printed(p: Proc, text: string | RegExp, ms = 15_000): Promise<void> {
  const start = Date.now();
  const hit = (): boolean => (typeof text === "string" ? p.all.includes(text) : text.test(p.all));
  while (!hit()) {
    if (Date.now() - start > ms) throw new Error(`no ${String(text)} after ${ms} ms:\n${p.all}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
