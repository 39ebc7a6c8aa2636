// Streams between a server and its agents: opened from either side, read as async iterators,
// under credit-based flow control, across dropped links, and past an expired session.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import type { StreamContext } from "../src/rpc/stream.js";
import { freePort, runCli, startCli } from "./support/cli.js";
import { fleet, until } from "./support/fleet.js";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe("streams", () => {
  it("agent → server: items in order, then the generator's return value as the result", async () => {
    const f = await fleet();
    try {
      f.server.handleStream("count", async function* (req: { n: number }, ctx: StreamContext) {
        assert.equal(ctx.peer.name, "a1");
        for (let i = 0; i < req.n; i++) yield i;
        return { total: req.n };
      });
      const a = await f.addAgent("a1");
      const s = a.stream<number>("count", { n: 2000 });
      assert.deepEqual(await collect(s), range(2000));
      assert.deepEqual(s.result, { total: 2000 });
      assert.equal(s.received, 2000);
    } finally {
      await f.close();
    }
  });

  it("server → agent, and a handler that writes with ctx.write and returns a result", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("a1");
      a.handleStream("letters", async (req: string, ctx: StreamContext) => {
        for (const c of req) await ctx.write(c);
        return ctx.position;
      });
      const s = f.server.openStream<string>("a1", "letters", "muster");
      assert.equal((await collect(s)).join(""), "muster");
      assert.equal(s.result, 6);
    } finally {
      await f.close();
    }
  });

  it("a slow reader slows the writer: what is produced and unread stays within the window", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("a1");
      let produced = 0;
      const item = "x".repeat(1000); // JSON: 1002 bytes + 16 of overhead
      a.handleStream("flood", async function* () {
        for (;;) {
          produced++;
          yield item;
        }
      });
      const windowBytes = 16 * 1024;
      const perWindow = Math.ceil(windowBytes / 1018);
      const s = f.server.openStream<string>("a1", "flood", undefined, { windowBytes });
      let read = 0;
      let worst = 0;
      for await (const x of s) {
        assert.equal(x, item);
        read++;
        // Let the writer run as far ahead as it is allowed to.
        await new Promise((r) => setTimeout(r, 1));
        worst = Math.max(worst, produced - read);
        if (read === 300) break;
      }
      // One window in flight, plus the item the generator holds while it waits for credit.
      assert.ok(worst <= perWindow + 2, `writer ran ${worst} items ahead; the window holds ${perWindow}`);
      assert.ok(worst >= perWindow - 1, `writer never filled the window (${worst} ahead)`);
      const stalledAt = produced;
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(produced <= stalledAt + 1, "the writer stopped once the reader cancelled");
    } finally {
      await f.close();
    }
  });

  it("cancel frees both sides at once: the generator's finally runs, the reader ends", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("a1");
      let finished = false;
      let signalled: unknown;
      a.handleStream("ticks", async function* (_req: unknown, ctx: StreamContext) {
        try {
          for (let i = 0; ; i++) {
            yield i;
            await new Promise((r) => setTimeout(r, 2));
          }
        } finally {
          finished = true;
          signalled = ctx.signal.reason;
        }
      });
      const s = f.server.openStream<number>("a1", "ticks");
      const got: number[] = [];
      for await (const x of s) {
        got.push(x);
        if (got.length === 5) s.cancel();
      }
      assert.deepEqual(got, range(5));
      assert.equal(s.ended, true);
      await until(() => finished, 2000, "the agent's generator to finish");
      assert.ok(signalled instanceof MusterError && signalled.code === ErrorCode.CANCELLED);
      assert.equal(f.server.agent("a1")?.state, "connected");
    } finally {
      await f.close();
    }
  });

  it("an AbortSignal and a deadline cancel a stream too; each ends the way it says", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("a1");
      a.handleStream("slow", async function* (_req: unknown, ctx: StreamContext) {
        for (let i = 0; ; i++) {
          yield i;
          await new Promise((r) => setTimeout(r, 20));
          if (ctx.signal.aborted) return;
        }
      });
      const abort = new AbortController();
      const s1 = f.server.openStream<number>("a1", "slow", undefined, { signal: abort.signal });
      setTimeout(() => abort.abort(), 60);
      const got = await collect(s1);
      assert.ok(got.length >= 1 && got.length <= 10, `${got.length} items before the abort`);
      const s2 = f.server.openStream<number>("a1", "slow", undefined, { timeoutMs: 80 });
      await assert.rejects(collect(s2), (e: MusterError) => {
        assert.equal(e.code, ErrorCode.DEADLINE_EXCEEDED);
        assert.match(e.message, /stream slow on agent a1: not done in 80 ms/);
        assert.equal((e.details as { lastReceived: number }).lastReceived, s2.received);
        return true;
      });
    } finally {
      await f.close();
    }
  });

  it("errors: the writer's, an unknown stream, a method opened as a stream, an absent agent", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("a1");
      a.handle("plain", () => 1);
      a.handleStream("boom", async function* () {
        yield 1;
        yield 2;
        throw new MusterError(ErrorCode.RESOURCE_EXHAUSTED, "disk full");
      });
      const boom = f.server.openStream<number>("a1", "boom");
      const seen: number[] = [];
      await assert.rejects(
        (async () => {
          for await (const x of boom) seen.push(x);
        })(),
        (e: MusterError) => e.code === ErrorCode.RESOURCE_EXHAUSTED && /disk full/.test(e.message),
      );
      assert.deepEqual(seen, [1, 2], "items before the error are delivered");
      await assert.rejects(
        collect(f.server.openStream("a1", "nope")),
        /UNIMPLEMENTED.*no stream "nope" on agent a1/,
      );
      await assert.rejects(
        collect(f.server.openStream("a1", "plain")),
        /"plain" on agent a1 is a method, not a stream/,
      );
      await assert.rejects(collect(f.server.openStream("ghost", "boom")), /NOT_FOUND.*no agent named ghost/);
      await assert.rejects(
        collect(f.server.openStream("a1", "boom", undefined, { windowBytes: 0 })),
        /windowBytes must be 1…4294967295, got 0/,
      );
    } finally {
      await f.close();
    }
  });

  it("a dropped link loses, repeats and reorders nothing", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("a1");
      a.handleStream("seq", async function* (req: { n: number }) {
        for (let i = 0; i < req.n; i++) yield i;
      });
      const s = f.server.openStream<number>("a1", "seq", { n: 20_000 }, { windowBytes: 8192 });
      const got: number[] = [];
      let cuts = 0;
      for await (const x of s) {
        got.push(x);
        if (x % 2500 === 1000) {
          f.net.cutAll("test cut");
          cuts++;
        }
      }
      assert.equal(cuts, 8);
      assert.equal(got.length, 20_000);
      assert.ok(
        got.every((x, i) => x === i),
        "every item once, in order",
      );
    } finally {
      await f.close();
    }
  });

  it("past the resume window: SESSION_EXPIRED with the last item received, so it can be reopened", async () => {
    const f = await fleet({ resumeWindowMs: 100 });
    try {
      f.server.handleStream("seq", async function* (req: { from: number }) {
        for (let i = req.from; i < 1_000_000; i++) {
          yield i;
          await new Promise((r) => setTimeout(r, 1));
        }
      });
      // The agent comes back only after the server has forgotten its session.
      const a = await f.addAgent("a1", { reconnect: { initialMs: 400, maxMs: 400, jitter: 0 } });
      const s = a.stream<number>("seq", { from: 0 });
      const got: number[] = [];
      let err: MusterError | undefined;
      try {
        for await (const x of s) {
          got.push(x);
          if (got.length === 20) f.net.cutAll("long outage");
        }
      } catch (e) {
        err = e as MusterError;
      }
      assert.ok(err, "the stream failed");
      assert.equal(err.code, ErrorCode.SESSION_EXPIRED);
      const last = (err.details as { lastReceived: number }).lastReceived;
      assert.equal(last, got.length);
      assert.equal(s.received, got.length);
      assert.match(err.message, new RegExp(`after item ${last}: .*reopen it from item ${last + 1}`));
      // Reopened from where it stopped: the sequence goes on without a gap.
      await a.connected();
      const again = a.stream<number>("seq", { from: last });
      const next: number[] = [];
      for await (const x of again) {
        next.push(x);
        if (next.length === 3) break;
      }
      assert.deepEqual([...got, ...next], range(got.length + 3));
    } finally {
      await f.close();
    }
  });

  it("many streams at once share one session, each in order", async () => {
    const f = await fleet();
    try {
      const a = await f.addAgent("a1");
      a.handleStream("seq", async function* (req: { n: number; tag: string }) {
        for (let i = 0; i < req.n; i++) yield `${req.tag}${i}`;
      });
      const streams = range(50).map((k) =>
        f.server.openStream<string>("a1", "seq", { n: 200, tag: `s${k}-` }),
      );
      const results = await Promise.all(streams.map(collect));
      results.forEach((items, k) => {
        assert.deepEqual(
          items,
          range(200).map((i) => `s${k}-${i}`),
        );
      });
    } finally {
      await f.close();
    }
  });
});

describe("streams through the CLI (muster stream, relayed by the server)", () => {
  const HANDLERS = new URL("../../test/fixtures/stream-handlers.mjs", import.meta.url).pathname;

  it("prints items as they arrive, ends with the result, and reports every failure precisely", async () => {
    const port = await freePort();
    const url = `tcp://127.0.0.1:${port}`;
    const server = startCli(["server", "--standalone", "--listen", url, "--log-json"]);
    const procs = [server];
    try {
      await server.waitFor(`listening on ${url}`);
      const agent = startCli([
        "agent",
        "--server",
        url,
        "--name",
        "s1",
        "--handlers",
        HANDLERS,
        "--log-json",
      ]);
      procs.push(agent);
      await until(() => /"msg":"connected"/.test(agent.err + agent.out), 20_000, "the agent to connect");

      const json = await runCli(["stream", "s1", "count", '{"n":5}', "--json", "--server", url]);
      assert.equal(json.code, 0, json.err);
      assert.deepEqual(
        json.out
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l)),
        [0, 1, 2, 3, 4, { end: { items: 5, result: { count: 5 } } }],
      );
      const plain = await runCli(["stream", "s1", "count", '{"n":3}', "--server", url]);
      assert.equal(plain.code, 0, plain.err);
      assert.equal(plain.out, "0\n1\n2\n");

      // A small window end to end: the relay holds back, nothing is lost.
      const many = await runCli([
        "stream",
        "s1",
        "count",
        '{"n":3000}',
        "--json",
        "--window",
        "1KiB",
        "--server",
        url,
      ]);
      assert.equal(many.code, 0, many.err);
      const lines = many.out.trim().split("\n");
      assert.equal(lines.length, 3001);
      assert.ok(lines.slice(0, 3000).every((l, i) => Number(l) === i));

      const broken = await runCli(["stream", "s1", "broken", "--server", url]);
      assert.equal(broken.code, 1);
      assert.equal(broken.out, "a\nb\n");
      assert.match(broken.err, /stream failed after 2 item\(s\): \[INTERNAL\] the source went away/);
      const unknown = await runCli(["stream", "s1", "nope", "--server", url]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.err, /\[UNIMPLEMENTED\] no stream "nope" on agent s1/);
      const method = await runCli(["stream", "s1", "ping", "--server", url]);
      assert.match(method.err, /"ping" on agent s1 is a method, not a stream/);
      const ghost = await runCli(["stream", "ghost", "count", "--server", url]);
      assert.equal(ghost.code, 1);
      assert.match(ghost.err, /\[NOT_FOUND\] no agent named ghost is known/);
      const badJson = await runCli(["stream", "s1", "count", "{n:", "--server", url]);
      assert.equal(badJson.code, 2);
      const badWindow = await runCli(["stream", "s1", "count", "--window", "lots", "--server", url]);
      assert.equal(badWindow.code, 2);

      // Ctrl-C cancels on the agent at once: its generator's finally runs.
      const follow = startCli(["stream", "s1", "forever", "--json", "--server", url]);
      procs.push(follow);
      await follow.waitFor('{"tick":5}');
      follow.child.kill("SIGINT");
      assert.equal(await follow.exited, 130);
      assert.match(follow.err, /stream cancelled after \d+ item\(s\)/);
      await until(
        () => /forever: stopped after \d+ items \(CANCELLED\)/.test(agent.err),
        5000,
        "the agent to stop",
      );
    } finally {
      for (const p of procs) p.child.kill("SIGKILL");
    }
  });
});
