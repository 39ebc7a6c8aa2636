// A real nats-server with JetStream for tests: a child process on a free loopback port with its
// own store in a temporary folder. Tests that need it skip, saying why, when it is not
// installed (Debian package nats-server; .ci/run installs it).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./cli.js";

/** The nats-server executable: on PATH, or where Debian puts it (/usr/sbin is not on every PATH). */
export function findNatsServer(): string | undefined {
  const r = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" });
  if (r.status === 0 && r.stdout.trim() !== "") return r.stdout.trim();
  return ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"].find((p) =>
    existsSync(p),
  );
}

/** Why tests needing nats-server skip here, or false when it is installed. */
export function natsServerMissing(): string | false {
  return findNatsServer() === undefined
    ? "nats-server not found: not on PATH nor in /usr/sbin (Debian package nats-server; .ci/run installs it)"
    : false;
}

export interface NatsServer {
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** The JetStream store, kept across `kill` and `restart`, removed by `stop`. */
  readonly storeDir: string;
  /** Everything the server wrote (it logs to standard error). */
  readonly output: () => string;
  /** SIGTERM, then the store is removed. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash): the store stays for `restart`. */
  kill(): Promise<void>;
  /** Starts it again (killing it first if it runs) on the same port and store. */
  restart(): Promise<void>;
}

export interface NatsServerOptions {
  /** Extra command-line arguments (e.g. ["--max_payload", "4096"]). */
  args?: string[];
  /** How long the server may take to accept connections. @default 10000 */
  startTimeoutMs?: number;
}

/** Starts `nats-server -js -a 127.0.0.1 -p <free port> -sd <temp dir>` and waits until it accepts. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const exe = findNatsServer();
  if (exe === undefined) throw new Error("nats-server not found (Debian package nats-server)");
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "muster-nats-"));
  const args = ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir, ...(options.args ?? [])];
  let out = "";
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let removed = false;
  const killOnExit = (): void => {
    child?.kill("SIGKILL");
  };
  process.once("exit", killOnExit);

  const launch = async (): Promise<void> => {
    const c = spawn(exe, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    const gone = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    exited = gone;
    const add = (b: Buffer): void => {
      out += b.toString();
    };
    c.stdout?.on("data", add);
    c.stderr?.on("data", add);
    let dead = false;
    void gone.then(() => {
      dead = true;
    });
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    while (!(await accepts(port))) {
      if (dead) throw new Error(`nats-server exited at start:\n${out.slice(-2000)}`);
      if (Date.now() > deadline)
        throw new Error(`nats-server did not accept on ${port}:\n${out.slice(-2000)}`);
      await sleep(20);
    }
  };
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(sig);
    await exited;
  };

  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    output: () => out,
    stop: async () => {
      await signal("SIGTERM");
      process.removeListener("exit", killOnExit);
      if (!removed) rmSync(storeDir, { recursive: true, force: true });
      removed = true;
    },
    kill: () => signal("SIGKILL"),
    restart: async () => {
      await signal("SIGKILL");
      await launch();
    },
  };
}

/** True when something on 127.0.0.1:`port` accepts and greets with a NATS INFO line. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once("error", () => done(false));
    s.once("data", (b) => done(b.toString().startsWith("INFO ")));
  });
}
