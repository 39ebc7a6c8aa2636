import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, it } from "node:test";
import {
  type ChaosEvent,
  type ChaosProxy,
  type ChaosProxyOptions,
  startChaosProxy,
} from "../src/chaos/chaos-proxy.js";
import { startTcpProxy } from "../src/chaos/tcp-proxy.js";
import { ManualClock } from "../src/internal/clock.js";
import { freePort, runCli, startCli } from "./support/cli.js";

/** One end of a connection, with what it received and how it ended. */
interface End {
  socket: Socket;
  chunks: Buffer[];
  bytes: number;
  ended: boolean;
  closed: boolean;
  error: NodeJS.ErrnoException | undefined;
  received(): Buffer;
}

function track(socket: Socket): End {
  const end: End = {
    socket,
    chunks: [],
    bytes: 0,
    ended: false,
    closed: false,
    error: undefined,
    received: () => Buffer.concat(end.chunks),
  };
  socket.on("data", (d: Buffer) => {
    end.chunks.push(d);
    end.bytes += d.length;
  });
  socket.on("end", () => {
    end.ended = true;
  });
  socket.on("error", (err: NodeJS.ErrnoException) => {
    end.error = err;
  });
  socket.on("close", () => {
    end.closed = true;
  });
  return end;
}

async function waitUntil(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > ms) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server on 127.0.0.1 that keeps its ends; an echo server when `echo`. */
async function peerServer(echo: boolean, allowHalfOpen = false): Promise<{ port: number; ends: End[] }> {
  const ends: End[] = [];
  const server: Server = createServer({ allowHalfOpen }, (s) => {
    ends.push(track(s));
    if (echo) s.on("data", (d: Buffer) => s.write(d));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const e of ends) e.socket.destroy();
        server.close(() => r());
      }),
  );
  const a = server.address();
  return { port: typeof a === "object" && a ? a.port : 0, ends };
}

async function proxyTo(port: number, o: Omit<ChaosProxyOptions, "target"> = {}): Promise<ChaosProxy> {
  const proxy = await startChaosProxy({ target: { host: "127.0.0.1", port }, ...o });
  cleanups.push(() => proxy.close());
  return proxy;
}

async function dial(port: number): Promise<End> {
  const socket = connect(port, "127.0.0.1");
  const end = track(socket);
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return end;
}

/** A client through the proxy and the server's end of the same connection. */
async function pair(proxy: ChaosProxy, ends: End[]): Promise<{ client: End; server: End }> {
  const before = ends.length;
  const client = await dial(proxy.address.port);
  await waitUntil(() => ends.length > before, "the server to accept");
  return { client, server: ends[ends.length - 1]! };
}

async function roundTrip(client: End): Promise<number> {
  const before = client.bytes;
  const t0 = performance.now();
  client.socket.write("x");
  await waitUntil(() => client.bytes > before, "the echo");
  return performance.now() - t0;
}

const strip = (events: readonly ChaosEvent[]) => events.map((e) => ({ ...e }));

describe("chaos proxy: relaying", () => {
  it("passes a few MB through untouched both ways (checked by hash) and counts them", async () => {
    const echo = await peerServer(true);
    const proxy = await proxyTo(echo.port);
    const client = await dial(proxy.address.port);
    const data = randomBytes(4 * 1024 * 1024);
    client.socket.write(data);
    await waitUntil(() => client.bytes >= data.length, "4 MB back");
    assert.equal(client.bytes, data.length);
    assert.equal(sha256(client.received()), sha256(data));
    const s = proxy.stats;
    assert.equal(s.accepted, 1);
    assert.equal(s.open, 1);
    assert.deepEqual(s.bytes, { toTarget: data.length, toClient: data.length });
    assert.deepEqual(s.dropped, { toTarget: 0, toClient: 0 });
    assert.equal(proxy.events.length, 0);
  });

  it("keeps the byte order under jitter", async () => {
    const echo = await peerServer(true);
    const proxy = await proxyTo(echo.port, { latencyMs: 1, jitterMs: 15, seed: 11 });
    const client = await dial(proxy.address.port);
    const sent: Buffer[] = [];
    for (let i = 0; i < 150; i++) {
      const chunk = Buffer.from(`${String(i).padStart(4, "0")}:${randomBytes(200).toString("hex")}|`);
      sent.push(chunk);
      client.socket.write(chunk);
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    const all = Buffer.concat(sent);
    await waitUntil(() => client.bytes >= all.length, "every chunk back");
    assert.equal(client.received().toString(), all.toString());
    assert.equal(proxy.seed, 11);
  });

  it("adds the latency to each direction, and setLatency changes it", async () => {
    const echo = await peerServer(true);
    const proxy = await proxyTo(echo.port, { latencyMs: 60 });
    const client = await dial(proxy.address.port);
    for (let i = 0; i < 2; i++) {
      const rtt = await roundTrip(client);
      assert.ok(rtt >= 120, `round trip ${rtt.toFixed(1)} ms with 60 ms each way`);
    }
    proxy.setLatency(100);
    const rtt = await roundTrip(client);
    assert.ok(rtt >= 200, `round trip ${rtt.toFixed(1)} ms with 100 ms each way`);
    assert.deepEqual(
      proxy.events.map((e) => [e.kind, e.connection, e.detail, e.source]),
      [["latency", null, "100ms jitter 0ms", "manual"]],
    );
    assert.throws(() => proxy.setLatency(-1), /latency must be a number of milliseconds ≥ 0/);
  });

  it("passes a half-close on, and a reset from one end to the other", async () => {
    const sink = await peerServer(false, true);
    const proxy = await proxyTo(sink.port, { latencyMs: 5 });
    const { client, server } = await pair(proxy, sink.ends);
    client.socket.end("bye");
    await waitUntil(() => server.ended, "the FIN at the server");
    assert.equal(server.received().toString(), "bye");
    await sleep(30);
    assert.equal(client.ended || client.closed, false, "the client's reading side is still open");
    // The other direction stays open until the server closes it in turn.
    server.socket.end("late reply");
    await waitUntil(() => client.closed && server.closed, "both closed");
    assert.equal(client.received().toString(), "late reply");
    assert.equal(client.error ?? server.error, undefined);

    const second = await pair(proxy, sink.ends);
    second.client.socket.resetAndDestroy();
    await waitUntil(() => second.server.closed, "the reset at the server");
    assert.equal(second.server.error?.code, "ECONNRESET");
    await waitUntil(() => proxy.stats.open === 0, "no connection left open");
  });

  it("limits the bandwidth: N bytes take at least N / rate, in each direction", async () => {
    const sink = await peerServer(false);
    const proxy = await proxyTo(sink.port, { bandwidthBytesPerSec: 200_000 });
    const { client, server } = await pair(proxy, sink.ends);
    const up = randomBytes(100_000);
    let t0 = performance.now();
    client.socket.write(up);
    await waitUntil(() => server.bytes >= up.length, "every byte at the server");
    let ms = performance.now() - t0;
    assert.ok(ms >= 500, `100,000 bytes at 200,000 B/s took ${ms.toFixed(1)} ms`);
    assert.equal(sha256(server.received()), sha256(up));

    proxy.setBandwidth(400_000);
    const down = randomBytes(100_000);
    t0 = performance.now();
    server.socket.write(down);
    await waitUntil(() => client.bytes >= down.length, "every byte at the client");
    ms = performance.now() - t0;
    assert.ok(ms >= 250, `100,000 bytes at 400,000 B/s took ${ms.toFixed(1)} ms`);
    assert.equal(sha256(client.received()), sha256(down));
    proxy.setBandwidth(null);
    assert.deepEqual(
      proxy.events.map((e) => e.detail),
      ["400KB/s", "unlimited"],
    );
  });
});

describe("chaos proxy: faults", () => {
  it("black-hole: nothing passes, nothing closes, and forwarding resumes after", async () => {
    const sink = await peerServer(false);
    const proxy = await proxyTo(sink.port);
    const { client, server } = await pair(proxy, sink.ends);
    client.socket.write("hello");
    await waitUntil(() => server.bytes === 5, "hello at the server");

    proxy.blackhole();
    assert.equal(proxy.blackholed, true);
    client.socket.write("lost-up");
    server.socket.write("lost-down");
    await sleep(150);
    assert.equal(server.received().toString(), "hello");
    assert.equal(client.bytes, 0);
    for (const e of [client, server]) {
      assert.equal(e.ended || e.closed || e.socket.destroyed, false, "both sockets stay open");
    }
    assert.deepEqual(proxy.stats.dropped, { toTarget: 7, toClient: 9 });
    assert.equal(proxy.stats.open, 1);

    proxy.restore();
    client.socket.write("after-up");
    server.socket.write("after-down");
    await waitUntil(() => server.bytes === 13 && client.bytes === 10, "the bytes sent after restore");
    assert.equal(server.received().toString(), "helloafter-up", "the dropped bytes never arrive");
    assert.equal(client.received().toString(), "after-down");

    // A timed black-hole lifts by itself.
    proxy.blackhole(120);
    client.socket.write("dropped");
    await waitUntil(() => !proxy.blackholed, "the black-hole to lift");
    client.socket.write("+again");
    await waitUntil(() => server.bytes === 19, "forwarding to resume");
    assert.equal(server.received().toString(), "helloafter-up+again");
    assert.deepEqual(
      proxy.events.map((e) => [e.kind, e.connection, e.detail, e.source]),
      [
        ["blackhole", null, "until restore", "manual"],
        ["restore", null, "every black-hole lifted", "manual"],
        ["blackhole", null, "for 120ms", "manual"],
        ["restore", null, "black-hole over", "manual"],
      ],
    );
    assert.ok(proxy.events[3]!.atMs - proxy.events[2]!.atMs >= 119, "lifted after its duration");
  });

  it("black-hole: a FIN sent meanwhile is passed on when it lifts", async () => {
    const sink = await peerServer(false);
    const proxy = await proxyTo(sink.port);
    const { client, server } = await pair(proxy, sink.ends);
    proxy.blackhole();
    client.socket.end();
    await sleep(100);
    assert.equal(server.ended, false);
    proxy.restore();
    await waitUntil(() => server.ended && client.closed, "the FIN at the server, then the close");
    assert.equal(server.error, undefined);
  });

  it("cut: both ends see a FIN and a clean close", async () => {
    const sink = await peerServer(false);
    const proxy = await proxyTo(sink.port);
    const { client, server } = await pair(proxy, sink.ends);
    assert.equal(proxy.cutAll(), 1);
    assert.equal(proxy.stats.open, 0);
    await waitUntil(() => client.closed && server.closed, "both ends closed");
    assert.equal(client.ended, true);
    assert.equal(server.ended, true);
    assert.equal(client.error, undefined);
    assert.equal(server.error, undefined);
    assert.deepEqual(
      proxy.events.map((e) => [e.kind, e.connection, e.detail]),
      [["cut", null, "1 connection"]],
    );
    assert.equal(proxy.stats.faults.cut, 1);
  });

  it("reset: both ends see ECONNRESET", async () => {
    const sink = await peerServer(false);
    const proxy = await proxyTo(sink.port);
    const { client, server } = await pair(proxy, sink.ends);
    const second = await pair(proxy, sink.ends);
    assert.equal(proxy.resetAll(), 2);
    await waitUntil(
      () => [client, server, second.client, second.server].every((e) => e.closed),
      "all closed",
    );
    for (const e of [client, server, second.client, second.server]) assert.equal(e.error?.code, "ECONNRESET");
    assert.equal(proxy.stats.faults.reset, 1);
    assert.equal(proxy.events[0]!.detail, "2 connections");
  });

  it("startTcpProxy keeps its interface: address, connections, cutAll (a reset), close", async () => {
    const echo = await peerServer(true);
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    cleanups.push(() => proxy.close());
    assert.equal(proxy.address.host, "127.0.0.1");
    const client = await dial(proxy.address.port);
    await roundTrip(client);
    assert.equal(proxy.connections, 1);
    assert.equal(proxy.cutAll(), 1);
    assert.equal(proxy.connections, 0);
    await waitUntil(() => client.closed, "the client to see the cut");
    assert.equal(client.error?.code, "ECONNRESET");
  });

  it("random cuts hit open connections, and the seed is reported", async () => {
    const sink = await peerServer(false);
    const seen: ChaosEvent[] = [];
    const proxy = await proxyTo(sink.port, {
      seed: 3,
      random: { cutEveryMs: 40 },
      onEvent: (e) => seen.push(e),
    });
    const a = await pair(proxy, sink.ends);
    const b = await pair(proxy, sink.ends);
    await waitUntil(() => proxy.stats.faults.cut === 2, "two random cuts");
    await waitUntil(() => [a, b].every((p) => p.client.closed && p.server.closed), "both connections closed");
    for (const p of [a, b]) assert.equal(p.client.ended && p.server.ended, true, "closed with a FIN");
    assert.equal(proxy.seed, 3);
    assert.deepEqual(strip(seen), strip(proxy.events));
    assert.deepEqual(
      seen.map((e) => [e.kind, e.source, e.detail]),
      [
        ["cut", "random", "one connection"],
        ["cut", "random", "one connection"],
      ],
    );
    assert.deepEqual(new Set(seen.map((e) => e.connection)), new Set([1, 2]));
  });
});

describe("chaos proxy: replayable fault decisions (manual clock)", () => {
  const random = { cutEveryMs: 1000, resetEveryMs: 1500, blackholeEveryMs: 700, blackholeForMs: 300 };

  async function runWith(seed: number): Promise<ChaosEvent[]> {
    const sink = await peerServer(false);
    const clock = new ManualClock();
    const proxy = await proxyTo(sink.port, { seed, random, clock });
    for (let i = 0; i < 4; i++) await pair(proxy, sink.ends);
    assert.equal(proxy.stats.open, 4);
    for (let t = 0; t < 10_000; t += 50) clock.advance(50);
    return strip(proxy.events);
  }

  it("the same seed and options give the same faults at the same times on the same connections", async () => {
    const first = await runWith(2024);
    const again = await runWith(2024);
    assert.deepEqual(again, first);
    assert.ok(first.length >= 5, `several faults: ${JSON.stringify(first)}`);
    const kinds = new Set(first.map((e) => e.kind));
    for (const k of ["cut", "reset", "blackhole"])
      assert.ok(kinds.has(k as never), `a ${k} in ${[...kinds]}`);
    assert.ok(first.every((e) => e.connection !== null && e.source === "random"));
    assert.notDeepEqual(await runWith(2025), first);
  });

  it("a schedule fires its steps at their times", async () => {
    const sink = await peerServer(false);
    const clock = new ManualClock();
    const proxy = await proxyTo(sink.port, {
      clock,
      schedule:
        "1s blackhole 2s; 4s cut; 5s latency 20ms jitter 5ms; 5500ms jitter 1ms; 6s bandwidth 1MB/s; 7s reset",
    });
    await pair(proxy, sink.ends);
    clock.advance(10_000);
    assert.deepEqual(
      proxy.events.map((e) => [e.atMs, e.kind, e.connection, e.detail, e.source]),
      [
        [1000, "blackhole", null, "for 2s", "schedule"],
        [3000, "restore", null, "black-hole over", "schedule"],
        [4000, "cut", null, "1 connection", "schedule"],
        [5000, "latency", null, "20ms jitter 5ms", "schedule"],
        [5500, "latency", null, "20ms jitter 1ms", "schedule"],
        [6000, "bandwidth", null, "1MB/s", "schedule"],
        [7000, "reset", null, "0 connections", "schedule"],
      ],
    );
  });

  it("startRandomFaults and stopFaults start and stop the random faults", async () => {
    const sink = await peerServer(false);
    const clock = new ManualClock();
    const proxy = await proxyTo(sink.port, { clock, seed: 8 });
    await pair(proxy, sink.ends);
    clock.advance(5000);
    assert.equal(proxy.events.length, 0);
    proxy.startRandomFaults({ blackholeEveryMs: 500, blackholeForMs: 100 });
    clock.advance(3000);
    const n = proxy.events.length;
    assert.ok(n >= 2 && proxy.events.every((e) => e.connection === 1), JSON.stringify(proxy.events));
    proxy.stopFaults();
    clock.advance(5000);
    assert.ok(proxy.events.length <= n + 1, "at most the restore of a black-hole already on");
    assert.throws(() => proxy.startRandomFaults({ blackholeForMs: 5 }), /needs random\.blackholeEveryMs/);
  });

  it("a random black-hole hits one connection: its bytes are dropped, the others pass", async () => {
    const sink = await peerServer(false);
    const clock = new ManualClock();
    const proxy = await proxyTo(sink.port, { clock, seed: 31 });
    const pairs = [await pair(proxy, sink.ends), await pair(proxy, sink.ends)];
    proxy.startRandomFaults({ blackholeEveryMs: 1000, blackholeForMs: 60_000 });
    while (proxy.events.length === 0) clock.advance(10);
    const [e] = proxy.events;
    assert.equal(e!.kind, "blackhole");
    assert.equal(e!.detail, "for 1m");
    proxy.stopFaults();
    const hit = pairs[e!.connection! - 1]!;
    const spared = pairs[2 - e!.connection!]!;
    hit.client.socket.write("dropped");
    spared.client.socket.write("passes");
    await waitUntil(() => spared.server.bytes === 6, "the spared connection's bytes");
    await sleep(50);
    assert.equal(hit.server.bytes, 0);
    assert.equal(proxy.stats.dropped.toTarget, 7);
    clock.advance(60_000);
    assert.deepEqual(proxy.events.map((x) => [x.kind, x.connection, x.detail]).at(-1), [
      "restore",
      e!.connection,
      "black-hole over",
    ]);
    hit.client.socket.write("after");
    await waitUntil(() => hit.server.bytes === 5, "forwarding to resume");
    assert.equal(hit.server.received().toString(), "after");
    assert.equal(hit.client.closed || hit.server.closed, false);
  });

  it("refuses bad options with a precise message", async () => {
    const target = { host: "127.0.0.1", port: 1 };
    await assert.rejects(
      startChaosProxy({ target, latencyMs: -1 }),
      /latencyMs must be a number of milliseconds ≥ 0/,
    );
    await assert.rejects(
      startChaosProxy({ target: { host: "x", port: 0 } }),
      /target\.port must be an integer/,
    );
    await assert.rejects(
      startChaosProxy({ target, seed: 2 ** 32 }),
      /seed must be an integer from 0 to 4294967295/,
    );
    await assert.rejects(
      startChaosProxy({ target, schedule: "5s nope" }),
      /schedule step 1 "5s nope": unknown action/,
    );
    await assert.rejects(
      startChaosProxy({ target, random: { cutEveryMs: 0 } }),
      /random\.cutEveryMs must be a number of milliseconds above 0/,
    );
  });
});

describe("muster chaos-proxy, end to end", () => {
  it("relays with latency, applies the schedule, prints JSON lines and a summary on SIGINT", async () => {
    const echo = await peerServer(true);
    const port = await freePort();
    const p = startCli([
      "chaos-proxy",
      "--target",
      `127.0.0.1:${echo.port}`,
      "--listen",
      `127.0.0.1:${port}`,
      "--latency",
      "20ms",
      "--schedule",
      "1s cut",
      "--seed",
      "42",
      "--json",
    ]);
    cleanups.push(() => p.child.kill("SIGKILL"));
    await p.waitFor("\n");
    const start = JSON.parse(p.out.split("\n")[0]!) as Record<string, unknown>;
    assert.equal(start.listening, `127.0.0.1:${port}`);
    assert.equal(start.target, `127.0.0.1:${echo.port}`);
    assert.equal(start.seed, 42);
    assert.equal(start.schedule, "1s cut");

    const client = await dial(port);
    const rtt = await roundTrip(client);
    assert.ok(rtt >= 40, `round trip ${rtt.toFixed(1)} ms with 20 ms each way`);
    await waitUntil(() => client.closed, "the scheduled cut");
    assert.equal(client.ended, true);
    await p.waitFor('"kind":"cut"');
    const cut = JSON.parse(p.out.split("\n")[1]!) as ChaosEvent;
    assert.equal(cut.kind, "cut");
    assert.equal(cut.source, "schedule");
    assert.equal(cut.detail, "1 connection");
    assert.ok(cut.atMs >= 1000);

    p.child.kill("SIGINT");
    assert.equal(await p.exited, 0);
    const last = JSON.parse(p.out.trim().split("\n").at(-1)!) as {
      summary: { seed: number; accepted: number; bytes: { toTarget: number }; faults: { cut: number } };
    };
    assert.equal(last.summary.seed, 42);
    assert.equal(last.summary.accepted, 1);
    assert.equal(last.summary.bytes.toTarget, 1);
    assert.equal(last.summary.faults.cut, 1);
  });

  it("prints the address, the seed and a summary as text, and exits 0 on SIGTERM", async () => {
    const p = startCli(["chaos-proxy", "--target", "127.0.0.1:9", "--seed", "7", "--bandwidth", "1MB/s"]);
    cleanups.push(() => p.child.kill("SIGKILL"));
    await p.waitFor("faults:");
    assert.match(
      p.out,
      /^listening on 127\.0\.0\.1:\d+, relaying to 127\.0\.0\.1:9\nseed 7\nfaults: bandwidth 1MB\/s\n/,
    );
    p.child.kill("SIGTERM");
    assert.equal(await p.exited, 0);
    assert.match(p.out, /summary after [\d.]+s, seed 7: 0 connections accepted, 0 open;/);
  });

  it("refuses bad flags with a precise message and exit status 2", async () => {
    const cases: [string[], RegExp][] = [
      [["chaos-proxy"], /required option '--target <host:port>' not specified/],
      [["chaos-proxy", "--target", "localhost"], /"localhost" is not HOST:PORT/],
      [["chaos-proxy", "--target", "127.0.0.1:1", "--latency", "-5s"], /the latency cannot be negative/],
      [["chaos-proxy", "--target", "127.0.0.1:1", "--jitter", "5parsecs"], /"5parsecs" is not a duration/],
      [["chaos-proxy", "--target", "127.0.0.1:1", "--bandwidth", "1Mb/s"], /unknown unit "Mb"/],
      [
        ["chaos-proxy", "--target", "127.0.0.1:1", "--blackhole-for", "5s"],
        /--blackhole-for needs --blackhole-every/,
      ],
      [
        ["chaos-proxy", "--target", "127.0.0.1:1", "--schedule", "5s blackhole 3s; 12s cutt"],
        /--schedule: schedule step 2 "12s cutt": unknown action "cutt"/,
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]![0].join(" ")}: ${r.err}`);
      assert.match(r.err, cases[i]![1]);
      assert.equal(r.out, "");
    });
  });
});
