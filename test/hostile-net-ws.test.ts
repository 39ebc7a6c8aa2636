// A WebSocket peer holds the server to the HELLO limit before its HELLO, as a TCP one does:
// a first message announced larger is refused from its header, and one dripped a byte at a
// time, sent in one-byte fragments, or replaced by pings, is refused once its reads cost the
// limit. Measured on the real CLI's memory (RSS) while an honest agent keeps answering.
// Before: each connection could make the server hold a megabyte (its frame limit) and a
// dripped byte cost about 500 bytes, until the handshake timeout.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { get } from "node:http";
import type { Socket } from "node:net";
import { after, before, describe, it, type TestContext } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { connectOperator, type MusterOperator } from "../src/operator/create-operator.js";
import { encodeFrame } from "../src/wire/codec.js";
import { FrameType } from "../src/wire/frame.js";
import { freePort, type Proc, startCli } from "./support/cli.js";
import { quickReconnect, until } from "./support/fleet.js";
import { type Received, rawWs, wsFrame } from "./support/raw-peers.js";

const MIB = 1024 * 1024;
/** The HELLO limit of a default server: 14 + maxHelloBytes. */
const FIRST_LIMIT = 14 + 128 * 1024;
/** What a refused connection may cost the server at most: the limit and one 64 KiB read, with room. */
const BOUND_PER_CONNECTION = 256 * 1024;
/** The runtime's own growth under load (young generation, code), whatever the attack. */
const RUNTIME_ALLOWANCE = 24 * MIB;
const canMeasure = existsSync("/proc/self/status");

/** The server's `muster_connections_open`, not counting the connection that asks. */
function openConnections(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(
      { host: "127.0.0.1", port, path: "/metrics", agent: false, headers: { connection: "close" } },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => {
          body += d.toString();
        });
        res.on("end", () => {
          const m = /^muster_connections_open (\d+)$/m.exec(body);
          if (m) resolve(Number(m[1]) - 1);
          else reject(new Error(`no muster_connections_open in /metrics (status ${res.statusCode})`));
        });
      },
    );
    req.on("error", reject);
  });
}

/** Resolves once the server holds `n` connections or fewer (asked every 50 ms); fails after `ms`. */
async function untilOpenAtMost(port: number, n: number, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while ((await openConnections(port)) > n) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Samples a process's RSS until stopped; `peak()` is the highest seen. */
function sampler(pid: number): { stop(): number } {
  let peak = rssBytes(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid));
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssBytes(pid));
    },
  };
}

describe("a WebSocket peer before its HELLO", { skip: !canMeasure && "needs /proc to read RSS" }, () => {
  let server: Proc;
  let url: string;
  let port: number;
  let agent: MusterAgent;
  let operator: MusterOperator;

  before(async () => {
    port = await freePort();
    url = `ws://127.0.0.1:${port}`;
    server = startCli([
      "server",
      "--standalone",
      "--listen",
      url,
      "--handshake-rate",
      "0",
      "--max-connections-per-ip",
      "0",
      "--log-level",
      "error",
    ]);
    await server.waitFor(`listening on ${url}`);
    agent = createAgent({ name: "honest", servers: [url], reconnect: quickReconnect });
    agent.start();
    await agent.connected();
    operator = await connectOperator({ server: url, name: "checker" });
  });

  after(async () => {
    await operator?.close();
    await agent?.close();
    server.child.kill("SIGKILL");
    await server.exited;
  });

  /** Calls the honest agent through the server until `done`; every call must succeed. */
  function keepCalling(done: () => boolean): Promise<number> {
    return (async () => {
      let n = 0;
      while (!done()) {
        const out = await operator.call("honest", "sys.ping", undefined, { timeoutMs: 10_000 }).done;
        assert.equal(out.summary.ok, 1, `the honest agent answered call ${n}`);
        n++;
        await new Promise((r) => setTimeout(r, 20));
      }
      return n;
    })();
  }

  /**
   * Opens `n` upgraded connections, runs `attack` on each, and waits until the server has let
   * every one go. Returns the server's RSS growth at its peak, what each connection received,
   * and the honest calls made meanwhile.
   */
  async function measure(
    n: number,
    attack: (socket: Socket, got: Received) => Promise<void>,
  ): Promise<{ growth: number; got: Received[]; calls: number }> {
    const before = await openConnections(port);
    const peers = await Promise.all(Array.from({ length: n }, () => rawWs(port)));
    assert.ok(peers.every((p) => p.upgraded));
    const base = rssBytes(server.child.pid!);
    const rss = sampler(server.child.pid!);
    let released = false;
    const calls = keepCalling(() => released);
    try {
      await Promise.all(peers.map((p) => attack(p.socket, p.got)));
      await untilOpenAtMost(port, before, 30_000, "the server to let every attacking connection go");
    } finally {
      released = true;
    }
    const peak = rss.stop();
    for (const p of peers) p.socket.resume();
    await until(
      () => peers.every((p) => p.got.closed),
      10_000,
      "the attackers to see their connections closed",
    );
    return { growth: peak - base, got: peers.map((p) => p.got), calls: await calls };
  }

  /** The peak growth is within `n` refused connections' bound and the runtime's own growth. */
  function assertBounded(t: TestContext, growth: number, n: number): void {
    const bound = n * BOUND_PER_CONNECTION + RUNTIME_ALLOWANCE;
    const figure = `server RSS grew ${(growth / MIB).toFixed(1)} MiB for ${n} connections (bound ${(bound / MIB).toFixed(1)} MiB)`;
    t.diagnostic(figure);
    assert.ok(growth < bound, figure);
  }

  function refusals(got: Received[]): string[] {
    return [...new Set(got.map((g) => `${g.wsClose?.status} ${g.wsClose?.reason.replace(/\d+/g, "N")}`))];
  }

  it("a first message announced at 1 MiB is refused from its header", async (t) => {
    const N = 100;
    const { growth, got, calls } = await measure(N, async (socket) => {
      socket.write(wsFrame(new Uint8Array(MIB - 1), { announce: MIB }));
    });
    assertBounded(t, growth, N);
    assert.deepEqual(refusals(got), [
      "1009 frame_too_large: first message of N bytes announced, limit before the handshake is N bytes",
    ]);
    assert.ok(
      got.every((g) =>
        g.wsClose?.reason.includes(
          `of ${MIB} bytes announced, limit before the handshake is ${FIRST_LIMIT} bytes`,
        ),
      ),
    );
    assert.ok(calls > 0, "the honest agent was called during the attack");
  });

  /** Writes `bytes` one at a time, a millisecond apart, while the connection is open. */
  async function drip(
    socket: Socket,
    got: Received,
    bytes: number,
    piece: (i: number) => Buffer,
  ): Promise<void> {
    for (let i = 0; i < bytes && !got.closed && !got.wsClose; i++) {
      socket.write(piece(i));
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  it("a first message dripped a byte at a time is refused once its reads cost the limit", async (t) => {
    const hello = wsFrame(new Uint8Array(100_000));
    const N = 100;
    const { growth, got, calls } = await measure(N, (socket, g) =>
      drip(socket, g, 8000, (i) => hello.subarray(i, i + 1)),
    );
    assertBounded(t, growth, N);
    assert.deepEqual(refusals(got), [
      "1009 frame_too_large: first message not whole after N bytes in N reads; limit before the handshake is N bytes",
    ]);
    assert.ok(calls > 0);
  });

  it("a first message sent in one-byte fragments is refused the same way", async (t) => {
    const N = 100;
    const { growth, got, calls } = await measure(N, (socket, g) =>
      drip(socket, g, 8000, (i) => wsFrame(new Uint8Array(1), { fin: false, opcode: i === 0 ? 0x2 : 0x0 })),
    );
    assertBounded(t, growth, N);
    assert.deepEqual(refusals(got), [
      "1009 frame_too_large: first message not whole after N bytes in N reads; limit before the handshake is N bytes",
    ]);
    assert.ok(calls > 0);
  });

  // ws itself ends a connection that leaves 500 pongs unread (maxPendingAutoPongs); the first
  // message's budget counts the pings too.
  it("pings instead of a HELLO (each answered by a pong nobody reads) cost nothing lasting", async (t) => {
    const ping = wsFrame(new Uint8Array(125), { opcode: 0x9 });
    const volley = Buffer.concat(Array.from({ length: 8192 }, () => ping)); // 1 MiB of pings
    const N = 10;
    const { growth, calls } = await measure(N, async (socket) => {
      socket.pause(); // reads no pong
      for (let i = 0; i < 16; i++) socket.write(volley);
    });
    assertBounded(t, growth, N);
    assert.ok(calls > 0);
  });

  it("an honest HELLO in small pieces still passes, and the link then takes 1 MiB frames", async () => {
    const { socket, got } = await rawWs(port);
    const hello = wsFrame(
      encodeFrame({
        type: FrameType.HELLO,
        seq: 0,
        ack: 0,
        hello: { role: "agent", name: "pieces", labels: {}, version: "1" },
      }),
    );
    for (let i = 0; i < hello.length; i += 16) {
      socket.write(hello.subarray(i, i + 16));
      await new Promise((r) => setTimeout(r, 1));
    }
    await until(() => got.frames.some((f) => f.type === FrameType.WELCOME), 10_000, "the WELCOME");
    const big = encodeFrame({
      type: FrameType.CALL,
      seq: 1,
      ack: 0,
      id: 1,
      timeoutMs: 5000,
      method: "nothing.here",
      payload: { kind: 2, bytes: new Uint8Array(MIB - 100) },
    });
    socket.write(wsFrame(big));
    await until(
      () => got.frames.some((f) => f.type === FrameType.RESULT),
      10_000,
      "the RESULT of the big call",
    );
    const result = got.frames.find((f) => f.type === FrameType.RESULT);
    assert.ok(
      result?.type === FrameType.RESULT && "error" in result && result.error.code === "UNIMPLEMENTED",
    );
    socket.destroy();
  });
});
