import { type ChildProcess, fork } from "node:child_process";

/** What a benchmark child process answers: command name → handler of its arguments. */
export type Commands = Record<string, (args: Record<string, unknown>) => Promise<unknown> | unknown>;

interface Request {
  id: number;
  cmd: string;
  args: Record<string, unknown>;
}
type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** In a child: answers the parent's requests with `commands` until told to `exit`. */
export function serveCommands(commands: Commands): void {
  process.on("message", (m: Request) => {
    const reply = (r: Reply): void => {
      process.send?.(r);
    };
    if (m.cmd === "exit") {
      reply({ id: m.id, ok: true, result: null });
      setImmediate(() => process.exit(0));
      return;
    }
    const fn = commands[m.cmd];
    if (!fn) {
      reply({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => fn(m.args))
      .then(
        (result) => reply({ id: m.id, ok: true, result: result ?? null }),
        (err: unknown) =>
          reply({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
  });
  process.send?.({ id: 0, ok: true, result: "ready" });
}

/** The parent's handle on a child process that runs `serveCommands`. */
export class Child {
  readonly process: ChildProcess;
  #nextId = 1;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #ready: Promise<void>;
  #exited: string | undefined;

  /** Forks `modulePath` with `args`; `execArgv` e.g. `--expose-gc`. */
  constructor(modulePath: string, args: string[], execArgv: string[] = []) {
    // MUSTER_BENCH_CPU_PROF=DIR: every child writes a CPU profile (.cpuprofile) into DIR on exit.
    const prof = process.env.MUSTER_BENCH_CPU_PROF;
    const profArgs = prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [];
    this.process = fork(modulePath, args, {
      execArgv: ["--expose-gc", ...profArgs, ...execArgv],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let ready!: () => void;
    let failed!: (e: Error) => void;
    this.#ready = new Promise((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    this.#ready.catch(() => {});
    this.process.on("message", (r: Reply) => {
      if (r.id === 0) return ready();
      const w = this.#waiting.get(r.id);
      if (!w) return;
      this.#waiting.delete(r.id);
      if (r.ok) w.resolve(r.result);
      else w.reject(new Error(r.error));
    });
    this.process.on("exit", (code, signal) => {
      this.#exited = signal ? `killed by ${signal}` : `exited with code ${code}`;
      const err = new Error(`benchmark child ${this.#exited}`);
      failed(err);
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
    });
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  /** Sends a command and resolves with its result; rejects on error, exit or `timeoutMs`. */
  async request<T = unknown>(
    cmd: string,
    args: Record<string, unknown> = {},
    timeoutMs = 600_000,
  ): Promise<T> {
    await this.#ready;
    if (this.#exited) throw new Error(`benchmark child ${this.#exited}`);
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`${cmd}: no answer from the benchmark child in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.process.send({ id, cmd, args } satisfies Request);
    });
  }

  /** Asks the child to exit; kills it when it does not within a second. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise<void>((resolve) => this.process.once("exit", () => resolve()));
    this.request("exit", {}, 1000).catch(() => {});
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 1000);
    await gone;
    clearTimeout(timer);
  }

  /** SIGKILL, and resolves when it is gone. */
  async kill(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise<void>((resolve) => this.process.once("exit", () => resolve()));
    this.process.kill("SIGKILL");
    await gone;
  }
}
