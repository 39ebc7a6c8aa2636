// Streams opened on one server of a cluster and served by an agent another server holds: flow
// control end to end, muster's own sequence numbers over an at-most-once backplane, and every
// way a relayed stream can end, on both sides, with nothing left behind. Over the in-memory
// backplane (also a lossy one, to show lost messages are repaired or reported), and once over a
// real nats-server.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import type { ClusterBus } from "../src/cluster/bus.js";
import { AgentDirectory } from "../src/cluster/directory.js";
import { decodeEnvelope, encodeEnvelope } from "../src/cluster/envelope.js";
import { MemoryBackplane, type MemoryBackplaneOptions } from "../src/cluster/memory-bus.js";
import { connectNatsBus } from "../src/cluster/nats-bus.js";
import { ServerRegistry } from "../src/cluster/registry.js";
import { type StreamRelay, streamRelayOf } from "../src/cluster/stream-relay.js";
import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import type { MusterStream, StreamContext } from "../src/rpc/stream.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { MemoryNetwork } from "../src/transport/memory.js";
import { quickReconnect, until } from "./support/fleet.js";
import { natsServerMissing, startNatsServer } from "./support/nats-server.js";

/**
 * Registry refresh: a server silent for 5 of these is dead. Long enough that a test process
 * busy pumping items (agent and servers in one event loop, on a loaded machine) is never taken
 * for dead; the tests of a server going silent pass FAST_REFRESH.
 */
const REFRESH = 1000;
const FAST_REFRESH = 100;
const text = new TextEncoder();

/** Drops the messages `drop` picks (by subject and envelope type), as a lossy backplane would. */
type Dropper = (subject: string, type: string) => boolean;

interface Cluster {
  net: MemoryNetwork;
  hub: MemoryBackplane;
  servers: MusterServer[];
  /** Each server's bus as its server sees it (lossy when asked). */
  buses: ClusterBus[];
  /** Cuts a server off the backplane. */
  setDown(i: number, down: boolean): void;
  relay(i: number): StreamRelay;
  addAgent(name: string, server: string): Promise<MusterAgent>;
  close(): Promise<void>;
}

async function cluster(
  names: string[],
  opts: { hub?: MemoryBackplaneOptions; drop?: Record<string, Dropper>; refreshMs?: number } = {},
): Promise<Cluster> {
  const hub = new MemoryBackplane(opts.hub);
  const net = new MemoryNetwork();
  const downs: Array<(down: boolean) => void> = [];
  const agents: MusterAgent[] = [];
  // The cluster's own timers are unref'd (a server's listener keeps a real process alive): a
  // test waiting for the registry to declare a server dead needs something else to.
  const keepAlive = setInterval(() => {}, 1000);
  const c: Cluster = {
    net,
    hub,
    servers: [],
    buses: [],
    setDown: (i, down) => downs[i]!(down),
    relay(i) {
      const r = streamRelayOf(c.buses[i]!);
      assert.ok(r, "every cluster server has a stream relay");
      return r;
    },
    async addAgent(name, server) {
      const agent = createAgent({
        name,
        servers: [`memory://${server}`],
        memory: net,
        reconnect: quickReconnect,
        serverOrder: "ordered",
      });
      agents.push(agent);
      agent.start();
      await agent.connected();
      return agent;
    },
    async close() {
      clearInterval(keepAlive);
      await Promise.all(agents.map((a) => a.close()));
      await Promise.all(c.servers.map((s) => s.close()));
    },
  };
  for (const name of names) {
    const raw = hub.connect({ name });
    downs.push((d) => raw.setDown(d));
    const drop = opts.drop?.[name];
    const bus = drop === undefined ? raw : lossy(raw, drop);
    const server = createServer({
      name,
      listen: [`memory://${name}`],
      memory: net,
      standalone: true,
      cluster: { bus, refreshMs: opts.refreshMs ?? REFRESH },
    });
    await server.start();
    c.servers.push(server);
    c.buses.push(bus);
  }
  await until(
    () =>
      c.servers.every(
        (s) => s.servers().filter((r) => r.state === "ready" || r.state === "self").length === names.length,
      ),
    5000,
    "every server to see the others",
  );
  return c;
}

/** A bus that loses the messages `drop` picks and carries the rest. */
function lossy(bus: ClusterBus, drop: Dropper): ClusterBus {
  return {
    get maxPayload() {
      return bus.maxPayload;
    },
    get status() {
      return bus.status;
    },
    onStatus: (fn) => bus.onStatus(fn),
    publish(subject, data, headers) {
      let type = "";
      try {
        type = decodeEnvelope(data).head.t;
      } catch {}
      if (!drop(subject, type)) bus.publish(subject, data, headers);
    },
    request: (subject, data, options) => bus.request(subject, data, options),
    subscribe: (subject, handler) => bus.subscribe(subject, handler),
    bucket: (name, options) => bus.bucket(name, options),
    close: () => bus.close(),
  };
}

/** Drops only the `n`-th message (from 1) of envelope type `type`. */
function dropNth(type: string, n: number): Dropper {
  let seen = 0;
  return (_subject, t) => t === type && ++seen === n;
}

/** Waits until `name` is listed connected on every server. */
async function seeAgent(c: Cluster, name: string): Promise<void> {
  await until(
    () => c.servers.every((s) => s.agents().find((a) => a.name === name)?.state === "connected"),
    5000,
    `every server to list ${name}`,
  );
}

/** Both sides of every relay empty: no stream read, none served. */
async function nothingLeft(c: Cluster): Promise<void> {
  await until(
    () => c.servers.every((_, i) => c.relay(i).reading === 0 && c.relay(i).pumps.running === 0),
    5000,
    "every relayed stream forgotten on both sides",
  );
}

async function rejection(p: Promise<unknown>): Promise<MusterError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MusterError, `a MusterError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a rejection");
}

async function drain<T>(s: MusterStream<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of s) out.push(x);
  return out;
}

/** An agent stream that runs until cancelled, one item every `ms`; `stopped()` once its finally ran. */
function endless(agent: MusterAgent, name: string, ms = 2): { stopped: () => boolean } {
  let stopped = false;
  agent.handleStream(name, async function* (_req: unknown, ctx: StreamContext) {
    try {
      for (let i = 1; !ctx.signal.aborted; i++) {
        yield i;
        await new Promise((r) => setTimeout(r, ms));
      }
    } finally {
      stopped = true;
    }
  });
  return { stopped: () => stopped };
}

describe("streams across servers (in-memory backplane)", () => {
  const open: Cluster[] = [];
  after(async () => {
    for (const c of open) await c.close();
  });

  it("20,000 items through another server, in order, each once, a small window and a slow reader", async () => {
    const c = await cluster(["s1", "s2"]);
    open.push(c);
    const agent = await c.addAgent("far", "s2");
    agent.handleStream("count", async function* (req: { n: number }) {
      for (let i = 0; i < req.n; i++) yield { i, pad: "x".repeat(20) };
      return { total: req.n };
    });
    await seeAgent(c, "far");
    const windowBytes = 2048;
    const s = c.servers[0]!.openStream<{ i: number }>("far", "count", { n: 20_000 }, { windowBytes });
    let next = 0;
    for await (const item of s) {
      assert.equal(item.i, next, "items in order, none missing, none twice");
      next++;
      // Slow: the owner must wait for credit again and again.
      if (next % 250 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(next, 20_000);
    assert.deepEqual(s.result, { total: 20_000 });
    assert.equal(s.received, 20_000);
    const peak = c.relay(1).pumps.peakOutstandingBytes;
    const itemCost = JSON.stringify({ i: 19_999, pad: "x".repeat(20) }).length + 16;
    // The rule of every muster writer: send while under the window, so one item may overshoot it.
    assert.ok(
      peak < windowBytes + itemCost,
      `the owner had ${peak} bytes unacknowledged, more than a window (${windowBytes}) and an item`,
    );
    assert.ok(peak >= windowBytes / 2, `the window was used (${peak} bytes at most outstanding)`);
    await nothingLeft(c);
  });

  it("a stream error from the agent, and a stream it does not serve, come back with their codes", async () => {
    const c = await cluster(["e1", "e2"]);
    open.push(c);
    const agent = await c.addAgent("strict", "e2");
    agent.handleStream("two-then-fail", async function* () {
      yield 1;
      yield 2;
      throw new MusterError(ErrorCode.PERMISSION_DENIED, "not for you");
    });
    await seeAgent(c, "strict");
    const e1 = c.servers[0]!;
    const s = e1.openStream<number>("strict", "two-then-fail");
    const got: number[] = [];
    const err = await rejection(
      (async () => {
        for await (const x of s) got.push(x);
      })(),
    );
    assert.deepEqual(got, [1, 2], "the items before the error arrive");
    assert.equal(err.code, ErrorCode.PERMISSION_DENIED);
    assert.match(err.message, /not for you/);
    const none = await rejection(drain(e1.openStream("strict", "no-such-stream")));
    assert.equal(none.code, ErrorCode.UNIMPLEMENTED, none.message);
    await nothingLeft(c);
  });

  it("a call with partial results (onItem) to an agent of another server: every item in order, then its value", async () => {
    const c = await cluster(["p1", "p2"]);
    open.push(c);
    const agent = await c.addAgent("emitter", "p2");
    agent.handle("progress", async (req: { n: number }, ctx) => {
      for (let i = 0; i < req.n; i++) if (!ctx.emit(i)) await ctx.whenWritable();
      return { done: req.n };
    });
    agent.handle("fails-half-way", async (_req: unknown, ctx) => {
      ctx.emit("first");
      throw new MusterError(ErrorCode.PERMISSION_DENIED, "disk full");
    });
    await seeAgent(c, "emitter");
    const p1 = c.servers[0]!;
    const items: unknown[] = [];
    const value = await p1.callAgent("emitter", "progress", { n: 500 }, { onItem: (x) => items.push(x) });
    assert.deepEqual(value, { done: 500 });
    assert.deepEqual(
      items,
      Array.from({ length: 500 }, (_, i) => i),
      "each item once, in order, before the value",
    );
    const seen: unknown[] = [];
    const err = await rejection(
      p1.callAgent("emitter", "fails-half-way", {}, { onItem: (x) => seen.push(x) }),
    );
    assert.equal(err.code, ErrorCode.PERMISSION_DENIED);
    assert.match(err.message, /disk full/);
    assert.deepEqual(seen, ["first"], "the item before the error arrived");
    // Without onItem the call goes the usual way, and the same agent answers it.
    assert.deepEqual(await p1.callAgent("emitter", "progress", { n: 3 }), { done: 3 });
    const missing = await rejection(p1.callAgent("nobody", "progress", {}, { onItem: () => {} }));
    assert.equal(missing.code, ErrorCode.NOT_FOUND, missing.message);
    await nothingLeft(c);
  });

  it("a call's partial results held beyond their bound while credit does not come: RESOURCE_EXHAUSTED after the items held, the agent's handler stopped", async () => {
    // q1's credit is lost while `hold` is set: the items wait on q2, as behind a slow reader.
    let hold = true;
    const c = await cluster(["q1", "q2"], { drop: { q1: (_s, t) => hold && t === "stream.credit" } });
    open.push(c);
    const agent = await c.addAgent("flood", "q2");
    let stoppedAt = -1;
    agent.handle("flood", async (_req: unknown, ctx) => {
      // 64 KiB items, emitted without waiting: 4 MiB in all, far beyond what may wait.
      const pad = "x".repeat(64 * 1024);
      for (let i = 0; i < 64; i++) {
        if (ctx.signal.aborted) {
          stoppedAt = i;
          throw ctx.signal.reason;
        }
        ctx.emit({ i, pad });
        await new Promise((r) => setImmediate(r));
      }
      return "all sent";
    });
    await seeAgent(c, "flood");
    const got: number[] = [];
    const call = rejection(
      c.servers[0]!.callAgent<string>(
        "flood",
        "flood",
        {},
        { onItem: (x) => got.push((x as { i: number }).i) },
      ),
    );
    await until(() => stoppedAt >= 0, 5000, "the agent's handler to be cancelled");
    assert.ok(stoppedAt < 64, `the handler stopped after ${stoppedAt} of 64 items`);
    hold = false; // the next sync repairs the credit: the items held come, then the error
    const err = await call;
    assert.equal(err.code, ErrorCode.RESOURCE_EXHAUSTED, err.message);
    assert.match(err.message, /partial results came faster than they crossed to the calling server/);
    assert.deepEqual(
      got,
      Array.from({ length: got.length }, (_, i) => i),
      "the items held before the bound arrive, in order",
    );
    // The bound is the larger of the window (256 KiB) and 1 MiB: 16 items of 64 KiB, plus one.
    assert.ok(got.length >= 15 && got.length <= 17, `${got.length} items held and delivered`);
    await nothingLeft(c);
  });

  it("a stream to an agent no server has: NOT_FOUND", async () => {
    const c = await cluster(["n1", "n2"]);
    open.push(c);
    const err = await rejection(drain(c.servers[0]!.openStream("nobody", "count")));
    assert.equal(err.code, ErrorCode.NOT_FOUND);
    assert.match(err.message, /nobody/);
  });

  it("the reader cancels: the agent's handler stops, both servers forget the stream", async () => {
    const c = await cluster(["c1", "c2"]);
    open.push(c);
    const h = endless(await c.addAgent("talker", "c2"), "talk", 0);
    await seeAgent(c, "talker");
    const s = c.servers[0]!.openStream<number>("talker", "talk", undefined, { windowBytes: 512 });
    let n = 0;
    for await (const x of s) {
      assert.equal(x, ++n);
      if (n === 100) break;
    }
    await until(h.stopped, 5000, "the agent's handler to stop");
    await nothingLeft(c);
    // One last sync after the last stream, then the timer stops too.
    await until(() => c.relay(0).idle && c.relay(1).idle, 5000, "both relays idle, their timers stopped");
  });

  it("an abort signal and a deadline end the stream on both sides", async () => {
    const c = await cluster(["d1", "d2"]);
    open.push(c);
    const agent = await c.addAgent("ticker", "d2");
    const a = endless(agent, "tick-a", 5);
    const b = endless(agent, "tick-b", 5);
    await seeAgent(c, "ticker");
    const d1 = c.servers[0]!;
    const ac = new AbortController();
    const aborted = d1.openStream<number>("ticker", "tick-a", undefined, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    assert.ok((await drain(aborted)).length > 0, "items before the abort");
    const late = d1.openStream<number>("ticker", "tick-b", undefined, { timeoutMs: 150 });
    const err = await rejection(drain(late));
    assert.equal(err.code, ErrorCode.DEADLINE_EXCEEDED);
    await until(() => a.stopped() && b.stopped(), 5000, "both handlers to stop");
    await nothingLeft(c);
  });

  it("the owner's backplane cut mid-stream: UNAVAILABLE long before any deadline, its handler stops", async () => {
    const c = await cluster(["b1", "b2"], { refreshMs: FAST_REFRESH });
    open.push(c);
    const h = endless(await c.addAgent("cut", "b2"), "feed", 5);
    await seeAgent(c, "cut");
    const s = c.servers[0]!.openStream<number>("cut", "feed");
    let started = 0;
    const err = await rejection(
      (async () => {
        for await (const x of s) {
          if (x === 10) {
            started = Date.now();
            c.setDown(1, true);
          }
        }
      })(),
    );
    const took = Date.now() - started;
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.match(err.message, /server b2/);
    assert.ok(took < 5000, `settled ${took} ms after the cut`);
    await until(h.stopped, 5000, "the handler on the cut server to stop");
    c.setDown(1, false);
    await nothingLeft(c);
  });

  it("the owner crashes (no subscriber left): UNAVAILABLE within a probe, long before the registry says so", async () => {
    // Registry: dead after 5 × 2 s. The probe of the servers streams are read from sees at once
    // that nobody listens for the owner any more.
    const c = await cluster(["k1", "k2"], { refreshMs: 2000 });
    open.push(c);
    endless(await c.addAgent("doomed", "k2"), "feed", 5);
    await seeAgent(c, "doomed");
    const s = c.servers[0]!.openStream<number>("doomed", "feed");
    let started = 0;
    const err = await rejection(
      (async () => {
        for await (const x of s) {
          if (x === 10) {
            started = Date.now();
            void c.buses[1]!.close(); // as a crash: no deregistration, the subscription just gone
          }
        }
      })(),
    );
    const took = Date.now() - started;
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.match(err.message, /server k2: the server is gone \(no subscriber on the backplane\)/);
    assert.ok(took < 5000, `settled ${took} ms after the crash`);
    assert.equal(c.relay(0).reading, 0);
  });

  it("the reading server's backplane cut: its reader fails at once, the owner stops the stream", async () => {
    const c = await cluster(["o1", "o2"], { refreshMs: FAST_REFRESH });
    open.push(c);
    const h = endless(await c.addAgent("src", "o2"), "feed", 5);
    await seeAgent(c, "src");
    const s = c.servers[0]!.openStream<number>("src", "feed");
    const err = await rejection(
      (async () => {
        for await (const x of s) if (x === 10) c.setDown(0, true);
      })(),
    );
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.match(err.message, /lost the cluster backplane/);
    // The owner learns from the registry that the reader is gone.
    await until(h.stopped, 5000, "the owner to stop the stream of the gone reader");
    c.setDown(0, false);
    await nothingLeft(c);
  });

  it("the agent leaves mid-stream, or the reading server stops: each side ends, nothing is left", async () => {
    const c = await cluster(["q1", "q2", "q3"]);
    open.push(c);
    const leaving = await c.addAgent("leaving", "q2");
    endless(leaving, "feed", 5);
    const h = endless(await c.addAgent("staying", "q2"), "feed", 5);
    await seeAgent(c, "leaving");
    await seeAgent(c, "staying");
    const s = c.servers[0]!.openStream<number>("leaving", "feed");
    await s.next();
    await leaving.close();
    const err = await rejection(drain(s));
    assert.equal(err.code, ErrorCode.UNAVAILABLE, err.message);
    assert.match(err.message, /agent leaving: closed by the agent/);
    // A reader on q3, and q3 stopped: q2 hears it left and stops its stream.
    const q3 = c.servers[2]!;
    const t = q3.openStream<number>("staying", "feed");
    await t.next();
    await q3.close();
    c.servers.splice(2, 1);
    c.buses.splice(2, 1);
    await until(h.stopped, 5000, "the owner to stop the stream of the stopped server");
    await nothingLeft(c);
  });

  it("a forged message skipping sequence numbers: UNAVAILABLE naming the items lost", async () => {
    const c = await cluster(["g1", "g2"]);
    open.push(c);
    const h = endless(await c.addAgent("steady", "g2"), "feed", 5);
    await seeAgent(c, "steady");
    // A raw client on the backplane learns the stream's id and origin from its opening.
    const probe = c.hub.connect({ name: "forger" });
    const opened = new Promise<{ id: number; origin: string }>((resolve) => {
      probe.subscribe("muster.muster.node.*.stream", (m) => {
        const { head } = decodeEnvelope(m.data);
        if (head.t === "stream.open") resolve({ id: head.id as number, origin: head.origin as string });
      });
    });
    const s = c.servers[0]!.openStream<number>("steady", "feed");
    const { id, origin } = await opened;
    let read = 0;
    const err = await rejection(
      (async () => {
        for await (const x of s) {
          read = x;
          if (x === 5)
            probe.publish(
              `muster.muster.node.${origin}.items`,
              encodeEnvelope({ t: "stream.items", id, s: 1000, k: [1] }, [text.encode('"forged"')]),
            );
        }
      })(),
    );
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.match(err.message, /items \d+ to 999 lost on the cluster backplane \(item 1000 came next\)/);
    assert.ok(read >= 5, "the real items before the gap were read");
    assert.equal((err.details as { lastReceived?: number }).lastReceived, s.received);
    await until(h.stopped, 5000, "the owner to stop the stream");
    await nothingLeft(c);
    await probe.close();
  });

  it("an owner of a version that does not relay streams: UNAVAILABLE saying where to open it", async () => {
    const c = await cluster(["u1"]);
    open.push(c);
    // A server of the previous version: registered without the "streams" capability.
    const old = c.hub.connect({ name: "old" });
    const registry = new ServerRegistry({
      bus: old,
      bucket: "muster_muster_servers",
      name: "old",
      id: "old-1",
      urls: ["memory://old"],
      version: "0.0.9",
      capabilities: ["calls", "fan-out"],
      refreshMs: REFRESH,
    });
    await registry.start();
    const directory = new AgentDirectory({
      bus: old,
      bucket: "muster_muster_agents",
      serverName: "old",
      serverId: "old-1",
    });
    await directory.start();
    await directory.claim("legacy", { session: "s-1", epoch: Date.now(), labels: {}, version: "0.0.9" });
    await seeAgent(c, "legacy");
    const err = await rejection(drain(c.servers[0]!.openStream("legacy", "tail")));
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.match(
      err.message,
      /agent legacy is connected to server old, whose version does not relay streams/,
    );
    directory.stop();
    await registry.stop();
    await old.close();
  });

  it("an item larger than the backplane carries fails the stream with RESOURCE_EXHAUSTED", async () => {
    const c = await cluster(["p1", "p2"], { hub: { maxPayload: 32 * 1024 } });
    open.push(c);
    const agent = await c.addAgent("big", "p2");
    let stopped = false;
    agent.handleStream("grow", async function* () {
      try {
        yield "small";
        yield "x".repeat(40 * 1024);
        yield "never read";
      } finally {
        stopped = true;
      }
    });
    await seeAgent(c, "big");
    const s = c.servers[0]!.openStream<string>("big", "grow");
    const got: string[] = [];
    const err = await rejection(
      (async () => {
        for await (const x of s) got.push(x);
      })(),
    );
    assert.deepEqual(got, ["small"]);
    assert.equal(err.code, ErrorCode.RESOURCE_EXHAUSTED);
    assert.match(err.message, /item 2 of stream grow is \d+ bytes, more than the cluster backplane carries/);
    await until(() => stopped, 5000, "the handler to stop");
    await nothingLeft(c);
  });
});

describe("streams across servers over a lossy backplane", () => {
  const open: Cluster[] = [];
  after(async () => {
    for (const c of open) await c.close();
  });

  const counter = (agent: MusterAgent) =>
    agent.handleStream("count", async function* (req: { n: number }) {
      for (let i = 0; i < req.n; i++) yield i;
      return "done";
    });

  it("a lost credit message: repaired by the next sync, the stream completes", async () => {
    const c = await cluster(["l1", "l2"], { drop: { l1: dropNth("stream.credit", 2) } });
    open.push(c);
    counter(await c.addAgent("a", "l2"));
    await seeAgent(c, "a");
    const s = c.servers[0]!.openStream<number>("a", "count", { n: 500 }, { windowBytes: 256 });
    const got = await drain(s);
    assert.deepEqual(
      got,
      Array.from({ length: 500 }, (_, i) => i),
    );
    assert.equal(s.result, "done");
    await nothingLeft(c);
  });

  it("a lost items message mid-stream: the gap is reported (by the next items, or by the sync when the owner waits for credit)", async () => {
    const c = await cluster(["i1", "i2"], { drop: { i2: dropNth("stream.items", 3) } });
    open.push(c);
    counter(await c.addAgent("a", "i2"));
    await seeAgent(c, "a");
    const s = c.servers[0]!.openStream<number>("a", "count", { n: 500 }, { windowBytes: 256 });
    const err = await rejection(drain(s));
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.match(
      err.message,
      /server i2: items? (\d+)( to \d+)? lost on the cluster backplane \((server i2 sent \d+ items|item \d+ came next)\); reopen it from item \1/,
    );
    await nothingLeft(c);
  });

  it("lost items just before the end: the end's count reveals them", async () => {
    const c = await cluster(["j1", "j2"], { drop: { j2: (_s, t) => t === "stream.items" } });
    open.push(c);
    counter(await c.addAgent("a", "j2"));
    await seeAgent(c, "a");
    const err = await rejection(drain(c.servers[0]!.openStream<number>("a", "count", { n: 3 })));
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.match(err.message, /items 1 to 3 lost on the cluster backplane \(the stream ended after item 3\)/);
    await nothingLeft(c);
  });

  it("a lost end: the sync finds the owner no longer has the stream", async () => {
    const c = await cluster(["t1", "t2"], { drop: { t2: (_s, t) => t === "stream.end" } });
    open.push(c);
    counter(await c.addAgent("a", "t2"));
    await seeAgent(c, "a");
    const s = c.servers[0]!.openStream<number>("a", "count", { n: 3 });
    const got: number[] = [];
    const err = await rejection(
      (async () => {
        for await (const x of s) got.push(x);
      })(),
    );
    assert.deepEqual(got, [0, 1, 2]);
    assert.equal(err.code, ErrorCode.UNAVAILABLE);
    assert.match(err.message, /server t2: that server no longer has the stream .*reopen it from item 4/);
    await nothingLeft(c);
  });

  it("a lost cancel: the owner stops the stream when the reader's sync no longer lists it", async () => {
    const c = await cluster(["x1", "x2"], { drop: { x1: (_s, t) => t === "stream.cancel" } });
    open.push(c);
    const h = endless(await c.addAgent("a", "x2"), "feed", 5);
    const keep = endless(await c.addAgent("b", "x2"), "feed", 5);
    await seeAgent(c, "a");
    await seeAgent(c, "b");
    const x1 = c.servers[0]!;
    // Another stream to the same server keeps the sync going after the first one is cancelled.
    const other = x1.openStream<number>("b", "feed");
    await other.next();
    const s = x1.openStream<number>("a", "feed");
    await s.next();
    s.cancel();
    await until(h.stopped, 5000, "the owner to stop the cancelled stream");
    assert.equal(keep.stopped(), false, "the stream still listed runs on");
    other.cancel();
    // The reader's last sync to that server, with no stream listed, stops it too.
    await until(keep.stopped, 5000, "the other stream to stop too (its cancel is lost as well)");
    await nothingLeft(c);
  });
});

const skip = natsServerMissing();

it("nats: a stream of 20,000 items between two servers", { skip }, async (t) => {
  const nats = await startNatsServer();
  const net = new MemoryNetwork();
  const servers: MusterServer[] = [];
  let agent: MusterAgent | undefined;
  t.after(async () => {
    await agent?.close();
    for (const s of servers) await s.close();
    await nats.stop();
  });
  for (const name of ["n1", "n2"]) {
    const server = createServer({
      name,
      listen: [`memory://${name}`],
      memory: net,
      standalone: true,
      cluster: { bus: await connectNatsBus(nats.url, { name, reconnectTimeWaitMs: 100 }) },
    });
    await server.start();
    servers.push(server);
  }
  agent = createAgent({ name: "far", servers: ["memory://n2"], memory: net, reconnect: quickReconnect });
  agent.handleStream("count", async function* (req: { n: number }) {
    for (let i = 0; i < req.n; i++) yield { i, pad: "x".repeat(20) };
    return { total: req.n };
  });
  agent.start();
  await agent.connected();
  await until(
    () => servers[0]!.agents().find((a) => a.name === "far")?.state === "connected",
    10_000,
    "n1 to list the agent on n2",
  );
  const n = 20_000;
  const started = performance.now();
  const s = servers[0]!.openStream<{ i: number }>("far", "count", { n }, { windowBytes: 64 * 1024 });
  let next = 0;
  for await (const item of s) {
    assert.equal(item.i, next);
    next++;
  }
  const ms = performance.now() - started;
  assert.equal(next, n);
  assert.deepEqual(s.result, { total: n });
  t.diagnostic(
    `${n} items across two servers over NATS in ${Math.round(ms)} ms (${Math.round((n / ms) * 1000)} items/s)`,
  );
});
