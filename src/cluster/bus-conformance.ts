/**
 * The conformance suite of `ClusterBus`: one set of tests every backend must pass (the
 * in-memory bus in `memory-bus.test.ts`, the NATS bus in `test/nats-bus.test.ts`), so that
 * cluster logic tested on one behaves the same on the other. Subjects and bucket names are
 * made unique per test, so a suite may share one backplane (one nats-server) between tests.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { BusMessage, ClusterBus, KvEntry } from "./bus.js";

/** A backplane under test: every `connect()` is another node (another connection). */
export interface BusBackplane {
  connect(): Promise<ClusterBus>;
  /** Stops the backplane; the suite has closed every bus it connected. */
  cleanup(): Promise<void>;
}

const text = new TextEncoder();
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Waits (polling every 5 ms) until `pred` holds; fails after `timeoutMs`. */
export async function eventually(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Rejects (or throws) with a MusterError of `code`; returns it. */
export async function rejectsWith(
  code: ErrorCode,
  run: () => Promise<unknown> | unknown,
  what = String(code),
): Promise<MusterError> {
  try {
    await run();
  } catch (err) {
    assert.ok(err instanceof MusterError, `${what}: expected a MusterError, got ${String(err)}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return err;
  }
  return assert.fail(`${what}: expected ${code}, nothing was thrown`);
}

/** A watch recorder: entries as `op key=value@rev` lines, and whether onReady came. */
export function recorder(): {
  lines: string[];
  entries: KvEntry[];
  ready: boolean;
  onEntry(e: KvEntry): void;
} {
  const r = {
    lines: [] as string[],
    entries: [] as KvEntry[],
    ready: false,
    onEntry: (e: KvEntry) => {
      r.entries.push(e);
      r.lines.push(e.operation === "PUT" ? `PUT ${e.key}=${str(e.value)}` : `${e.operation} ${e.key}`);
    },
  };
  return r;
}

export function describeBusConformance(
  name: string,
  makeBackplane: () => Promise<BusBackplane>,
  options: { skip?: string | false } = {},
): void {
  describe(`ClusterBus conformance: ${name}`, { skip: options.skip ?? false }, () => {
    let backplane: BusBackplane;
    const opened: ClusterBus[] = [];
    const node = async (): Promise<ClusterBus> => {
      const bus = await backplane.connect();
      opened.push(bus);
      return bus;
    };
    const unique = (prefix: string): string => `${prefix}${randomBytes(4).toString("hex")}`;
    before(async () => {
      backplane = await makeBackplane();
    });
    after(async () => {
      for (const b of opened) await b.close();
      await backplane?.cleanup();
    });

    it("delivers to exact, * and > subscriptions, asynchronously and in order", async () => {
      const [a, b] = [await node(), await node()];
      const p = unique("t");
      const got: Record<string, string[]> = { exact: [], star: [], tail: [], other: [] };
      const rec = (k: string) => (m: BusMessage) => got[k]!.push(`${m.subject}:${str(m.data)}`);
      const subs = [
        b.subscribe(`${p}.x.y`, rec("exact")),
        b.subscribe(`${p}.*.y`, rec("star")),
        b.subscribe(`${p}.>`, rec("tail")),
        b.subscribe(`${p}other.>`, rec("other")),
      ];
      await settle(a, b);
      a.publish(`${p}.x.y`, text.encode("1"));
      a.publish(`${p}.x.z`, text.encode("2"));
      a.publish(`${p}.x.y.z`, text.encode("3"));
      a.publish(p, text.encode("4"));
      assert.deepEqual(got.tail, [], "nothing is delivered inside publish");
      await eventually(
        "every subscription",
        () => got.tail!.length === 3 && got.exact!.length === 1 && got.star!.length === 1,
      );
      await sleep(50); // time for a wrong delivery to show
      assert.deepEqual(got.exact, [`${p}.x.y:1`]);
      assert.deepEqual(got.star, [`${p}.x.y:1`]);
      assert.deepEqual(got.tail, [`${p}.x.y:1`, `${p}.x.z:2`, `${p}.x.y.z:3`]);
      assert.deepEqual(got.other, []);
      for (const s of subs) s.unsubscribe();
      for (const s of subs) s.unsubscribe(); // idempotent
    });

    it("keeps the order of many messages and stops delivering after unsubscribe", async () => {
      const [a, b] = [await node(), await node()];
      const s = unique("t");
      const seen: number[] = [];
      const sub = b.subscribe(s, (m) => seen.push(Number(str(m.data))));
      await settle(a, b);
      for (let i = 0; i < 200; i++) a.publish(s, text.encode(String(i)));
      await eventually("200 messages", () => seen.length === 200);
      assert.deepEqual(
        seen,
        Array.from({ length: 200 }, (_, i) => i),
      );
      sub.unsubscribe();
      await settle(a, b);
      a.publish(s, text.encode("late"));
      await sleep(50);
      assert.equal(seen.length, 200);
    });

    it("carries headers, names as sent, both ways of a request", async () => {
      const [a, b] = [await node(), await node()];
      const s = unique("t");
      const seen: Array<[string, string][]> = [];
      b.subscribe(s, (m) => {
        seen.push([...m.headers]);
        m.respond(text.encode(`re:${str(m.data)}`), { "Muster-Answer": "yes", "x-lower": "v" });
      });
      await settle(a, b);
      const answer = await a.request(s, text.encode("q"), {
        timeoutMs: 2000,
        headers: { "Muster-Trace": "abc", "x-id": "42" },
      });
      assert.equal(str(answer.data), "re:q");
      assert.equal(answer.headers.get("Muster-Answer"), "yes");
      assert.equal(answer.headers.get("x-lower"), "v");
      assert.deepEqual(
        new Map(seen[0]),
        new Map([
          ["Muster-Trace", "abc"],
          ["x-id", "42"],
        ]),
      );
      assert.equal(answer.respond(text.encode("x")), false, "an answer is not a request");
      a.publish(s, text.encode("plain"));
      await eventually("the plain message", () => seen.length === 2);
      assert.deepEqual(seen[1], [], "no headers: an empty map");
    });

    it("answers with the first reply only", async () => {
      const [a, b, c] = [await node(), await node(), await node()];
      const s = unique("t");
      b.subscribe(s, (m) => m.respond(text.encode("b")));
      c.subscribe(s, (m) => m.respond(text.encode("c")));
      await settle(a, b);
      await settle(a, c);
      const answer = await a.request(s, new Uint8Array(0), { timeoutMs: 2000 });
      assert.ok(["b", "c"].includes(str(answer.data)));
    });

    it("refuses a request nobody listens to with UNAVAILABLE", async () => {
      const a = await node();
      const s = unique("t");
      const err = await rejectsWith(ErrorCode.UNAVAILABLE, () =>
        a.request(s, new Uint8Array(0), { timeoutMs: 5000 }),
      );
      assert.match(err.message, new RegExp(s));
    });

    it("fails a request nobody answers with DEADLINE_EXCEEDED", async () => {
      const [a, b] = [await node(), await node()];
      const s = unique("t");
      b.subscribe(s, () => {});
      await settle(a, b);
      const err = await rejectsWith(ErrorCode.DEADLINE_EXCEEDED, () =>
        a.request(s, new Uint8Array(0), { timeoutMs: 100 }),
      );
      assert.match(err.message, new RegExp(s));
    });

    it("refuses messages above maxPayload with RESOURCE_EXHAUSTED, headers counted", async () => {
      const [a, b] = [await node(), await node()];
      const s = unique("t");
      assert.ok(a.maxPayload > 1024, `maxPayload ${a.maxPayload}`);
      const sizes: number[] = [];
      b.subscribe(s, (m) => {
        sizes.push(m.data.length);
        m.respond(new Uint8Array(a.maxPayload + 1));
      });
      await settle(a, b);
      const big = new Uint8Array(a.maxPayload + 1);
      await rejectsWith(ErrorCode.RESOURCE_EXHAUSTED, () => a.publish(s, big), "publish");
      await rejectsWith(
        ErrorCode.RESOURCE_EXHAUSTED,
        () => a.publish(s, new Uint8Array(a.maxPayload), { h: "v" }),
        "publish with headers",
      );
      await rejectsWith(ErrorCode.RESOURCE_EXHAUSTED, () => a.request(s, big, { timeoutMs: 500 }), "request");
      a.publish(s, new Uint8Array(a.maxPayload));
      await eventually("the largest message", () => sizes.length === 1);
      assert.equal(sizes[0], a.maxPayload);
      const bucket = await a.bucket(unique("b"));
      await rejectsWith(ErrorCode.RESOURCE_EXHAUSTED, () => bucket.put("k", big), "put");
    });

    it("refuses malformed subjects, headers, keys and bucket names with INVALID_ARGUMENT", async () => {
      const a = await node();
      for (const bad of ["", "a..b", "a.", "a b", "a.*", "a.>", "a*"]) {
        await rejectsWith(
          ErrorCode.INVALID_ARGUMENT,
          () => a.publish(bad, new Uint8Array(0)),
          `publish ${bad}`,
        );
      }
      for (const bad of ["a.>.b", "a.b*", ""]) {
        await rejectsWith(ErrorCode.INVALID_ARGUMENT, () => a.subscribe(bad, () => {}), `subscribe ${bad}`);
      }
      await rejectsWith(ErrorCode.INVALID_ARGUMENT, () =>
        a.publish("ok", new Uint8Array(0), { "bad name": "v" }),
      );
      await rejectsWith(ErrorCode.INVALID_ARGUMENT, () =>
        a.publish("ok", new Uint8Array(0), { n: "a\r\nb" }),
      );
      await rejectsWith(ErrorCode.INVALID_ARGUMENT, () => a.bucket("bad.name"));
      const bucket = await a.bucket(unique("b"));
      for (const bad of ["", ".k", "k.", "a b", "a*", "k..k"]) {
        await rejectsWith(ErrorCode.INVALID_ARGUMENT, () => bucket.put(bad, new Uint8Array(0)), `key ${bad}`);
      }
      await rejectsWith(ErrorCode.INVALID_ARGUMENT, () => bucket.update("k", new Uint8Array(0), 0));
    });

    it("creates, updates by revision and refuses conflicting writes", async () => {
      const a = await node();
      const bucket = await a.bucket(unique("b"));
      assert.equal(await bucket.get("k"), undefined);
      const r1 = await bucket.create("k", text.encode("v1"));
      assert.ok(r1 !== undefined && r1 > 0);
      assert.equal(await bucket.create("k", text.encode("again")), undefined, "create of a present key");
      const r2 = await bucket.update("k", text.encode("v2"), r1);
      assert.ok(r2 !== undefined && r2 > r1);
      assert.equal(
        await bucket.update("k", text.encode("stale"), r1),
        undefined,
        "update with a stale revision",
      );
      assert.equal(await bucket.update("absent", text.encode("x"), r2), undefined, "update of an absent key");
      const e = await bucket.get("k");
      assert.equal(str(e!.value), "v2");
      assert.equal(e!.revision, r2);
      assert.equal(e!.operation, "PUT");
      assert.ok(Math.abs(e!.created - Date.now()) < 60_000, "created is wall-clock time");
      const r3 = await bucket.put("other", text.encode("o"));
      assert.ok(r3 > r2, "revisions count every change of the bucket");
      assert.deepEqual((await bucket.keys()).sort(), ["k", "other"]);
    });

    it("deletes, with a revision only if it is still the latest", async () => {
      const a = await node();
      const bucket = await a.bucket(unique("b"));
      const r1 = (await bucket.create("k", text.encode("v1")))!;
      const r2 = (await bucket.update("k", text.encode("v2"), r1))!;
      assert.equal(await bucket.delete("k", r1), false, "stale revision");
      assert.equal(str((await bucket.get("k"))!.value), "v2");
      assert.equal(await bucket.delete("k", r2), true);
      assert.equal(await bucket.get("k"), undefined);
      assert.deepEqual(await bucket.keys(), []);
      assert.equal(await bucket.delete("never-there"), true, "deleting an absent key is no error");
      const r4 = await bucket.create("k", text.encode("v3"));
      assert.ok(r4 !== undefined && r4 > r2, "create after a delete");
      assert.equal(await bucket.delete("k"), true, "unconditional delete");
      const after = await bucket.create("k", text.encode("v4"));
      assert.ok(after !== undefined);
      const u = await bucket.update("k", text.encode("v5"), after);
      assert.ok(u !== undefined);
    });

    it("watches: initial values, then onReady once, then changes and deletions in order", async () => {
      const [a, b] = [await node(), await node()];
      const name = unique("b");
      const bucket = await a.bucket(name);
      await bucket.put("a", text.encode("1"));
      await bucket.put("b", text.encode("2"));
      await bucket.put("gone", text.encode("x"));
      await bucket.delete("gone");
      await bucket.put("a", text.encode("1b"));
      const r = recorder();
      let readyAfter = -1;
      const watch = await (await b.bucket(name)).watch(r.onEntry, () => {
        readyAfter = r.lines.length;
        r.ready = true;
      });
      await eventually("onReady", () => r.ready);
      assert.deepEqual(
        r.lines,
        ["PUT b=2", "PUT a=1b"],
        "latest values in revision order, deletions skipped",
      );
      assert.equal(readyAfter, 2, "onReady after the initial values");
      await bucket.put("c", text.encode("3"));
      await bucket.delete("b");
      await bucket.put("a", text.encode("1c"));
      await eventually("three changes", () => r.lines.length === 5);
      assert.deepEqual(r.lines.slice(2), ["PUT c=3", "DEL b", "PUT a=1c"]);
      const revs = r.entries.map((e) => e.revision);
      assert.deepEqual(
        revs,
        [...revs].sort((x, y) => x - y),
        "increasing revisions",
      );
      watch.stop();
      await bucket.put("after", text.encode("stop"));
      await sleep(100);
      assert.equal(r.lines.length, 5, "nothing after stop");
    });

    it("calls onReady on an empty bucket, then delivers its first entries", async () => {
      const a = await node();
      const bucket = await a.bucket(unique("b"));
      const r = recorder();
      const w = await bucket.watch(r.onEntry, () => {
        r.ready = true;
      });
      await eventually("onReady", () => r.ready);
      assert.deepEqual(r.lines, []);
      await bucket.put("k", text.encode("v"));
      await eventually("the first entry", () => r.lines.length === 1);
      w.stop();
    });

    it("shares a bucket between two clients: each sees the other's writes and conflicts", async () => {
      const [a, b] = [await node(), await node()];
      const name = unique("b");
      const [ba, bb] = [await a.bucket(name, { maxAgeMs: 3_600_000 }), await b.bucket(name)];
      const [ra, rb] = [recorder(), recorder()];
      const wa = await ba.watch(ra.onEntry);
      const wb = await bb.watch(rb.onEntry);
      const r1 = (await ba.create("owner", text.encode("a")))!;
      await eventually("b sees a's write", () => rb.lines.includes("PUT owner=a"));
      assert.equal((await bb.get("owner"))?.revision, r1);
      assert.equal(await bb.create("owner", text.encode("b")), undefined, "b cannot create it again");
      const r2 = (await bb.update("owner", text.encode("b"), r1))!;
      assert.ok(r2 > r1);
      assert.equal(await ba.update("owner", text.encode("a2"), r1), undefined, "a lost the race");
      await eventually("both see b's write", () => ra.lines.length === 2 && rb.lines.length === 2);
      assert.deepEqual(ra.lines, ["PUT owner=a", "PUT owner=b"]);
      assert.deepEqual(rb.lines, ["PUT owner=a", "PUT owner=b"]);
      wa.stop();
      wb.stop();
    });

    it("reports its status and refuses everything once closed", async () => {
      const a = await backplane.connect();
      assert.equal(a.status, "connected");
      const seen: string[] = [];
      a.onStatus((s) => seen.push(s));
      const bucket = await a.bucket(unique("b"));
      await a.close();
      await eventually("closed", () => seen.includes("closed"));
      assert.equal(a.status, "closed");
      await rejectsWith(ErrorCode.CLOSED, () => a.publish("x", new Uint8Array(0)));
      await rejectsWith(ErrorCode.CLOSED, () => a.request("x", new Uint8Array(0), { timeoutMs: 100 }));
      await rejectsWith(ErrorCode.CLOSED, () => bucket.get("k"));
      await a.close(); // idempotent
    });
  });
}

/**
 * Makes sure the subscriptions `b` made have reached the backplane before `a` publishes (NATS
 * propagates interest asynchronously): a request on an unused subject round-trips both links.
 */
async function settle(a: ClusterBus, b: ClusterBus): Promise<void> {
  const s = `_settle.${randomBytes(4).toString("hex")}`;
  const sub = b.subscribe(s, (m) => m.respond(new Uint8Array(0)));
  for (let i = 0; ; i++) {
    try {
      await a.request(s, new Uint8Array(0), { timeoutMs: 1000 });
      break;
    } catch (err) {
      if (i > 50) throw err;
      await sleep(10);
    }
  }
  sub.unsubscribe();
}
