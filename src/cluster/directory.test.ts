import assert from "node:assert/strict";
import { it } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { ErrorCode } from "../errors/codes.js";
import { ManualClock } from "../internal/clock.js";
import { encodeKey } from "./bus.js";
import { eventually, rejectsWith } from "./bus-conformance.js";
import { AGENTS_BUCKET, AgentDirectory, type DirectoryEvent } from "./directory.js";
import { MemoryBackplane, type MemoryClusterBus } from "./memory-bus.js";

const RETENTION = 10_000;

function cluster() {
  const hub = new MemoryBackplane();
  const clock = new ManualClock();
  const made: Array<{ dir: AgentDirectory; bus: MemoryClusterBus }> = [];
  const server = async (name: string) => {
    const bus = hub.connect({ name });
    const dir = new AgentDirectory({
      bus,
      serverName: name,
      serverId: `${name}-id`,
      clock,
      wallClock: () => 1_700_000_000_000,
      offlineRetentionMs: RETENTION,
    });
    const events: string[] = [];
    const raw: DirectoryEvent[] = [];
    dir.on((e) => {
      raw.push(e);
      const by = "record" in e ? ` ${e.record.server}/${e.record.session}` : "";
      events.push(`${e.type} ${e.name}${by}${e.type === "claimed" && e.takenFromUs ? " takenFromUs" : ""}`);
    });
    await dir.start();
    made.push({ dir, bus });
    return { dir, bus, events, raw };
  };
  const advance = async (ms: number) => {
    for (let t = 0; t < ms; t += 1000) {
      clock.advance(Math.min(1000, ms - t));
      for (let i = 0; i < 20; i++) await tick();
    }
  };
  const cleanup = async () => {
    for (const m of made) {
      m.dir.stop();
      await m.bus.close();
    }
  };
  return { hub, clock, server, advance, cleanup };
}

const claim = (session: string, epoch: number, labels: Record<string, string> = {}) => ({
  session,
  epoch,
  labels,
  version: "1.0.0",
});

it("directory: the newer session wins, and the server it was taken from is told", async () => {
  const c = cluster();
  const a = await c.server("a");
  const b = await c.server("b");
  const first = await a.dir.claim("web-1", claim("s1", 100, { role: "web" }));
  assert.equal(first.won, true);
  await eventually("b sees the claim", () => b.events.length === 1);
  assert.deepEqual(b.events, ["claimed web-1 a/s1"]);
  assert.equal(b.dir.ownerOf("web-1")?.record.server, "a");

  const second = await b.dir.claim("web-1", claim("s2", 200));
  assert.equal(second.won, true);
  await eventually("a sees it was taken", () => a.events.length === 2);
  assert.deepEqual(a.events, ["claimed web-1 a/s1", "claimed web-1 b/s2 takenFromUs"]);
  const taken = a.raw[1] as Extract<DirectoryEvent, { type: "claimed" }>;
  assert.equal(taken.previous?.session, "s1", "the session a must end as REPLACED");
  assert.equal(a.dir.ownerOf("web-1")?.record.session, "s2");

  // a's late session (older epoch) loses, and may not touch b's record.
  const late = await a.dir.claim("web-1", claim("s1", 100));
  assert.equal(late.won, false);
  assert.equal(!late.won && late.by.session, "s2");
  assert.equal(await a.dir.setState("web-1", "s1", "suspect"), false);
  assert.equal(await a.dir.release("web-1", "s1", "closed"), false);
  assert.equal(b.dir.ownerOf("web-1")?.record.state, "connected");
  await c.cleanup();
});

it("directory: equal epochs are decided by session id; a session may claim again", async () => {
  const c = cluster();
  const a = await c.server("a");
  const b = await c.server("b");
  assert.equal((await a.dir.claim("n", claim("s-b", 5))).won, true);
  assert.equal((await b.dir.claim("n", claim("s-a", 5))).won, false, "s-a < s-b");
  assert.equal((await b.dir.claim("n", claim("s-c", 5))).won, true, "s-c > s-b");
  const again = await b.dir.claim("n", claim("s-c", 5, { new: "labels" }));
  assert.equal(again.won, true, "the holder claims again (labels changed)");
  await eventually("changed", () => a.events.at(-1)?.startsWith("changed n") ?? false);
  await c.cleanup();
});

it("directory: concurrent claims settle on the newest session", async () => {
  const c = cluster();
  const servers = [await c.server("a"), await c.server("b"), await c.server("c")];
  const results = await Promise.all(
    servers.flatMap((s, i) => [1, 2, 3].map((k) => s.dir.claim("hot", claim(`${i}-${k}`, 10 * k + i)))),
  );
  assert.ok(results.some((r) => r.won));
  const newest = "2-3"; // epoch 32
  await eventually("every view agrees", () =>
    servers.every((s) => s.dir.ownerOf("hot")?.record.session === newest),
  );
  await c.cleanup();
});

it("directory: state changes and release by the holder; released records are deleted after retention", async () => {
  const c = cluster();
  const a = await c.server("a");
  const b = await c.server("b");
  await a.dir.claim("x", claim("s1", 1));
  assert.equal(await a.dir.setState("x", "s1", "resuming"), true);
  assert.equal(await a.dir.setState("x", "s1", "resuming"), true, "no change: no write");
  assert.equal(await a.dir.release("x", "s1", "closed by peer"), true);
  await eventually("b sees the release", () => b.events.length === 3);
  assert.deepEqual(b.events, ["claimed x a/s1", "changed x a/s1", "released x a/s1"]);
  assert.equal(b.dir.ownerOf("x"), undefined, "offline: no owner");
  const row = b.dir.list().find((r) => r.name === "x")!;
  assert.equal(row.state, "offline");
  assert.equal(row.record.reason, "closed by peer");
  assert.deepEqual(
    a.dir.forServer("a").map((r) => r.name),
    ["x"],
  );
  await c.advance(RETENTION + 2000);
  await eventually("deleted", () => b.events.length === 4);
  assert.equal(b.events[3], "removed x");
  assert.deepEqual(b.dir.list(), []);
  await c.cleanup();
});

it("directory: a dropped server's agents count offline at once and are cleaned after retention unless reclaimed", async () => {
  const c = cluster();
  const a = await c.server("a");
  const b = await c.server("b");
  const dead = await c.server("dead");
  await dead.dir.claim("p", claim("s1", 1));
  await dead.dir.claim("q", claim("s2", 1));
  await eventually("a sees both", () => a.dir.list().length === 2 && b.dir.list().length === 2);
  dead.bus.setDown(true);
  assert.deepEqual(a.dir.dropServer("dead-id").sort(), ["p", "q"]);
  b.dir.dropServer("dead-id");
  assert.equal(a.dir.ownerOf("p"), undefined);
  assert.deepEqual(
    a.events.filter((e) => e.startsWith("orphaned")),
    ["orphaned p dead/s1", "orphaned q dead/s2"],
  );
  assert.equal((await b.dir.claim("q", claim("s3", 2))).won, true, "the agent came back through b");
  await c.advance(RETENTION + 2000);
  await eventually("p deleted", () => a.dir.list().length === 1);
  assert.equal(a.dir.ownerOf("q")?.record.server, "b", "q was reclaimed: not deleted");
  await c.cleanup();
});

it("directory: records are bounded; names of any characters work", async () => {
  const c = cluster();
  const a = await c.server("a");
  const b = await c.server("b");
  const err = await rejectsWith(ErrorCode.RESOURCE_EXHAUSTED, () =>
    a.dir.claim("big", claim("s", 1, { blob: "x".repeat(20_000) })),
  );
  assert.match(err.message, /big/);
  const odd = "agent with spaces/ü.é";
  assert.equal((await a.dir.claim(odd, claim("s", 1))).won, true);
  await eventually("b sees it", () => b.dir.ownerOf(odd) !== undefined);
  assert.equal(b.dir.list()[0]!.name, odd);
  const raw = c.hub.connect();
  const bucket = await raw.bucket(AGENTS_BUCKET);
  assert.ok((await bucket.get(encodeKey(odd))) !== undefined);
  await bucket.put(encodeKey("junk"), new TextEncoder().encode("[1]"));
  await bucket.put(encodeKey("marker"), new TextEncoder().encode("{}"));
  for (let i = 0; i < 20; i++) await tick();
  assert.deepEqual(
    b.dir.list().map((r) => r.name),
    [odd],
    "malformed records are ignored",
  );
  await raw.close();
  await c.cleanup();
});
