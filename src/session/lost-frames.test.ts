// Frames that vanish from a link that stays up (a middlebox dropping a stretch of the stream,
// a transport losing a request) must cost a resume, never a call. The soak caught a fan-out
// result lost this way: the server's last CALLs to one agent were dropped while the link
// lived on, nothing sequenced followed them, and the call waited for its deadline.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mulberry32 } from "../chaos/prng.js";
import { ManualClock } from "../internal/clock.js";
import { silentLogger } from "../internal/logger.js";
import { RpcEndpoint } from "../rpc/endpoint.js";
import type { Handler } from "../rpc/types.js";
import { createMemoryPair, type MemoryTransportEnd } from "../transport/memory.js";
import { decodeFrame } from "../wire/codec.js";
import { CloseCode, FrameType } from "../wire/frame.js";
import { Session } from "./session.js";

const HEARTBEAT_MS = 1000;

/** One side of a session with its RPC endpoint, as the server and the agent each run it. */
class Side {
  readonly session: Session;
  readonly rpc: RpcEndpoint;
  readonly handlers = new Map<string, Handler>();
  transport: MemoryTransportEnd | undefined;
  linkDowns = 0;
  constructor(
    readonly name: string,
    readonly clock: ManualClock,
  ) {
    this.session = new Session(
      {
        clock,
        logger: silentLogger,
        heartbeatIntervalMs: HEARTBEAT_MS,
        suspectAfterMs: 3 * HEARTBEAT_MS,
        deadAfterMs: 6 * HEARTBEAT_MS,
        ackDelayMs: 200,
      },
      {
        onMessage: (f) => this.rpc.receive(f),
        onState: () => {},
        onLinkDown: () => {
          this.linkDowns++;
        },
        onPeerClose: () => {},
      },
    );
    this.rpc = new RpcEndpoint(this.session, {
      clock,
      logger: silentLogger,
      handlers: this.handlers,
      peer: { role: "agent", name: "peer", labels: {}, sessionId: "s", remoteAddress: "memory" },
      defaultTimeoutMs: 600_000,
      maxIncomingCalls: 100_000,
      describeSelf: name,
    });
  }
  get up(): boolean {
    return this.session.transport !== undefined;
  }
}

/** Attaches both sessions over a fresh memory pair, each resuming from what the other received. */
function relink(a: Side, b: Side): void {
  const [ta, tb] = createMemoryPair();
  for (const [side, t] of [
    [a, ta],
    [b, tb],
  ] as const) {
    t.setHandler({
      onFrame: (f) => side.session.receive(t, f),
      onClose: (i) => side.session.linkClosed(t, i),
      onDrain: () => side.session.linkDrained(t),
    });
    side.transport = t;
  }
  const ackOfB = b.session.lastReceived;
  a.session.attach(ta, ackOfB);
  b.session.attach(tb, a.session.lastReceived);
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Moves the shared clock by `ms` and lets both sides run their heartbeat duty and deliver. */
async function step(clock: ManualClock, sides: Side[], ms: number): Promise<void> {
  clock.advance(ms);
  for (const s of sides) s.session.tick(clock.now());
  await turn();
  await turn();
}

function pair(): { clock: ManualClock; server: Side; agent: Side } {
  const clock = new ManualClock();
  const server = new Side("server", clock);
  const agent = new Side("agent", clock);
  relink(server, agent);
  return { clock, server, agent };
}

describe("frames lost on a link that stays up", () => {
  it("a CALL lost at the tail: the PONG reveals it, the resume replays it, the call succeeds", async () => {
    const { clock, server, agent } = pair();
    let ran = 0;
    agent.handlers.set("soak.down", (req) => {
      ran++;
      return req;
    });
    // The exact interleaving of the soak: the server's last CALL to this agent vanishes on the
    // way (the link stays up), and nothing sequenced follows it.
    server.transport!.lose(true);
    let outcome: unknown;
    const call = server.rpc.call("soak.down", { round: 73 }, { timeoutMs: 60_000 }).then(
      (v) => {
        outcome = v;
      },
      (e: unknown) => {
        outcome = e;
      },
    );
    await step(clock, [server, agent], 100);
    server.transport!.lose(false);
    assert.equal(ran, 0, "the CALL was lost");
    // Both sides keep pinging each other: the link looks healthy.
    for (let i = 0; i < 10 && server.up; i++) await step(clock, [server, agent], HEARTBEAT_MS / 2);
    assert.equal(server.up, false, "the server's PING came back acknowledging less than it sent");
    assert.equal(server.linkDowns, 1);
    relink(server, agent); // what the agent's reconnect and resume do
    for (let i = 0; i < 5 && outcome === undefined; i++) await step(clock, [server, agent], 10);
    await call;
    assert.deepEqual(outcome, { round: 73 }, "settled with the value, not a deadline");
    assert.ok(clock.now() < 10_000, "well before the call's deadline");
    assert.equal(ran, 1, "the handler ran once");
  });

  it("a RESULT lost on the way back: the agent's PING reveals it, the resume replays it", async () => {
    const { clock, server, agent } = pair();
    let ran = 0;
    agent.handlers.set("work", (req) => {
      ran++;
      agent.transport!.lose(true); // the reply vanishes; the link stays up
      return req;
    });
    let outcome: unknown;
    const call = server.rpc.call("work", 7, { timeoutMs: 60_000 }).then(
      (v) => {
        outcome = v;
      },
      (e: unknown) => {
        outcome = e;
      },
    );
    await step(clock, [server, agent], 10);
    assert.equal(ran, 1);
    agent.transport!.lose(false);
    for (let i = 0; i < 10 && agent.up; i++) await step(clock, [server, agent], HEARTBEAT_MS / 2);
    assert.equal(agent.up, false, "the agent's PONG check dropped the link");
    relink(server, agent);
    for (let i = 0; i < 5 && outcome === undefined; i++) await step(clock, [server, agent], 10);
    await call;
    assert.equal(outcome, 7);
    assert.equal(ran, 1, "not run twice: the resume replays the RESULT, not the CALL");
  });

  it("a busy link that loses frames is caught too (a PING goes out while frames wait for their ack)", async () => {
    const { clock, server, agent } = pair();
    agent.handlers.set("echo", (req) => req);
    const parked: Array<() => void> = [];
    server.handlers.set("park", () => new Promise<void>((resolve) => parked.push(resolve)));
    server.transport!.lose(true);
    const lost = server.rpc.call("echo", "lost", { timeoutMs: 60_000 });
    await step(clock, [server, agent], 10);
    server.transport!.lose(false);
    // The agent keeps the server busy: its calls wait on the server, which acknowledges them,
    // so the server is never idle long enough for an idle PING, and sends nothing sequenced.
    const busy: Promise<unknown>[] = [];
    for (let i = 0; i < 24 && server.up; i++) {
      busy.push(agent.rpc.call("park", i, { timeoutMs: 60_000 }));
      await step(clock, [server, agent], HEARTBEAT_MS / 4);
    }
    assert.equal(server.up, false, "caught within a few heartbeats although never idle");
    relink(server, agent);
    for (let i = 0; i < 5; i++) await step(clock, [server, agent], 10);
    assert.equal(await lost, "lost");
    for (const resolve of parked.splice(0)) resolve();
    for (let i = 0; i < 5; i++) await step(clock, [server, agent], 10);
    assert.equal((await Promise.all(busy)).length, busy.length);
  });

  it("a busy link whose acks keep coming sends a PING only every few heartbeats (for its RTT)", async () => {
    const { clock, server, agent } = pair();
    agent.handlers.set("echo", (req) => req);
    const pingsAt: number[] = [];
    const t = server.transport!;
    const send = t.send.bind(t);
    t.send = (f: Uint8Array): boolean => {
      if (decodeFrame(f).type === FrameType.PING) pingsAt.push(clock.now());
      return send(f);
    };
    const start = clock.now();
    // A call every quarter heartbeat for 20 heartbeats: the server is never idle and always has
    // a CALL waiting for its ack, but every ack comes within a heartbeat.
    for (let i = 0; i < 80; i++) {
      const p = server.rpc.call("echo", i, { timeoutMs: 60_000 });
      await step(clock, [server, agent], HEARTBEAT_MS / 4);
      assert.equal(await p, i);
    }
    const elapsedBeats = (clock.now() - start) / HEARTBEAT_MS;
    assert.ok(pingsAt.length >= 1, "the RTT is still measured now and then");
    assert.ok(
      pingsAt.length <= Math.ceil(elapsedBeats / 6),
      `${pingsAt.length} PINGs in ${elapsedBeats} heartbeats (at ${pingsAt.map((a) => a - start).join(", ")} ms)`,
    );
    assert.ok(server.session.rttMs >= 0, "and known");
    assert.equal(server.linkDowns + agent.linkDowns, 0);
  });

  it("a link that loses nothing is never dropped by the check", async () => {
    const { clock, server, agent } = pair();
    agent.handlers.set("echo", (req) => req);
    for (let i = 0; i < 200; i++) {
      const p = server.rpc.call("echo", i, { timeoutMs: 60_000 });
      await step(clock, [server, agent], 137);
      assert.equal(await p, i);
    }
    assert.equal(server.linkDowns + agent.linkDowns, 0);
    server.session.close(CloseCode.NORMAL, "done");
    agent.session.close(CloseCode.NORMAL, "done");
  });
});

describe("calls both ways under random cuts and losses", () => {
  it("settles every call exactly once with the right value, each burst of faults within seconds", async () => {
    const seed = Number(process.env.MUSTER_SEED ?? 0x10_57);
    const rand = mulberry32(seed); // seeded, so that a failing run can be replayed
    const clock = new ManualClock();
    const server = new Side("server", clock);
    const agent = new Side("agent", clock);
    const sides = [server, agent];
    // Handlers answer at once, or later: some replies go out while the link is down, during
    // the resume, or into a link that is losing frames.
    const later: Array<() => void> = [];
    const runs = new Map<string, number>();
    for (const side of sides) {
      side.handlers.set("echo", (req) => {
        const key = `${side.name}:${String(req)}`;
        runs.set(key, (runs.get(key) ?? 0) + 1);
        if (rand() < 0.5) return req;
        return new Promise((resolve) => later.push(() => resolve(req)));
      });
    }
    relink(server, agent);
    let calls = 0;
    let settled = 0;
    let wrong = 0;
    const faults = { cut: 0, lose: 0, resume: 0 };
    const losing: Array<{ t: MemoryTransportEnd; until: number }> = [];
    let downSince = -1;
    /** A side whose link dropped comes back after a while, as a reconnect and resume would. */
    const resumeIfDown = async (s: number, after: number): Promise<void> => {
      if (server.up && agent.up) return;
      if (downSince < 0) downSince = s;
      if (s - downSince < after) return;
      // The surviving half of a link is closed by the other side's drop, or by its own check.
      server.transport?.close(CloseCode.NORMAL, "resume");
      agent.transport?.close(CloseCode.NORMAL, "resume");
      await turn();
      relink(server, agent);
      faults.resume++;
      downSince = -1;
    };
    const detail = (): string =>
      `seed ${seed}: ${calls} calls, ${settled} settled, ${wrong} wrong; faults ${JSON.stringify(faults)}`;
    let s = 0;
    for (let episode = 0; episode < 500; episode++) {
      // A burst: calls both ways, held-back replies released at random, cuts and losses.
      for (let k = 0; k < 30; k++, s++) {
        for (const [from, tag] of [
          [server, "s"],
          [agent, "a"],
        ] as const) {
          if (rand() < 0.6) {
            const value = `${tag}${calls++}`;
            from.rpc.call("echo", value, { timeoutMs: 600_000 }).then(
              (v) => {
                settled++;
                if (v !== value) wrong++;
              },
              () => {
                settled++;
                wrong++;
              },
            );
          }
        }
        while (later.length > 0 && rand() < 0.5) later.splice(Math.floor(rand() * later.length), 1)[0]!();
        const r = rand();
        if (server.up && agent.up) {
          if (r < 0.07) server.transport!.cut(`cut ${faults.cut++}`);
          else if (r < 0.17) {
            // A stretch of one direction vanishes; the link stays up.
            const t = rand() < 0.5 ? server.transport! : agent.transport!;
            t.lose(true);
            faults.lose++;
            losing.push({ t, until: s + 1 + Math.floor(rand() * 6) });
          }
        }
        for (let i = losing.length - 1; i >= 0; i--) {
          if (losing[i]!.until <= s) losing.splice(i, 1)[0]!.t.lose(false);
        }
        await resumeIfDown(s, 1 + Math.floor(rand() * 3));
        await step(clock, sides, 50 + Math.floor(rand() * 400));
      }
      // Then quiet, as when an outage ends: the last held-back replies go out (perhaps into a
      // link still losing), the losses stop, nothing new is sent. Every call must settle within
      // a few heartbeats, with no later traffic to reveal a lost tail.
      for (const release of later.splice(0)) release();
      await turn();
      for (const l of losing.splice(0)) l.t.lose(false);
      const quietStart = clock.now();
      for (let k = 0; settled < calls && k < 40; k++, s++) {
        await resumeIfDown(s, 1);
        for (const release of later.splice(0)) release(); // calls replayed by the resume
        await step(clock, sides, 250);
      }
      if (settled < calls)
        assert.fail(
          `${calls - settled} calls still unsettled ${clock.now() - quietStart} ms after the faults stopped (episode ${episode}, ${detail()})`,
        );
    }
    assert.ok(faults.cut + faults.lose >= 1500, `enough faults (${detail()})`);
    assert.equal(wrong, 0, detail());
    for (const [key, n] of runs) if (n !== 1) assert.fail(`${key} ran ${n} times (${detail()})`);
    assert.equal(runs.size, calls, `every call ran exactly once (${detail()})`);
    server.session.close(CloseCode.NORMAL, "done");
    agent.session.close(CloseCode.NORMAL, "done");
  });
});
