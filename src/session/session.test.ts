import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mulberry32 } from "../chaos/prng.js";
import { ManualClock, systemClock } from "../internal/clock.js";
import { silentLogger } from "../internal/logger.js";
import { createMemoryPair, type MemoryTransportEnd } from "../transport/memory.js";
import { decodeFrame, decodeValue, encodeFrame, encodeValue } from "../wire/codec.js";
import { CloseCode, FrameType } from "../wire/frame.js";
import { type SequencedFrame, Session, type SessionState } from "./session.js";

function item(n: number): Buffer {
  return encodeFrame({ type: FrameType.ITEM, seq: 1, ack: 0, id: 1, payload: encodeValue(n) });
}

interface End {
  session: Session;
  received: number[];
  states: SessionState[];
  linkDowns: number;
}

function makeEnd(options: Partial<ConstructorParameters<typeof Session>[0]> = {}): End {
  const end: End = { session: undefined as unknown as Session, received: [], states: [], linkDowns: 0 };
  end.session = new Session(
    { clock: systemClock, logger: silentLogger, ...options },
    {
      onMessage: (f: SequencedFrame) => {
        if (f.type === FrameType.ITEM) end.received.push(decodeValue(f.payload) as number);
      },
      onState: (s) => end.states.push(s),
      onLinkDown: () => {
        end.linkDowns++;
      },
      onPeerClose: () => {},
    },
  );
  return end;
}

/** Attaches both sessions over a fresh memory pair, as the HELLO/WELCOME exchange would. */
function link(a: End, b: End): [MemoryTransportEnd, MemoryTransportEnd] {
  const [ta, tb] = createMemoryPair();
  ta.setHandler({
    onFrame: (f) => a.session.receive(ta, f),
    onClose: (i) => a.session.linkClosed(ta, i),
    onDrain: () => {},
  });
  tb.setHandler({
    onFrame: (f) => b.session.receive(tb, f),
    onClose: (i) => b.session.linkClosed(tb, i),
    onDrain: () => {},
  });
  const ackOfB = b.session.lastReceived;
  const ackOfA = a.session.lastReceived;
  a.session.attach(ta, ackOfB);
  b.session.attach(tb, ackOfA);
  return [ta, tb];
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("Session", () => {
  it("delivers every frame exactly once and in order across hundreds of random cuts", async () => {
    const seed = Number(process.env.MUSTER_SEED ?? 0x5eed);
    const rand = mulberry32(seed); // seeded, so that a failing run can be replayed
    const N = 10_000;
    const a = makeEnd({ replayMaxFrames: 512 });
    const b = makeEnd({ replayMaxFrames: 512 });
    let [ta] = link(a, b);
    let sentA = 0;
    let sentB = 0;
    let cuts = 0;
    while (a.received.length < N || b.received.length < N) {
      // Send a random burst each way, then maybe cut the link at this point.
      const burst = 1 + Math.floor(rand() * 20);
      for (let i = 0; i < burst && sentA < N; i++) a.session.send(item(sentA++));
      for (let i = 0; i < burst && sentB < N; i++) b.session.send(item(sentB++));
      const r = rand();
      if (r < 0.5) {
        ta.cut(`cut ${cuts}`);
        cuts++;
        await tick();
        await tick();
        [ta] = link(a, b);
      } else {
        await tick();
      }
      if (cuts > 5000) break;
    }
    assert.ok(cuts >= 200, `expected hundreds of cuts, got ${cuts} (seed ${seed})`);
    assert.equal(a.received.length, N, `seed ${seed}`);
    assert.equal(b.received.length, N, `seed ${seed}`);
    for (let i = 0; i < N; i++) {
      if (a.received[i] !== i || b.received[i] !== i)
        assert.fail(`frame ${i} out of order or repeated (seed ${seed})`);
    }
    assert.ok(a.session.duplicatesDropped + b.session.duplicatesDropped >= 0);
    a.session.close(CloseCode.NORMAL, "done");
    b.session.close(CloseCode.NORMAL, "done");
  });

  it("holds frames sent while resuming and sends them on attach", async () => {
    const a = makeEnd();
    const b = makeEnd({ ackDelayMs: 20 });
    for (let i = 0; i < 100; i++) a.session.send(item(i));
    assert.equal(a.session.replayStats.frames, 100);
    link(a, b);
    for (let i = 0; i < 5 && b.received.length < 100; i++) await tick();
    assert.deepEqual(
      b.received,
      Array.from({ length: 100 }, (_, i) => i),
    );
    await new Promise((r) => setTimeout(r, 50)); // the delayed ACK
    assert.equal(a.session.replayStats.frames, 0, "acked frames leave the replay window");
    a.session.close(CloseCode.NORMAL, "done");
    b.session.close(CloseCode.NORMAL, "done");
  });

  it("bounds the replay window by frames and bytes, then fails with RESOURCE_EXHAUSTED", () => {
    const a = makeEnd({ replayMaxFrames: 10, replayMaxBytes: 1 << 20, backlogMaxBytes: 200 });
    for (let i = 0; i < 10; i++) a.session.send(item(i));
    assert.equal(a.session.replayStats.frames, 10);
    a.session.send(item(10)); // backlog
    assert.equal(a.session.replayStats.backlogFrames, 1);
    assert.throws(
      () => {
        for (let i = 0; i < 100; i++) a.session.send(item(11 + i));
      },
      (e: Error & { code?: string }) =>
        e.code === "RESOURCE_EXHAUSTED" && /replay window full/.test(e.message),
    );
    const b = makeEnd({ replayMaxBytes: 20 });
    b.session.send(item(1)); // an empty window always takes one frame
    b.session.send(item(2));
    assert.equal(b.session.replayStats.frames, 1);
    assert.equal(b.session.replayStats.backlogFrames, 1);
  });

  it("refuses to resume from an ack it cannot replay from", () => {
    const a = makeEnd();
    for (let i = 0; i < 3; i++) a.session.send(item(i));
    assert.equal(a.session.canResumeFrom(0), true);
    assert.equal(a.session.canResumeFrom(3), true);
    assert.equal(a.session.canResumeFrom(4), false, "ack beyond what was sent");
  });

  it("closes the link with protocol_error on a sequence gap, and on garbage", async () => {
    for (const bad of [
      encodeFrame({ type: FrameType.ITEM, seq: 5, ack: 0, id: 1, payload: encodeValue(1) }),
      Buffer.from("not a frame at all"),
    ]) {
      const a = makeEnd();
      const [ta, raw] = createMemoryPair();
      const closes: string[] = [];
      ta.setHandler({
        onFrame: (f) => a.session.receive(ta, f),
        onClose: (i) => a.session.linkClosed(ta, i),
        onDrain: () => {},
      });
      const seen: number[] = [];
      raw.setHandler({
        onFrame: (f) => seen.push(decodeFrame(f).type),
        onClose: (i) => closes.push(i.code),
        onDrain: () => {},
      });
      a.session.attach(ta, 0);
      raw.send(bad);
      for (let i = 0; i < 4; i++) await tick();
      assert.deepEqual(seen, [FrameType.CLOSE], "the peer is told why");
      assert.deepEqual(closes, ["remote_closed"]);
      assert.equal(a.session.state, "resuming", "the session survives, the link does not");
      assert.equal(a.linkDowns, 1);
    }
  });

  it("pings when idle, turns suspect on silence, and drops the link when dead", async () => {
    const clock = new ManualClock();
    const a = makeEnd({ clock, heartbeatIntervalMs: 1000, suspectAfterMs: 3000, deadAfterMs: 6000 });
    const [ta, raw] = createMemoryPair();
    const types: number[] = [];
    ta.setHandler({
      onFrame: (f) => a.session.receive(ta, f),
      onClose: (i) => a.session.linkClosed(ta, i),
      onDrain: () => {},
    });
    raw.setHandler({ onFrame: (f) => types.push(decodeFrame(f).type), onClose: () => {}, onDrain: () => {} });
    a.session.attach(ta, 0);
    clock.advance(1000);
    a.session.tick(clock.now());
    await tick();
    assert.deepEqual(types, [FrameType.PING]);
    clock.advance(2000);
    a.session.tick(clock.now());
    assert.equal(a.session.state, "suspect");
    // A frame from the peer clears the suspicion.
    raw.send(encodeFrame({ type: FrameType.PING, seq: 0, ack: 0, time: 1 }));
    await tick();
    assert.equal(a.session.state, "connected");
    for (let i = 0; i < 6; i++) {
      clock.advance(1000);
      a.session.tick(clock.now());
    }
    assert.equal(a.session.state, "resuming");
    assert.equal(a.linkDowns, 1);
    assert.deepEqual(a.states, ["connected", "suspect", "connected", "suspect", "resuming"]);
  });

  it("after a long pause of its own process, waits one tick before judging the peer", async () => {
    const clock = new ManualClock();
    const a = makeEnd({ clock, heartbeatIntervalMs: 1000, suspectAfterMs: 3000, deadAfterMs: 6000 });
    const [ta, raw] = createMemoryPair();
    ta.setHandler({
      onFrame: (f) => a.session.receive(ta, f),
      onClose: (i) => a.session.linkClosed(ta, i),
      onDrain: () => {},
    });
    raw.setHandler({ onFrame: () => {}, onClose: () => {}, onDrain: () => {} });
    a.session.attach(ta, 0);
    a.session.tick(clock.now());
    // The process stalls for 10 s (a long synchronous task): the first tick after it is late.
    clock.advance(10_000);
    a.session.tick(clock.now());
    assert.equal(a.session.state, "connected", "no verdict on the late tick");
    // What the peer sent meanwhile is read before the next tick: the peer was alive.
    raw.send(encodeFrame({ type: FrameType.PING, seq: 0, ack: 0, time: 1 }));
    await tick();
    clock.advance(500);
    a.session.tick(clock.now());
    assert.equal(a.session.state, "connected");
    assert.equal(a.linkDowns, 0);
    // The same pause with a peer that really went silent: dropped on the tick after.
    clock.advance(10_000);
    a.session.tick(clock.now());
    assert.equal(a.session.state, "connected");
    clock.advance(500);
    a.session.tick(clock.now());
    assert.equal(a.session.state, "resuming");
    assert.equal(a.linkDowns, 1);
  });
});
