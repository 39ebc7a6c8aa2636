import assert from "node:assert/strict";
import { it } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { captureLogger, type LogLine } from "../../test/support/capture-logger.js";
import { ManualClock } from "../internal/clock.js";
import { encodeKey } from "./bus.js";
import { eventually } from "./bus-conformance.js";
import { MemoryBackplane, type MemoryClusterBus } from "./memory-bus.js";
import { parseServerRecord, type RegistryEvent, SERVERS_BUCKET, ServerRegistry } from "./registry.js";

const REFRESH = 1000;

/** A hub, a shared manual clock, and registries on it; `advance` lets writes and watches run. */
function cluster() {
  const hub = new MemoryBackplane();
  const clock = new ManualClock();
  let wall = 1_700_000_000_000;
  const made: Array<{ reg: ServerRegistry; bus: MemoryClusterBus; events: string[] }> = [];
  const server = (name: string, extra: { id?: string; logger?: ReturnType<typeof captureLogger> } = {}) => {
    const bus = hub.connect({ name });
    wall += 10; // a later start has a later startedAt
    const reg = new ServerRegistry({
      bus,
      name,
      urls: [`ws://${name}:1`],
      version: "1.0.0",
      capabilities: ["relay"],
      load: () => ({ agents: 3, lagMs: 1 }),
      refreshMs: REFRESH,
      clock,
      wallClock: () => wall,
      ...(extra.id && { id: extra.id }),
      ...(extra.logger && { logger: extra.logger }),
    });
    const events: string[] = [];
    reg.on((e: RegistryEvent) => {
      if (e.type === "conflict") events.push(`conflict ${e.other.name} kept=${e.kept}`);
      else
        events.push(`${e.type} ${e.server.name}${e.type === "down" ? ` ${e.reason}` : ""} ${e.server.state}`);
    });
    made.push({ reg, bus, events });
    return { reg, bus, events };
  };
  /** Moves the clock in half-intervals, letting the bus deliver between steps. */
  const advance = async (ms: number) => {
    for (let t = 0; t < ms; t += REFRESH / 2) {
      clock.advance(Math.min(REFRESH / 2, ms - t));
      for (let i = 0; i < 20; i++) await tick();
    }
  };
  const cleanup = async () => {
    for (const m of made) {
      await m.reg.stop();
      await m.bus.close();
    }
  };
  return { hub, clock, server, advance, cleanup };
}

it("registry: servers see each other, with load, and list themselves first as self", async () => {
  const c = cluster();
  const a = c.server("a");
  const b = c.server("b");
  await a.reg.start();
  await b.reg.start();
  assert.deepEqual(b.events, ["up a ready"], "a record found at start is up");
  await eventually("a sees b", () => a.events.includes("up b ready"));
  const rows = a.reg.list();
  assert.deepEqual(
    rows.map((r) => [r.name, r.state]),
    [
      ["a", "self"],
      ["b", "ready"],
    ],
  );
  const rb = a.reg.get("b")!;
  assert.equal(rb.id, b.reg.id);
  assert.deepEqual(rb.urls, ["ws://b:1"]);
  assert.equal(rb.agents, 3);
  assert.equal(rb.protocol, 1);
  assert.deepEqual(rb.capabilities, ["relay"]);
  await c.advance(REFRESH * 10);
  assert.equal(a.reg.get("b")!.state, "ready", "refreshed records stay ready");
  assert.ok(a.reg.get("b")!.lastHeartbeatMs <= REFRESH);
  assert.deepEqual(a.events, ["up b ready"], "refreshes are no events");
  await c.cleanup();
});

it("registry: a silent server is suspect after 3 intervals, dead after 5 (down once), up when it speaks again", async () => {
  const c = cluster();
  const a = c.server("a");
  const b = c.server("b");
  await a.reg.start();
  await b.reg.start();
  await eventually("a sees b", () => a.events.length === 1);
  b.bus.setDown(true); // b's refreshes no longer reach the backplane
  await c.advance(REFRESH * 3);
  assert.equal(a.reg.get("b")!.state, "suspect");
  assert.deepEqual(a.events.slice(1), ["change b suspect"]);
  await c.advance(REFRESH * 2);
  assert.equal(a.reg.get("b")!.state, "dead");
  await c.advance(REFRESH * 10);
  assert.deepEqual(a.events.slice(1), ["change b suspect", "down b dead dead"], "down once");
  b.bus.setDown(false); // b refreshes at once when its link is back
  await eventually("b is up again", () => a.events.length === 4);
  assert.deepEqual(a.events.slice(3), ["up b ready"]);
  assert.equal(a.reg.get("b")!.state, "ready");
  await c.cleanup();
});

it("registry: a server that cannot see the backplane ages nobody, and counts everyone fresh when back", async () => {
  const c = cluster();
  const a = c.server("a");
  const b = c.server("b");
  await a.reg.start();
  await b.reg.start();
  await eventually("a sees b", () => a.events.length === 1);
  a.bus.setDown(true);
  await c.advance(REFRESH * 10);
  a.bus.setDown(false);
  await c.advance(REFRESH * 2);
  assert.deepEqual(a.events, ["up b ready"], "no suspicion from a's own outage");
  assert.equal(a.reg.get("b")!.state, "ready");
  await c.cleanup();
});

it("registry: a restart (new id under a known name) is down for the old id and up for the new", async () => {
  const c = cluster();
  const a = c.server("a");
  const b1 = c.server("b");
  await a.reg.start();
  await b1.reg.start();
  await eventually("a sees b", () => a.events.length === 1);
  b1.bus.setDown(true); // b crashes without deregistering...
  const b2 = c.server("b"); // ...and starts again under the same name
  await b2.reg.start();
  await eventually("the restart", () => a.events.length === 3);
  assert.deepEqual(a.events.slice(1), ["down b restarted ready", "up b ready"]);
  assert.equal(a.reg.get("b")!.id, b2.reg.id);
  await c.cleanup();
});

it("registry: stop deletes the record (deregistered); draining is a change", async () => {
  const c = cluster();
  const a = c.server("a");
  const b = c.server("b");
  await a.reg.start();
  await b.reg.start();
  await eventually("a sees b", () => a.events.length === 1);
  await b.reg.markDraining();
  await eventually("draining", () => a.events.length === 2);
  assert.deepEqual(a.events[1], "change b draining");
  assert.equal(a.reg.get("b")!.announced, "draining");
  assert.equal(b.reg.list()[0]!.announced, "draining");
  await b.reg.stop();
  await eventually("deregistered", () => a.events.length === 3);
  assert.equal(a.events[2], "down b deregistered draining");
  assert.equal(a.reg.get("b"), undefined);
  assert.deepEqual(
    a.reg.list().map((r) => r.name),
    ["a"],
  );
  await c.cleanup();
});

it("registry: records found at start count as fresh then, and die if nobody refreshes them", async () => {
  const c = cluster();
  const raw = c.hub.connect();
  const bucket = await raw.bucket(SERVERS_BUCKET);
  const stale = {
    v: 1,
    name: "ghost",
    id: "old",
    urls: [],
    version: "0.9.0",
    protocol: 1,
    capabilities: [],
    state: "ready",
    agents: 0,
    lagMs: 0,
    startedAt: 1,
    heartbeatAt: 1, // long ago by its own clock: ignored, ages count from what a sees
  };
  await bucket.put(encodeKey("ghost"), new TextEncoder().encode(JSON.stringify(stale)));
  await bucket.put(encodeKey("junk"), new TextEncoder().encode("{not json"));
  const a = c.server("a");
  await a.reg.start();
  assert.deepEqual(a.events, ["up ghost ready"], "a malformed record is ignored");
  await c.advance(REFRESH * 5);
  assert.deepEqual(a.events, ["up ghost ready", "change ghost suspect", "down ghost dead dead"]);
  await raw.close();
  await c.cleanup();
});

it("registry: two live servers with one name: the later start keeps it, the other logs an error and yields", async () => {
  const c = cluster();
  const a = c.server("a");
  const lines1: LogLine[] = [];
  const lines2: LogLine[] = [];
  await a.reg.start();
  const x1 = c.server("x", { logger: captureLogger(lines1) });
  await x1.reg.start();
  await eventually("a sees x1", () => a.events.length === 1);
  const x2 = c.server("x", { logger: captureLogger(lines2) });
  await x2.reg.start(); // replaces x1's record as a restart would
  await c.advance(REFRESH * 3); // x1 tries to refresh, finds x2's record
  assert.deepEqual(
    x1.events.filter((e) => e.startsWith("conflict")),
    ["conflict x kept=theirs"],
  );
  assert.ok(lines1.some((l) => l.level === "error" && /two servers are named x/.test(l.msg)));
  await c.advance(REFRESH * 10);
  assert.equal(a.reg.get("x")!.id, x2.reg.id, "the record stays x2's: no flapping");
  assert.equal(a.reg.get("x")!.state, "ready");
  assert.deepEqual(a.events, ["up x ready", "down x restarted ready", "up x ready"]);
  const bucket = await c.hub.connect().bucket(SERVERS_BUCKET);
  assert.equal(parseServerRecord((await bucket.get("x"))!.value)?.id, x2.reg.id);
  // x2 saw x1's record only if x1 wrote after x2's start; either way it never yields.
  assert.ok(!x2.events.includes("conflict x kept=theirs"));
  await c.cleanup();
});

it("registry: a duplicate that started earlier but registers later yields at once", async () => {
  const c = cluster();
  const lines1: LogLine[] = [];
  const lines2: LogLine[] = [];
  const a = c.server("a");
  await a.reg.start();
  const x1 = c.server("x", { logger: captureLogger(lines1) }); // the earlier start...
  const x2 = c.server("x", { logger: captureLogger(lines2) });
  await x2.reg.start();
  await x1.reg.start(); // ...registers second: x2's record is no previous run of x1
  assert.deepEqual(x1.events, ["up a ready", "conflict x kept=theirs"]);
  assert.ok(lines1.some((l) => l.level === "error" && /two servers are named x/.test(l.msg)));
  assert.ok(!lines1.some((l) => /previous run/.test(l.msg)));
  await c.advance(REFRESH * 10);
  assert.equal(a.reg.get("x")!.id, x2.reg.id);
  assert.deepEqual(a.events, ["up x ready"], "x1 never wrote: no flapping");
  await x1.reg.stop();
  await c.advance(REFRESH);
  assert.equal(a.reg.get("x")!.id, x2.reg.id, "stopping the one that yielded deletes nothing");
  await c.cleanup();
});

it("registry: a restart replaces the previous run's record without an error", async () => {
  const c = cluster();
  const lines: LogLine[] = [];
  const old = c.server("b");
  await old.reg.start();
  old.bus.setDown(true);
  const b = c.server("b", { logger: captureLogger(lines) });
  await b.reg.start();
  assert.ok(lines.some((l) => l.level === "info" && /previous run/.test(l.msg)));
  assert.ok(!lines.some((l) => l.level === "error"));
  await c.cleanup();
});
