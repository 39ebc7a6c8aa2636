import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { ManualClock } from "../src/internal/clock.js";
import { silentLogger } from "../src/internal/logger.js";
import { RpcEndpoint } from "../src/rpc/endpoint.js";
import type { CallContext } from "../src/rpc/types.js";
import { decodeFrame, encodeCall, encodeFrame, encodeValue } from "../src/wire/codec.js";
import { FrameType } from "../src/wire/frame.js";
import { fleet, until } from "./support/fleet.js";

describe("handler back-pressure (emit / whenWritable)", () => {
  it("a handler emitting 20,000 items at the pace of emit()/whenWritable() waits for the reader", async () => {
    const f = await fleet({ replayMaxFrames: 256 });
    try {
      let waits = 0;
      f.server.handle("flood", async (n: number, ctx) => {
        for (let i = 0; i < n; i++) {
          if (!ctx.emit(i)) {
            waits++;
            await ctx.whenWritable();
          }
        }
        return n;
      });
      const agent = await f.addAgent("reader");
      const got: number[] = [];
      const n = await agent.call<number>("flood", 20_000, {
        onItem: (item) => got.push(item as number),
        timeoutMs: 60_000,
      });
      assert.equal(n, 20_000);
      assert.equal(got.length, 20_000);
      assert.ok(
        got.every((v, i) => v === i),
        "items arrive once each, in order",
      );
      assert.ok(waits > 0, "the writer had to wait at least once with a 256-frame window");
    } finally {
      await f.close();
    }
  });

  it("whenWritable() rejects with the call's reason when the caller cancels", async () => {
    const f = await fleet({ replayMaxFrames: 16 });
    try {
      let rejected: MusterError | undefined;
      let started!: () => void;
      const running = new Promise<void>((r) => {
        started = r;
      });
      f.server.handle("stuck", async (_req, ctx) => {
        started();
        // The agent stops acknowledging (its link is cut below), so the window stays full.
        for (;;) {
          if (!ctx.emit("x")) {
            try {
              await ctx.whenWritable();
            } catch (err) {
              rejected = err as MusterError;
              return "stopped";
            }
          }
        }
      });
      const agent = await f.addAgent("slow");
      const ac = new AbortController();
      const call = agent.call("stuck", null, { signal: ac.signal, timeoutMs: 30_000 });
      await running;
      ac.abort();
      await assert.rejects(call, (e: MusterError) => e.code === ErrorCode.CANCELLED);
      await until(() => rejected !== undefined, 5000, "the handler's wait to be cut short");
      assert.equal(rejected!.code, ErrorCode.CANCELLED);
    } finally {
      await f.close();
    }
  });
});

describe("deadlines of incoming calls", () => {
  function endpoint(clock: ManualClock, sent: Buffer[]) {
    const handlers = new Map<string, (req: unknown, ctx: CallContext) => unknown>();
    const ep = new RpcEndpoint(
      { send: (b) => sent.push(b), writable: true, whenWritable: () => Promise.resolve() },
      {
        clock,
        logger: silentLogger,
        handlers,
        peer: { role: "agent", name: "a", labels: {}, sessionId: "s", remoteAddress: "x" },
        defaultTimeoutMs: 1000,
        maxIncomingCalls: 2,
        describePeer: "agent a",
        describeSelf: "the server",
      },
    );
    return { ep, handlers };
  }
  const call = (id: number, method: string, timeoutMs: number) => {
    const f = decodeFrame(encodeCall(1, 0, id, timeoutMs, method, encodeValue(null)));
    assert.equal(f.type, FrameType.CALL);
    return f as Extract<ReturnType<typeof decodeFrame>, { type: typeof FrameType.CALL }>;
  };

  it("a handler that never answers (and never reads its signal) is dropped at the next tick after its deadline", () => {
    const clock = new ManualClock();
    const sent: Buffer[] = [];
    const { ep, handlers } = endpoint(clock, sent);
    handlers.set("hang", () => new Promise(() => {}));
    ep.receive(call(1, "hang", 100));
    ep.receive(call(2, "hang", 100));
    assert.equal(ep.runningIncoming, 2);
    ep.receive(call(3, "hang", 100));
    const refused = decodeFrame(sent.at(-1)!);
    assert.ok(refused.type === FrameType.RESULT && "error" in refused);
    assert.equal(refused.error.code, ErrorCode.RESOURCE_EXHAUSTED);
    clock.advance(99);
    ep.expireIncoming(clock.now());
    assert.equal(ep.runningIncoming, 2, "not before the deadline");
    clock.advance(1);
    ep.expireIncoming(clock.now());
    assert.equal(ep.runningIncoming, 0, "both expired: the limit is free again");
    ep.receive(call(4, "hang", 100));
    assert.equal(ep.runningIncoming, 1);
  });

  it("a CANCEL at the call's deadline (the caller's timer, ahead of ours by a transit) aborts with DEADLINE_EXCEEDED; an earlier one with CANCELLED", () => {
    const clock = new ManualClock();
    const { ep, handlers } = endpoint(clock, []);
    const reasons: string[] = [];
    handlers.set("wait", (_req, ctx) => {
      ctx.signal.addEventListener("abort", () => reasons.push((ctx.signal.reason as MusterError).code));
      return new Promise(() => {});
    });
    ep.receive(call(1, "wait", 1000));
    clock.advance(990); // the caller's deadline came first: its CANCEL arrives before ours
    const cancel = (id: number) =>
      decodeFrame(encodeFrame({ type: FrameType.CANCEL, seq: 1, ack: 0, id })) as Parameters<
        typeof ep.receive
      >[0];
    ep.receive(cancel(1));
    ep.receive(call(2, "wait", 1000));
    clock.advance(100);
    ep.receive(cancel(2));
    assert.deepEqual(reasons, ["DEADLINE_EXCEEDED", "CANCELLED"]);
  });

  it("a handler that reads its signal sees it abort exactly at the deadline, without a tick", () => {
    const clock = new ManualClock();
    const { ep, handlers } = endpoint(clock, []);
    let reason: MusterError | undefined;
    handlers.set("watch", (_req, ctx) => {
      ctx.signal.addEventListener("abort", () => {
        reason = ctx.signal.reason as MusterError;
      });
      return new Promise(() => {});
    });
    ep.receive(call(1, "watch", 50));
    clock.advance(49);
    assert.equal(reason, undefined);
    clock.advance(1);
    assert.equal((reason as MusterError | undefined)?.code, ErrorCode.DEADLINE_EXCEEDED);
    assert.equal(ep.runningIncoming, 0);
  });

  it("a reply after the deadline is not sent", async () => {
    const clock = new ManualClock();
    const sent: Buffer[] = [];
    const { ep, handlers } = endpoint(clock, sent);
    let answer!: (v: unknown) => void;
    handlers.set("late", () => new Promise((r) => (answer = r)));
    ep.receive(call(1, "late", 10));
    clock.advance(20);
    answer("too late");
    await new Promise((r) => setImmediate(r));
    assert.equal(sent.length, 0);
    assert.equal(ep.runningIncoming, 0);
  });
});
