// The numbers service end to end on loopback: muster's client against muster's server, raw
// gRPC calls for the protocol's edges, a cut link through the chaos proxy, and the CLI with a
// server killed by SIGKILL and restarted from its state directory.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { type ClientDuplexStream, credentials, type StatusObject, status } from "@grpc/grpc-js";
import { startChaosProxy } from "../src/chaos/chaos-proxy.js";
import { type NumbersClientOptions, type NumbersResult, runNumbersClient } from "../src/numbers/client.js";
import { type CommsReplyIn, type CommsRequest, commsService } from "../src/numbers/proto.js";
import { checksumAt, nextStatelessValue, sessionSeed, valueAt } from "../src/numbers/sequence.js";
import { type NumbersServer, type NumbersServerOptions, startNumbersServer } from "../src/numbers/server.js";
import { freePort, runCli, startCli } from "./support/cli.js";
import { until } from "./support/fleet.js";

const TICK_MS = 20;
const quickRetry = { initialMs: 50, maxMs: 400, jitter: 0.2 } as const;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const uuid = (i: number): string => `${String(i).padStart(8, "0")}-aa39-40b5-8675-247713cc4908`;
const direct = (id: string, n: number): bigint[] =>
  Array.from({ length: n }, (_, i) => BigInt(valueAt(sessionSeed(id), i + 1)));

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(
  o: Partial<NumbersServerOptions> & Pick<NumbersServerOptions, "mode">,
): Promise<NumbersServer> {
  const s = await startNumbersServer({ port: 0, host: "127.0.0.1", tickMs: TICK_MS, ...o });
  cleanups.push(() => s.close());
  return s;
}

function client(port: number, o: Omit<NumbersClientOptions, "port">): Promise<NumbersResult> {
  return runNumbersClient({ port, host: "127.0.0.1", retry: quickRetry, giveUpMs: 10_000, ...o });
}

/** A raw GetNumbers call: commands in, every reply and the final status kept. */
function converse(port: number) {
  const Comms = commsService();
  const c = new Comms(`127.0.0.1:${port}`, credentials.createInsecure());
  const call = (
    c as unknown as { GetNumbers(): ClientDuplexStream<CommsRequest, CommsReplyIn> }
  ).GetNumbers();
  const replies: CommsReplyIn[] = [];
  const ended = new Promise<StatusObject>((resolve) => call.on("status", resolve));
  call.on("data", (r: CommsReplyIn) => replies.push(r));
  call.on("error", () => {});
  cleanups.push(() => c.close());
  return {
    replies,
    ended,
    send: (message: string) => call.write({ message }),
    numbers: () => replies.filter((r) => r.data).map((r) => BigInt(r.data!.number)),
    errors: () => replies.filter((r) => r.error).map((r) => r.error!.message),
    cancel: () => call.cancel(),
    waitNumbers: (count: number) =>
      until(() => replies.filter((r) => r.data).length >= count, 5000, `${count} numbers`),
  };
}

describe("numbers: our client against our server", () => {
  it("stateless: n values, each 3 × the previous, then END and status OK", async () => {
    const s = await server({ mode: "stateless" });
    const lines: string[] = [];
    const r = await client(s.port, { mode: "stateless", n: 12, onLine: (l) => lines.push(l) });
    assert.equal(r.ok, true, r.reason);
    assert.equal(r.values.length, 12);
    assert.ok(r.values[0]! >= 1n && r.values[0]! <= 255n);
    for (let i = 1; i < 12; i++) assert.equal(r.values[i], r.values[i - 1]! * 3n);
    assert.ok(lines.includes("Test passed: true"));
    await until(() => s.activeStreams === 0, 2000, "the stream to end");
  });

  it("stateless: CONTINUE x resumes with x·3, exact across the uint64 wrap", async () => {
    const s = await server({ mode: "stateless" });
    const c = converse(s.port);
    c.send("CONTINUE 18446744073709551615");
    await c.waitNumbers(3);
    c.send("END");
    assert.equal((await c.ended).code, status.OK);
    const max = (1n << 64n) - 1n;
    assert.deepEqual(c.numbers().slice(0, 3), [
      nextStatelessValue(max),
      nextStatelessValue(nextStatelessValue(max)),
      nextStatelessValue(nextStatelessValue(nextStatelessValue(max))),
    ]);
  });

  it("stateful: n numbers computed directly from the session, then a valid checksum", async () => {
    const s = await server({ mode: "stateful" });
    const lines: string[] = [];
    const r = await client(s.port, { mode: "stateful", uuid: uuid(1), n: 20, onLine: (l) => lines.push(l) });
    assert.equal(r.ok, true, r.reason);
    assert.deepEqual(r.values, direct(uuid(1), 20));
    assert.equal(r.serverChecksum, checksumAt(sessionSeed(uuid(1)), 20));
    assert.ok(lines.includes("Checksum is valid: true"));
  });

  it("stateful: concurrent sessions never disturb each other", async () => {
    const s = await server({ mode: "stateful" });
    const results = await Promise.all(
      [2, 3, 4, 5].map((i) => client(s.port, { mode: "stateful", uuid: uuid(i), n: 15 })),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.ok, true, r.reason);
      assert.deepEqual(r.values, direct(uuid(i + 2), 15));
    }
  });

  it("stateful-test: the seed client's test session (n = 5) and its golden checksum", async () => {
    const s = await server({ mode: "stateful" });
    const r = await client(s.port, { mode: "stateful-test" });
    assert.equal(r.ok, true, r.reason);
    assert.equal(r.serverChecksum, 119257);
  });
});

describe("numbers: the protocol's edges", () => {
  it("processes every command in order: a second START on the same stream is refused", async () => {
    const s = await server({ mode: "stateless" });
    const c = converse(s.port);
    c.send("START");
    c.send("START");
    assert.equal((await c.ended).code, status.OK);
    assert.deepEqual(c.errors(), [
      "server was already running: this stream is already sending; send END to stop it",
    ]);
  });

  it("answers a bad command in band, saying what was expected, then ends with status OK", async () => {
    const s = await server({ mode: "stateful" });
    const c = converse(s.port);
    c.send("FOO");
    const st = await c.ended;
    assert.equal(st.code, status.OK);
    assert.deepEqual(c.errors(), [
      'unknown command "FOO": expected START "<uuid>" <n> or CONTINUE <uuid> <last>',
    ]);
  });

  it("resumes at an explicit @position, even back before a repeated value", async () => {
    const s = await server({ mode: "stateful" });
    const id = uuid(6);
    const a = converse(s.port);
    a.send(`START "${id}" 10`);
    await a.waitNumbers(6);
    a.cancel();
    await until(() => s.activeStreams === 0, 2000, "the first stream to be released");
    const b = converse(s.port);
    b.send(`CONTINUE ${id} @2`);
    assert.equal((await b.ended).code, status.OK);
    const got = b.numbers();
    // count, checksum, then values 3..10, then the checksum over all ten.
    assert.deepEqual(got.slice(0, 2), [2n, BigInt(checksumAt(sessionSeed(id), 2))]);
    assert.deepEqual(got.slice(2, 10), direct(id, 10).slice(2));
    assert.equal(got[10], BigInt(checksumAt(sessionSeed(id), 10)));
  });

  it("CONTINUE by last value resumes after that value, and takes the session from a stale stream", async () => {
    const s = await server({ mode: "stateful" });
    const id = uuid(7);
    const a = converse(s.port);
    a.send(`START ${id} 8`);
    await a.waitNumbers(3);
    const last = a.numbers()[2]!;
    const b = converse(s.port);
    b.send(`CONTINUE ${id} ${last}`);
    assert.equal((await a.ended).code, status.OK);
    assert.deepEqual(a.errors(), [`session ${id} was continued on another stream`]);
    assert.equal((await b.ended).code, status.OK);
    const got = b.numbers();
    const position = Number(got[0]);
    assert.ok(position >= 3, `resumed at ${position}`);
    assert.equal(BigInt(valueAt(sessionSeed(id), position)), last);
    assert.deepEqual(got.slice(2, 2 + 8 - position), direct(id, 8).slice(position));
  });

  it("frees a stream's resources when its client goes away", async () => {
    const s = await server({ mode: "stateless" });
    const c = converse(s.port);
    c.send("START");
    await c.waitNumbers(2);
    assert.equal(s.activeStreams, 1);
    c.cancel();
    await until(() => s.activeStreams === 0, 2000, "the stream to be released");
  });

  it("forgets a session expiryMs after its last activity: then CONTINUE gets uuid has no session", async () => {
    const s = await server({ mode: "stateful", expiryMs: 500 });
    const id = uuid(8);
    const a = converse(s.port);
    a.send(`START ${id} 1000`);
    await a.waitNumbers(3);
    a.cancel();
    await until(() => s.activeStreams === 0, 2000, "the stream to be released");
    await sleep(150);
    const b = converse(s.port);
    b.send(`CONTINUE ${id} @1`);
    await b.waitNumbers(3);
    b.cancel();
    await until(() => s.activeStreams === 0, 2000, "the stream to be released");
    assert.equal(s.sessions, 1);
    await sleep(1000);
    assert.equal(s.sessions, 0);
    const c = converse(s.port);
    c.send(`CONTINUE ${id} @1`);
    assert.equal((await c.ended).code, status.OK);
    assert.equal(c.errors().length, 1);
    assert.match(c.errors()[0]!, /^uuid has no session: /);
  });
});

describe("numbers: drops and restarts", () => {
  it("a link cut mid-stream: the stateful client resumes and the checksum is valid", async () => {
    const s = await server({ mode: "stateful" });
    const proxy = await startChaosProxy({ target: { host: "127.0.0.1", port: s.port } });
    cleanups.push(() => proxy.close());
    const id = uuid(9);
    let cuts = 0;
    const lines: string[] = [];
    const r = await client(proxy.address.port, {
      mode: "stateful",
      uuid: id,
      n: 30,
      onLine: (l) => {
        lines.push(l);
        if (/\| Count: (5|17)$/.test(l)) cuts += proxy.cutAll();
      },
    });
    assert.equal(r.ok, true, `${r.reason}\n${lines.join("\n")}`);
    assert.ok(cuts >= 2 && r.reconnects >= 2, `cuts ${cuts}, reconnects ${r.reconnects}`);
    assert.deepEqual(r.values, direct(id, 30), "every number once, in order");
    assert.ok(lines.some((l) => l.startsWith("Count set to: ")));
  });

  it("a link cut mid-stream: the stateless client resumes from its last value", async () => {
    const s = await server({ mode: "stateless" });
    const proxy = await startChaosProxy({ target: { host: "127.0.0.1", port: s.port } });
    cleanups.push(() => proxy.close());
    const r = await client(proxy.address.port, {
      mode: "stateless",
      n: 20,
      onLine: (l) => {
        if (l.endsWith("| Count: 6")) proxy.cutAll();
      },
    });
    assert.equal(r.ok, true, r.reason);
    assert.equal(r.reconnects, 1);
    for (let i = 1; i < 20; i++) assert.equal(r.values[i], nextStatelessValue(r.values[i - 1]!));
  });

  it("the CLI server killed with SIGKILL and restarted: the CLI client finishes with a valid checksum", async () => {
    const dir = await mkdtemp(join(tmpdir(), "numbers-state-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const port = String(await freePort());
    const args = ["numbers", "--mode", "stateful", "--port", port, "--tick", "100ms", "--state-dir", dir];
    const first = startCli(args);
    cleanups.push(() => first.child.kill("SIGKILL"));
    await first.waitFor("listening on 127.0.0.1:");
    const id = uuid(10);
    const c = startCli(["numbers-client", "--mode", "stateful", "--port", port, "--uuid", id, "12"]);
    cleanups.push(() => c.child.kill("SIGKILL"));
    await c.waitFor("| Count: 4");
    first.child.kill("SIGKILL");
    await first.exited;
    await sleep(300);
    const second = startCli(args);
    cleanups.push(() => second.child.kill("SIGKILL"));
    await second.waitFor("(1 restored)");
    assert.equal(await c.exited, 0, c.out + c.err);
    assert.match(c.out, /Failed to connect, will retry in \d+ ms/);
    assert.match(c.out, /Count set to: \d+\nChecksum set to: \d+/);
    assert.match(c.out, /Checksum is valid: true/);
    const values = [...c.out.matchAll(/Response: (\d+) \| Count: (\d+)/g)].map((m) => [
      BigInt(m[1]!),
      Number(m[2]),
    ]);
    assert.deepEqual(
      values.map(([, k]) => k),
      Array.from({ length: 12 }, (_, i) => i + 1),
      "each position once",
    );
    assert.deepEqual(
      values.map(([v]) => v),
      direct(id, 12),
    );
  });

  it("the CLI client gives up after --give-up with exit status 3", async () => {
    const port = String(await freePort());
    const r = await runCli(["numbers-client", "--mode", "stateful-test", "--port", port, "--give-up", "1s"]);
    assert.equal(r.code, 3, r.out + r.err);
    assert.match(r.err, /muster: gave up: nothing received for/);
  });

  it("the CLI refuses bad flags with exit status 2 and a precise message", async () => {
    const cases: [string[], RegExp][] = [
      [["numbers", "--tick", "0s"], /--tick must be above 0/],
      [["numbers", "--port", "70000"], /port 70000 is out of range: 0 to 65535/],
      [["numbers", "--mode", "stateless", "--state-dir", "x"], /--state-dir needs --mode stateful/],
      [["numbers", "--mode", "both"], /argument 'both' is invalid/],
      [["numbers-client", "--mode", "stateless"], /stateless mode needs N/],
      [["numbers-client", "--mode", "stateful", "0"], /n must be a whole number from 1 to 65535, got "0"/],
      [["numbers-client", "--mode", "stateful-test-reconnect"], /stateful-test-reconnect needs LAST/],
      [["numbers-client", "--mode", "stateful", "--uuid", "nope"], /--uuid "nope" is not a uuid/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 2, `${cases[i]![0].join(" ")}: ${r.err}`);
      assert.match(r.err, cases[i]![1]);
    }
  });
});
