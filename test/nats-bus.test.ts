// The NATS bus against a real nats-server: the conformance suite every bus passes, then what
// only a real server can show: the server killed and restarted under live clients.
import assert from "node:assert/strict";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import type { BusStatus, ClusterBus } from "../src/cluster/bus.js";
import { describeBusConformance, eventually, recorder, rejectsWith } from "../src/cluster/bus-conformance.js";
import { connectNatsBus } from "../src/cluster/nats-bus.js";
import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import { natsServerMissing, startNatsServer } from "./support/nats-server.js";

const skip = natsServerMissing();
const text = new TextEncoder();

describeBusConformance(
  "nats",
  async () => {
    const server = await startNatsServer();
    return {
      connect: () => connectNatsBus(server.url, { reconnectTimeWaitMs: 100 }),
      cleanup: () => server.stop(),
    };
  },
  { skip },
);

/** Retries `run` while JetStream is still starting after a restart (UNAVAILABLE / DEADLINE_EXCEEDED). */
async function retrying<T>(run: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await run();
    } catch (err) {
      const transient =
        err instanceof MusterError &&
        (err.code === ErrorCode.UNAVAILABLE || err.code === ErrorCode.DEADLINE_EXCEEDED);
      if (!transient || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

it("nats: the bus survives nats-server killed and restarted", { skip }, async (t) => {
  const server = await startNatsServer();
  const buses: ClusterBus[] = [];
  t.after(async () => {
    for (const b of buses) await b.close();
    await server.stop();
  });
  const a = await connectNatsBus(server.url, { name: "a", reconnectTimeWaitMs: 100 });
  const b = await connectNatsBus(server.url, { name: "b", reconnectTimeWaitMs: 100 });
  buses.push(a, b);
  const statuses: BusStatus[] = [];
  a.onStatus((s) => statuses.push(s));
  const [ba, bb] = [await a.bucket("restart"), await b.bucket("restart")];
  await bb.put("before", text.encode("1"));
  const r = recorder();
  let readies = 0;
  await ba.watch(r.onEntry, () => readies++);
  await eventually("initial values", () => readies === 1 && r.lines.length === 1);
  const news: string[] = [];
  a.subscribe("news.>", (m) => news.push(m.subject));

  await server.kill();
  await eventually("disconnected", () => a.status === "disconnected");
  await rejectsWith(
    ErrorCode.UNAVAILABLE,
    () => a.publish("news.x", new Uint8Array(0)),
    "publish while down",
  );
  await rejectsWith(ErrorCode.UNAVAILABLE, () => ba.get("before"), "bucket operation while down");

  // The watch's consumer is lost with the server (as with a consumer store that did not
  // survive): nats.js alone would notice only after two missed 30 s idle heartbeats; the bus
  // re-creates the watch as soon as the link is back.
  const streamDir = join(server.storeDir, "jetstream", "$G", "streams", "KV_restart");
  assert.ok(readdirSync(join(streamDir, "obs")).length > 0, "the watch's consumer was on disk");
  rmSync(join(streamDir, "obs"), { recursive: true, force: true });
  await server.restart();
  await eventually("connected again", () => a.status === "connected" && b.status === "connected");
  assert.deepEqual(statuses, ["disconnected", "connected"]);
  await retrying(() => bb.put("after", text.encode("2")));
  await eventually("the write made after the restart", () => r.lines.includes("PUT after=2"));
  assert.deepEqual(r.lines, ["PUT before=1", "PUT after=2"]);
  assert.equal(readies, 1, "onReady once");
  assert.equal((await ba.get("before"))?.operation, "PUT", "the store survived the restart");

  for (let i = 0; news.length === 0; i++) {
    b.publish(`news.${i}`, new Uint8Array(0)); // until a's subscription is back on the server
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(i < 200, "a subscription made before the restart receives again");
  }
});
