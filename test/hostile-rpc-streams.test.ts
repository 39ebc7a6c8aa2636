// Hostile stream peers over real TCP. An operator asks `muster.stream` for a 4 GiB window and
// then neither grants credit nor acknowledges anything; an agent answers the server's OPEN
// with items far beyond the window it was given. The server's memory stays bounded, the
// cheating stream is closed with a precise error (and the cheater's link once it repeats),
// and honest peers are answered throughout.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { DEFAULTS } from "../src/internal/defaults.js";
import { connectOperator } from "../src/operator/create-operator.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { encodeValue } from "../src/wire/codec.js";
import { FrameType, type PayloadKind } from "../src/wire/frame.js";
import { quickReconnect, until } from "./support/fleet.js";
import { RawPeer } from "./support/raw-peer.js";

const MiB = 1024 * 1024;
const CHUNK = new Uint8Array(64 * 1024).fill(7);

/** Heap and buffers of this process (server, agents and test together), in bytes. */
const used = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** Resolves once `read()` has not changed for `quietMs`, or has passed `cap`. */
async function settles(read: () => number, cap: number, quietMs = 500, ms = 60_000): Promise<number> {
  let last = read();
  let since = Date.now();
  await until(
    () => {
      const now = read();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return now > cap || Date.now() - since >= quietMs;
    },
    ms,
    "the producer to stop or pass its cap",
  );
  return read();
}

describe("hostile stream peers", () => {
  let server: MusterServer;
  let url: string;
  const agents: MusterAgent[] = [];
  let produced = 0;
  let floodEnded = false;
  before(async () => {
    server = createServer({ listen: ["tcp://127.0.0.1:0"], standalone: true, resumeWindowMs: 2000 });
    await server.start();
    url = server.listeners[0]!.url;
    const source = createAgent({ name: "source", servers: [url], reconnect: quickReconnect });
    source.handleStream("flood", async function* () {
      try {
        // Far more than any bound below: the writer stops only when the reader makes no room.
        for (let i = 0; i < 2048; i++) {
          produced += CHUNK.length;
          yield CHUNK;
        }
      } finally {
        floodEnded = true;
      }
    });
    const honest = createAgent({ name: "honest", servers: [url], reconnect: quickReconnect });
    honest.handle("echo", (x) => x);
    for (const a of [source, honest]) {
      agents.push(a);
      a.start();
      await a.connected();
    }
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await server.close();
  });

  it("caps the window of a relayed stream whose reader neither reads nor acknowledges", async (t) => {
    const before = used();
    const mallory = await RawPeer.join(url, "operator", "mallory");
    mallory.autoAck = false;
    mallory.send({
      type: FrameType.OPEN,
      id: 1,
      timeoutMs: 0,
      window: 0xffffffff,
      method: "muster.stream",
      payload: encodeValue({ agent: "source", name: "flood", windowBytes: 0xffffffff }),
    });
    // Without a bound the agent would send all 128 MiB into the server's memory.
    const total = await settles(() => produced, 64 * MiB);
    const grown = used() - before;
    // What may be held: the relay's window towards the agent, the replay window towards the
    // reader (its writers stop at half of it), and what is in flight on the links.
    const bound = DEFAULTS.maxStreamWindowBytes + DEFAULTS.replayMaxBytes;
    t.diagnostic(
      `agent produced ${(total / MiB).toFixed(1)} MiB; memory grew ${(grown / MiB).toFixed(1)} MiB`,
    );
    assert.ok(total <= bound, `the agent produced ${total} bytes (bound ${bound})`);
    assert.ok(grown <= 64 * MiB, `memory grew by ${(grown / MiB).toFixed(1)} MiB`);
    // Honest peers are answered meanwhile.
    assert.equal(await server.callAgent("honest", "echo", "hi"), "hi");
    const op = await connectOperator({ server: url, name: "honest-operator" });
    try {
      assert.equal((await op.agents()).length, 2);
    } finally {
      await op.close();
    }
    // The reader leaves for good: the relay stops once its session has expired.
    mallory.destroy();
    await until(() => floodEnded, 20_000, "the relayed stream to be cancelled on the agent");
  });

  it("closes a stream whose writer ignores the window, and the writer's link when it repeats", async () => {
    const liar = await RawPeer.join(url, "agent", "liar");
    const flood = (id: number): void =>
      liar.sendMany(
        Array.from({ length: 64 }, () => ({
          type: FrameType.ITEM,
          id,
          payload: { kind: 2 as PayloadKind, bytes: CHUNK },
        })),
      );
    const window = 64 * 1024;
    for (let round = 1; round <= 3; round++) {
      const s = server.openStream("liar", "tail", {}, { windowBytes: window });
      const open = await liar.waitFor(
        (f) => f.type === FrameType.OPEN && f.id === s.id,
        `OPEN of stream ${round}`,
      );
      assert.equal(open.type === FrameType.OPEN && open.window, window);
      flood(s.id);
      // The reader never reads: without a check it would hold all 4 MiB.
      await until(() => s.ended, 10_000, `stream ${round} to be closed`);
      await assert.rejects(
        s.next(),
        (e: MusterError) =>
          e.code === "PROTOCOL_ERROR" &&
          /stream tail: the writer sent \d+ bytes of items beyond its window of 65536 bytes \+ 0 bytes of credit/.test(
            e.rawMessage,
          ),
      );
      assert.ok(s.buffered <= 1, `the reader held ${s.buffered} items`);
      if (round < 3) {
        await liar.waitFor((f) => f.type === FrameType.CANCEL && f.id === s.id, `CANCEL of stream ${round}`);
        assert.equal(liar.closed, false, "one violation closes the stream, not the link");
      }
    }
    await until(() => liar.closed, 10_000, "the cheater's link to be closed");
    const close = liar.closeFrame();
    assert.equal(close?.code, "protocol_error");
    assert.match(close!.message, /3 streams broke flow control/);
    assert.equal(await server.callAgent("honest", "echo", "still here"), "still here");
  });
});
