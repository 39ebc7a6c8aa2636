import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { eventId, LiveLog, parseEventId } from "./live-log.js";

describe("LiveLog", () => {
  it("gives consecutive ids and replays what came after an id", () => {
    const log = new LiveLog();
    assert.equal(log.lastId, 0);
    for (let i = 0; i < 5; i++) log.append("fleet", "agent", { i });
    assert.equal(log.lastId, 5);
    const since = log.since(2);
    assert.equal(since.kind, "events");
    assert.deepEqual(since.kind === "events" ? since.events.map((e) => e.id) : [], [3, 4, 5]);
    assert.deepEqual(log.since(5), { kind: "events", events: [] });
    assert.deepEqual(JSON.parse(log.recent(1)[0]!.json).data, { i: 4 });
  });

  it("keeps at most maxEvents: an id older than the oldest kept is a gap", () => {
    const log = new LiveLog({ maxEvents: 3 });
    for (let i = 0; i < 10; i++) log.append("calls", "call-start", { i });
    assert.equal(log.size.events, 3);
    assert.deepEqual(log.since(6), { kind: "gap" });
    const since = log.since(7);
    assert.deepEqual(since.kind === "events" ? since.events.map((e) => e.id) : [], [8, 9, 10]);
    assert.deepEqual(
      log.recent(100).map((e) => e.id),
      [8, 9, 10],
    );
  });

  it("keeps at most maxBytes of JSON (but always the last event)", () => {
    const log = new LiveLog({ maxBytes: 300 });
    for (let i = 0; i < 50; i++) log.append("server", "x", { pad: "y".repeat(40) });
    assert.ok(log.size.bytes <= 300, `${log.size.bytes} bytes kept`);
    assert.ok(log.size.events >= 1);
    log.append("server", "big", { pad: "z".repeat(1000) });
    assert.equal(log.size.events, 1);
    assert.equal(log.recent(5)[0]!.type, "big");
  });

  it("stays correct over many evictions (the array is compacted)", () => {
    const log = new LiveLog({ maxEvents: 100 });
    for (let i = 0; i < 10_000; i++) log.append("fleet", "agent", { i });
    const since = log.since(9_950);
    assert.deepEqual(
      since.kind === "events" ? since.events.map((e) => (e.data as { i: number }).i) : [],
      Array.from({ length: 50 }, (_, k) => 9_950 + k),
    );
    assert.deepEqual(log.since(9_899), { kind: "gap" });
  });

  it("an id from the future, negative or not whole is a gap", () => {
    const log = new LiveLog();
    log.append("fleet", "agent", {});
    for (const id of [2, -1, 0.5, Number.NaN]) assert.deepEqual(log.since(id), { kind: "gap" });
  });

  it("hands each event to every subscriber until it unsubscribes", () => {
    const log = new LiveLog();
    const seen: number[] = [];
    const off = log.subscribe((e) => seen.push(e.id));
    log.append("fleet", "agent", {});
    off();
    log.append("fleet", "agent", {});
    assert.deepEqual(seen, [1]);
  });

  it("event ids name the log's epoch: another log's ids and malformed ones are not taken", () => {
    const a = new LiveLog();
    const b = new LiveLog();
    assert.notEqual(a.epoch, b.epoch);
    assert.equal(parseEventId(eventId(a.epoch, 42), a.epoch), 42);
    assert.equal(parseEventId(eventId(b.epoch, 42), a.epoch), undefined);
    for (const bad of [undefined, "", "42", `${a.epoch}-`, `${a.epoch}-x`, `${a.epoch}-${"9".repeat(70)}`])
      assert.equal(parseEventId(bad, a.epoch), undefined, String(bad));
  });
});
