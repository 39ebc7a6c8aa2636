import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode } from "../errors/codes.js";
import { describeBusConformance, eventually, recorder, rejectsWith } from "./bus-conformance.js";
import { MemoryBackplane } from "./memory-bus.js";

const text = new TextEncoder();

describeBusConformance("memory", async () => {
  const hub = new MemoryBackplane();
  return { connect: async () => hub.connect(), cleanup: async () => {} };
});

it("memory: maxPayload is a constructor option", async () => {
  const hub = new MemoryBackplane({ maxPayload: 100 });
  const a = hub.connect();
  assert.equal(a.maxPayload, 100);
  await rejectsWith(ErrorCode.RESOURCE_EXHAUSTED, () => a.publish("s", new Uint8Array(101)));
  a.publish("s", new Uint8Array(100));
  await a.close();
});

it("memory: a node cut off is disconnected, fails fast, misses messages, and comes back", async () => {
  const hub = new MemoryBackplane();
  const [a, b] = [hub.connect({ name: "a" }), hub.connect({ name: "b" })];
  const statuses: string[] = [];
  a.onStatus((s) => statuses.push(s));
  const gotA: string[] = [];
  a.subscribe("news", (m) => gotA.push(new TextDecoder().decode(m.data)));
  b.subscribe("svc", (m) => m.respond(text.encode("ok")));
  const hung = b.subscribe("slow", () => {});
  const inFlight = a.request("slow", new Uint8Array(0), { timeoutMs: 10_000 });

  a.setDown(true);
  assert.equal(a.status, "disconnected");
  assert.deepEqual(statuses, ["disconnected"]);
  await rejectsWith(ErrorCode.UNAVAILABLE, () => inFlight, "a request in flight fails at once");
  await rejectsWith(ErrorCode.UNAVAILABLE, () => a.publish("news", text.encode("x")));
  await rejectsWith(ErrorCode.UNAVAILABLE, () => a.request("svc", new Uint8Array(0), { timeoutMs: 1000 }));
  await rejectsWith(ErrorCode.UNAVAILABLE, () => a.bucket("bk"));
  b.publish("news", text.encode("while down"));
  await rejectsWith(
    ErrorCode.UNAVAILABLE,
    () => b.request("news", new Uint8Array(0), { timeoutMs: 1000 }),
    "a node that is down does not answer",
  );
  await sleep(10);
  assert.deepEqual(gotA, [], "messages for a node that is down are dropped");

  a.setDown(false);
  assert.equal(a.status, "connected");
  assert.deepEqual(statuses, ["disconnected", "connected"]);
  b.publish("news", text.encode("after"));
  await eventually("the message after", () => gotA.length === 1);
  assert.deepEqual(gotA, ["after"], "subscriptions survive the cut");
  assert.equal(
    new TextDecoder().decode((await a.request("svc", new Uint8Array(0), { timeoutMs: 1000 })).data),
    "ok",
  );
  hung.unsubscribe();
  await a.close();
  await b.close();
});

it("memory: a watch of a node cut off delivers the changes it missed, in order, when restored", async () => {
  const hub = new MemoryBackplane();
  const [a, b] = [hub.connect(), hub.connect()];
  const [ba, bb] = [await a.bucket("kv"), await b.bucket("kv")];
  await bb.put("x", text.encode("1"));
  await bb.put("y", text.encode("1"));
  const r = recorder();
  let readies = 0;
  await ba.watch(r.onEntry, () => readies++);
  await eventually("initial values", () => r.lines.length === 2 && readies === 1);

  a.setDown(true);
  await bb.put("x", text.encode("2"));
  await bb.put("z", text.encode("1"));
  await bb.delete("y");
  await bb.put("x", text.encode("3"));
  await sleep(10);
  assert.equal(r.lines.length, 2, "nothing while down");

  a.setDown(false);
  await eventually("the missed changes", () => r.lines.length === 5);
  // History 1: x's intermediate value 2 is gone; what is left arrives in revision order.
  assert.deepEqual(r.lines.slice(2), ["PUT z=1", "DEL y", "PUT x=3"]);
  assert.equal(readies, 1, "onReady is called once");
  await bb.put("w", text.encode("live"));
  await eventually("live again", () => r.lines.length === 6);
  const revs = r.entries.map((e) => e.revision);
  assert.deepEqual(
    revs,
    [...revs].sort((p, q) => p - q),
  );
  await a.close();
  await b.close();
});

it("memory: bucket max age removes entries silently", async () => {
  let now = 1_000_000;
  const hub = new MemoryBackplane({ now: () => now });
  const a = hub.connect();
  const bucket = await a.bucket("ttl", { maxAgeMs: 1000 });
  const r = recorder();
  await bucket.watch(r.onEntry);
  await bucket.put("k", text.encode("v"));
  assert.equal((await bucket.get("k"))?.created, now);
  now += 1001;
  assert.equal(await bucket.get("k"), undefined);
  assert.deepEqual(await bucket.keys(), []);
  assert.notEqual(await bucket.create("k", text.encode("again")), undefined);
  await sleep(10);
  assert.deepEqual(r.lines, ["PUT k=v", "PUT k=again"], "no deletion is reported");
  await a.close();
});

it("memory: a handler that throws does not stop delivery to others", async () => {
  const hub = new MemoryBackplane();
  const a = hub.connect();
  const got: number[] = [];
  a.subscribe("s", () => {
    throw new Error("boom");
  });
  a.subscribe("s", () => got.push(1));
  a.publish("s", new Uint8Array(0));
  a.publish("s", new Uint8Array(0));
  await eventually("both messages", () => got.length === 2);
  await a.close();
});
