// Hostile peers on a server's text endpoint, over real sockets on 127.0.0.1: connections
// refused over the limit are closed (and do not hold up the drain), idle connections are closed,
// what a connection (and the endpoint) queues is bounded in bytes, and a peer cannot flood the
// logs. The server's memory is measured in-process; an honest agent keeps answering throughout.
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import type { Logger } from "../src/internal/logger.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import type { ServerTextOptions } from "../src/server/options.js";
import { quickReconnect, until } from "./support/fleet.js";
import { LineClient } from "./support/line-client.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const MiB = 1024 * 1024;

/** Live memory of this process after a full collection: V8's heap and what lies outside it (buffers). */
function memory(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

interface Hub {
  server: MusterServer;
  port: number;
  agents: MusterAgent[];
  addAgent(name: string): Promise<MusterAgent>;
  close(): Promise<void>;
}

/** A standalone server with one TCP text endpoint; agents dial it over TCP. */
async function hub(text: Partial<ServerTextOptions>, logger?: Logger): Promise<Hub> {
  const server = createServer({
    name: "hub",
    listen: ["tcp://127.0.0.1:0"],
    standalone: true,
    ...(logger ? { logger } : {}),
    text: { listen: ["tcp://127.0.0.1:0"], ...text },
  });
  await server.start();
  const url = server.listeners[0]!.url;
  const agents: MusterAgent[] = [];
  return {
    server,
    port: (server.textListeners[0]!.address as { port: number }).port,
    agents,
    async addAgent(name) {
      const agent = createAgent({ name, servers: [url], reconnect: quickReconnect });
      agents.push(agent);
      agent.start();
      await agent.connected();
      return agent;
    },
    async close() {
      await Promise.all(agents.map((a) => a.close()));
      await server.close();
    },
  };
}

/** Rejects when `p` has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A connection that keeps its side open, as a careless or hostile peer does. */
async function halfOpen(port: number): Promise<LineClient> {
  const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  await new Promise((r) => socket.once("connect", r));
  return new LineClient(socket);
}

/**
 * Waits until the server has closed `c` for good: once its end arrived, our writes meet a reset
 * (a server that merely ended its side would go on taking them).
 */
async function closedByServer(c: LineClient, what: string): Promise<void> {
  const probe = setInterval(() => {
    if (c.socket.readableEnded && !c.socket.destroyed) c.socket.write("ALIVE\n");
  }, 50);
  try {
    await until(() => c.closed, 15_000, what);
  } finally {
    clearInterval(probe);
  }
}

/** Sends `input`, ends our side, and resolves with every reply once the server closes. */
async function exchange(port: number, input: string): Promise<string[]> {
  const c = await LineClient.tcp(port);
  c.socket.end(input);
  await until(() => c.closed, 30_000, "the server to close the text connection");
  return c.lines;
}

/** Resolves with the lines of `c` once it has at least `n`. */
async function linesOf(c: LineClient, n: number): Promise<string[]> {
  await until(() => c.lines.length >= n, 15_000, `${n} lines (have ${JSON.stringify(c.lines)})`);
  return c.lines;
}

/** Open descriptors of this process (Linux), or undefined elsewhere. */
function descriptors(): number | undefined {
  return existsSync("/proc/self/fd") ? readdirSync("/proc/self/fd").length : undefined;
}

/** A peer writing as fast as the server reads: `head`, then `line` `count` times, minding back-pressure. */
class Flood {
  readonly socket: Socket;
  #left: number;
  constructor(port: number, head: string, line: Buffer, count: number) {
    this.socket = connect({ port, host: "127.0.0.1" });
    this.socket.on("error", () => {});
    this.#left = count;
    this.socket.once("connect", () => {
      this.socket.write(head);
      this.#pump(line);
    });
    this.socket.on("drain", () => this.#pump(line));
  }
  #pump(line: Buffer): void {
    while (this.#left > 0) {
      this.#left--;
      if (!this.socket.write(line)) return;
    }
  }
  /** Bytes the kernel has taken from us so far. */
  get accepted(): number {
    return this.socket.bytesWritten - this.socket.writableLength;
  }
}

/** Resolves when no flood has made progress for `quietMs` (the server stopped reading), or after `maxMs`. */
async function settled(floods: Flood[], quietMs = 1500, maxMs = 60_000): Promise<number> {
  const t0 = Date.now();
  let last = -1;
  let since = Date.now();
  while (Date.now() - t0 < maxMs) {
    const now = floods.reduce((n, f) => n + f.accepted, 0);
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

describe("text endpoints under hostile peers", () => {
  it("closes connections refused over the limit; their descriptors are freed and the drain finishes", async (t) => {
    const h = await hub({ maxConnections: 2 });
    const holders = [await halfOpen(h.port), await halfOpen(h.port)];
    await until(() => h.server.textListeners[0]!.connections === 2, 15_000, "two connections held");
    const before = descriptors();
    const refused: LineClient[] = [];
    for (let i = 0; i < 50; i++) refused.push(await halfOpen(h.port));
    for (const c of refused) await closedByServer(c, "the server to close a refused connection");
    assert.match(refused[0]!.lines[0]!, /^SERVICE_UNAVAILABLE message="too many text connections \(2\)"$/);
    const after = descriptors();
    if (before !== undefined && after !== undefined) {
      t.diagnostic(`descriptors: ${before} before 50 refused connections, ${after} after`);
      assert.ok(after <= before + 2, `refused connections left descriptors open: ${before} → ${after}`);
    }
    // The holders never close their side: the drain ends them and finishes anyway.
    const drained = await within(h.server.drain({ timeoutMs: 1000 }), 15_000, "the drain");
    assert.equal(drained.abandoned, 0);
    for (const c of holders) await closedByServer(c, "the drain to close a held connection");
  });

  it("closes idle connections, so that idle peers cannot lock others out; a connection waiting for an agent is not idle", async () => {
    const h = await hub({ maxConnections: 4, idleTimeoutMs: 300 });
    try {
      const agent = await h.addAgent("web-1");
      let release = (): void => {};
      agent.text.on(
        "HOLD",
        (m, ctx) =>
          new Promise<void>((resolve) => {
            release = () => {
              ctx.send(m.reply("HELD"));
              resolve();
            };
          }),
      );
      const busy = await LineClient.tcp(h.port);
      busy.socket.write("web_1/HOLD\n");
      const idle = [await halfOpen(h.port), await halfOpen(h.port), await halfOpen(h.port)];
      await until(() => h.server.textListeners[0]!.connections === 4, 15_000, "four connections held");
      const locked = await exchange(h.port, "ALIVE\n");
      assert.match(locked[0] ?? "", /^SERVICE_UNAVAILABLE /, "the slots are all taken");
      for (const c of idle) await closedByServer(c, "the server to close an idle connection");
      assert.equal(busy.closed, false, "a connection whose line is being handled stays open");
      const alive = await exchange(h.port, "ALIVE serial=5\n");
      assert.match(alive[0]!, /^ABSOLUTELY .*serial=5$/);
      release();
      assert.deepEqual(await linesOf(busy, 1), ["<hub:web_1 HELD"]);
      await until(() => busy.closed, 15_000, "the busy connection, idle at last, to be closed");
    } finally {
      await h.close();
    }
  });

  it("bounds what one connection queues in bytes: the socket is paused, not buffered", async (t) => {
    const h = await hub({ deliveryTimeoutMs: 120_000 });
    let releaseAll = (): void => {};
    try {
      const slow = await h.addAgent("web-1");
      const held = new Promise<void>((r) => {
        releaseAll = r;
      });
      slow.text.on("SLOW", () => held);
      await h.addAgent("web-2");
      const m0 = memory();
      const line = Buffer.from(`web_1/SLOW pad=${"x".repeat(1_000_000)}\n`);
      const floods = Array.from({ length: 4 }, () => new Flood(h.port, "web_1/SLOW\n", line, 80));
      const accepted = await settled(floods);
      const grown = memory() - m0;
      t.diagnostic(
        `4 connections: ${(accepted / MiB).toFixed(1)} MiB taken by the kernel, server memory +${(grown / MiB).toFixed(1)} MiB`,
      );
      assert.ok(grown < 40 * MiB, `memory grew by ${(grown / MiB).toFixed(1)} MiB`);
      // Meanwhile the honest keep being served.
      assert.deepEqual(
        (await h.server.callAgent<{ pong: boolean }>("web-2", "sys.ping", {}, { timeoutMs: 15_000 })).pong,
        true,
      );
      const alive = await exchange(h.port, "ALIVE serial=6\n");
      assert.match(alive[0]!, /^ABSOLUTELY .*serial=6$/);
      for (const f of floods) f.socket.destroy();
    } finally {
      releaseAll();
      await h.close();
    }
  });

  it("bounds what all connections of an endpoint hold, partial lines included", async (t) => {
    const h = await hub({});
    try {
      await h.addAgent("web-1");
      const m0 = memory();
      const part = Buffer.from("x".repeat(64 * 1024));
      // 96 connections, each sending most of a 1 MiB line and never its end.
      const floods = Array.from({ length: 96 }, () => new Flood(h.port, "ALIVE pad=", part, 15));
      const accepted = await settled(floods);
      const grown = memory() - m0;
      t.diagnostic(
        `96 connections: ${(accepted / MiB).toFixed(1)} MiB taken by the kernel, server memory +${(grown / MiB).toFixed(1)} MiB`,
      );
      assert.ok(grown < 48 * MiB, `memory grew by ${(grown / MiB).toFixed(1)} MiB`);
      const alive = await exchange(h.port, "ALIVE serial=7\n");
      assert.match(alive[0]!, /^ABSOLUTELY .*serial=7$/, "a new connection is still served");
      assert.equal(
        (await h.server.callAgent<{ pong: boolean }>("web-1", "sys.ping", {}, { timeoutMs: 15_000 })).pong,
        true,
      );
      for (const f of floods) f.socket.destroy();
    } finally {
      await h.close();
    }
  });

  it("does not let a peer flood the logs: values are cut, repeated errors sampled and counted", async (t) => {
    const lines: { level: string; bytes: number; obj: Record<string, unknown> }[] = [];
    const logger: Logger = {
      trace: () => {},
      debug: () => {},
      info: (o: object | string, m?: string) => record("info", o, m),
      warn: (o: object | string, m?: string) => record("warn", o, m),
      error: (o: object | string, m?: string) => record("error", o, m),
      isLevelEnabled: (level) => level !== "trace" && level !== "debug",
      child: () => logger,
    };
    function record(level: string, o: object | string, m?: string): void {
      const obj = (typeof o === "string" ? {} : o) as Record<string, unknown>;
      lines.push({ level, obj, bytes: JSON.stringify(obj).length + (m ?? String(o)).length });
    }
    const h = await hub({}, logger);
    try {
      const big = "x".repeat(1_000_000);
      const flood = [
        ...Array.from({ length: 50 }, () => `INVALID message=${big}`),
        ...Array.from({ length: 20 }, () => `hello${big}`),
        ...Array.from({ length: 20 }, () => `UNKNOWN command=X${big}`),
      ];
      const first = lines.length;
      const replies = await exchange(h.port, `${flood.join("\n")}\n`);
      assert.equal(replies.length, 20, "each malformed line is answered INVALID");
      const logged = lines.slice(first);
      const bytes = logged.reduce((n, l) => n + l.bytes, 0);
      t.diagnostic(`90 lines of 1 MB: ${logged.length} log lines, ${bytes} bytes`);
      assert.ok(bytes < 64 * 1024, `${bytes} bytes logged`);
      for (const l of logged)
        for (const v of Object.values(l.obj))
          if (typeof v === "string") assert.ok(v.length <= 300, `a logged value of ${v.length} characters`);
      // What was left out is counted, and said when the peer may log again.
      const t0 = Date.now();
      while (!lines.some((l) => typeof l.obj.suppressed === "number" && l.obj.suppressed > 0)) {
        if (Date.now() - t0 > 20_000) assert.fail("no log line says how many were suppressed");
        await exchange(h.port, "INVALID message=again\n");
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await h.close();
    }
  });
});
