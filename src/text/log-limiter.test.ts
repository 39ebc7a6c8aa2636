import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { captureLogger, type LogLine } from "../../test/support/capture-logger.js";
import { PeerLogLimiter, peerAddress } from "./log-limiter.js";

describe("PeerLogLimiter", () => {
  it("names a peer by its address, without the port", () => {
    assert.equal(peerAddress("10.0.0.1:50112"), "10.0.0.1");
    assert.equal(peerAddress("::1:50112"), "::1");
    assert.equal(peerAddress("unix:/run/x.sock"), "unix:/run/x.sock");
  });

  it("logs a burst per address, then counts what it leaves out and says so with the next line", () => {
    const lines: LogLine[] = [];
    let now = 0;
    const log = new PeerLogLimiter(
      captureLogger(lines),
      { burst: 3, perSecond: 20, summaryMs: 60_000 },
      () => now,
    );
    for (let i = 0; i < 10; i++) log.log("error", "10.0.0.1:1", { n: i }, "refused");
    log.log("warn", "10.0.0.2:1", { n: 0 }, "refused");
    assert.deepEqual(
      lines.map((l) => [l.obj.n, l.obj.suppressed]),
      [
        [0, undefined],
        [1, undefined],
        [2, undefined],
        [0, undefined],
      ],
    );
    assert.equal(log.suppressed, 7);
    // One line is earned back every 50 ms.
    now += 50;
    log.log("error", "10.0.0.1:2", { n: 99 }, "refused");
    assert.deepEqual([lines.at(-1)!.obj.n, lines.at(-1)!.obj.suppressed], [99, 7]);
    assert.equal(log.suppressed, 0);
    log.flush();
  });

  it("bounds all peers together too, cuts every string value, and reports the rest on flush", () => {
    const lines: LogLine[] = [];
    const log = new PeerLogLimiter(captureLogger(lines), { burst: 5, totalBurst: 4 }, () => 0);
    for (let i = 0; i < 10; i++) log.log("warn", `10.0.0.${i}:1`, { value: "v".repeat(10_000) }, "refused");
    assert.equal(lines.length, 4);
    assert.ok(lines.every((l) => (l.obj.value as string).length < 250));
    log.flush();
    const summary = lines.slice(4);
    assert.equal(summary.length, 6);
    assert.ok(summary.every((l) => l.msg === "text log lines left out" && l.obj.suppressed === 1));
  });
});
