import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  checkSchedule,
  formatSchedule,
  parseSchedule,
  ScheduleError,
  type ScheduleStep,
} from "./schedule.js";
import { formatDuration, formatRate, parseDurationText, parseRateText } from "./units.js";

describe("schedule grammar", () => {
  it("parses golden specs into steps", () => {
    const golden: [string, ScheduleStep[]][] = [
      [
        "5s blackhole 3s; 12s cut; 20s reset; 25s latency 200ms",
        [
          { atMs: 5000, kind: "blackhole", forMs: 3000 },
          { atMs: 12_000, kind: "cut" },
          { atMs: 20_000, kind: "reset" },
          { atMs: 25_000, kind: "latency", ms: 200 },
        ],
      ],
      ["0ms cut", [{ atMs: 0, kind: "cut" }]],
      [
        "  1.5s   blackhole ;2m restore;  ",
        [
          { atMs: 1500, kind: "blackhole" },
          { atMs: 120_000, kind: "restore" },
        ],
      ],
      [
        "1s latency 50ms jitter 20ms; 1s jitter 5ms; 2s latency 0ms",
        [
          { atMs: 1000, kind: "latency", ms: 50, jitterMs: 20 },
          { atMs: 1000, kind: "jitter", ms: 5 },
          { atMs: 2000, kind: "latency", ms: 0 },
        ],
      ],
      [
        "1s bandwidth 64KB/s; 2s bandwidth 1MiB; 3s bandwidth 500B/s; 4s bandwidth off",
        [
          { atMs: 1000, kind: "bandwidth", bytesPerSec: 64_000 },
          { atMs: 2000, kind: "bandwidth", bytesPerSec: 1_048_576 },
          { atMs: 3000, kind: "bandwidth", bytesPerSec: 500 },
          { atMs: 4000, kind: "bandwidth", bytesPerSec: null },
        ],
      ],
      [
        "1h cut; 1d reset",
        [
          { atMs: 3_600_000, kind: "cut" },
          { atMs: 86_400_000, kind: "reset" },
        ],
      ],
    ];
    for (const [spec, steps] of golden) {
      assert.deepEqual(parseSchedule(spec), steps, spec);
      checkSchedule(steps);
    }
  });

  it("formats a schedule back to a canonical spec that parses to the same steps", () => {
    const spec =
      "5s blackhole 3s; 12s cut; 20s reset; 25s latency 200ms jitter 1500ms; 26s jitter 0ms; 30s bandwidth 1MB/s; 31s bandwidth 64KiB/s; 40s bandwidth off; 1m restore; 1m blackhole";
    assert.equal(formatSchedule(parseSchedule(spec)), spec);
    assert.equal(formatSchedule(parseSchedule("5000ms blackhole 3000ms;")), "5s blackhole 3s");
  });

  it("refuses malformed specs, naming the step and what was expected", () => {
    const bad: [string, number, RegExp][] = [
      ["", 0, /the spec is empty/],
      ["   ", 0, /the spec is empty/],
      ["5s cut;; 6s reset", 2, /step 2 "": the step is empty; expected a time and an action/],
      [
        "5s blackhole 3s; 12s cutt",
        2,
        /step 2 "12s cutt": unknown action "cutt"; expected cut, reset, blackhole/,
      ],
      ["cut", 1, /step 1 "cut": the time: "cut" is not a duration/],
      ["5 cut", 1, /step 1 "5 cut": the time: "5" has no unit/],
      ["5sec cut", 1, /the time: "5sec" has an unknown unit "sec"/],
      ["-5s cut", 1, /the time: "-5s" is negative/],
      ["5s", 1, /step 1 "5s": expected an action after the time/],
      ["5s cut now", 1, /step 1 "5s cut now": unexpected "now" after "cut"/],
      ["5s blackhole 3s 4s", 1, /unexpected "4s" after "blackhole 3s"/],
      ["5s blackhole 0s", 1, /a black-hole of 0 lasts no time/],
      ["5s blackhole soon", 1, /the black-hole duration: "soon" is not a duration/],
      ["1s cut; 5s latency", 2, /step 2 "5s latency": expected the latency after "latency"/],
      [
        "5s latency 20ms wobble 5ms",
        1,
        /unexpected "wobble" after the latency; expected "jitter <duration>"/,
      ],
      ["5s latency 20ms jitter", 1, /expected the jitter after "jitter"/],
      ["5s jitter -1ms", 1, /the jitter: "-1ms" is negative/],
      ["5s bandwidth", 1, /expected a rate after "bandwidth", e\.g\. 1MB\/s, or "off"/],
      ["5s bandwidth 1Mbit/s", 1, /unknown unit "Mbit" \(bandwidth is in bytes/],
      ["5s bandwidth 0B/s", 1, /below 1 B\/s/],
      ["5s bandwidth fast", 1, /the bandwidth: "fast" is not a bandwidth/],
      ["12s cut; 5s reset", 2, /step 2 "5s reset": at 5s, before step 1 at 12s; steps must be in time order/],
      ["5s CUT", 1, /unknown action "CUT"/],
    ];
    for (const [spec, step, message] of bad) {
      assert.throws(
        () => parseSchedule(spec),
        (err: unknown) => {
          assert.ok(err instanceof ScheduleError, `${spec}: a ScheduleError`);
          assert.equal(err.step, step, `${spec}: step number`);
          assert.match(err.message, message, spec);
          return true;
        },
      );
    }
  });

  it("checks schedules given as objects", () => {
    assert.throws(() => checkSchedule([{ atMs: -1, kind: "cut" }]), /step 1 .*atMs must be/);
    assert.throws(
      () =>
        checkSchedule([
          { atMs: 5, kind: "cut" },
          { atMs: 4, kind: "reset" },
        ]),
      /step 2 .*time order/,
    );
    assert.throws(() => checkSchedule([{ atMs: 1, kind: "blackhole", forMs: 0 }]), /forMs must be above 0/);
    assert.throws(() => checkSchedule([{ atMs: 1, kind: "bandwidth", bytesPerSec: 0 }]), /bytesPerSec/);
    assert.throws(
      () => checkSchedule([{ atMs: 1, kind: "explode" } as unknown as ScheduleStep]),
      /unknown kind "explode"/,
    );
  });
});

describe("durations and rates", () => {
  it("parses and formats durations", () => {
    assert.equal(parseDurationText("500ms"), 500);
    assert.equal(parseDurationText("1.5s"), 1500);
    assert.equal(parseDurationText("2m"), 120_000);
    assert.equal(parseDurationText("0.0004s"), 0);
    assert.throws(() => parseDurationText("30d"), /too long/);
    assert.throws(() => parseDurationText("+3s"), /no sign allowed/);
    assert.throws(() => parseDurationText("3 s"), /is not a duration/);
    assert.deepEqual([0, 1, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 86_400_000].map(formatDuration), [
      "0ms",
      "1ms",
      "999ms",
      "1s",
      "1500ms",
      "1m",
      "90s",
      "1h",
      "1d",
    ]);
  });

  it("parses and formats rates", () => {
    assert.equal(parseRateText("1MB/s"), 1_000_000);
    assert.equal(parseRateText("1MB"), 1_000_000);
    assert.equal(parseRateText("64kB/s"), 64_000);
    assert.equal(parseRateText("1.5KiB/s"), 1536);
    assert.equal(parseRateText("2GB/s"), 2_000_000_000);
    assert.throws(() => parseRateText("100"), /"100" has no unit/);
    assert.throws(() => parseRateText("-1MB/s"), /is negative/);
    assert.throws(() => parseRateText("1MB/m"), /is not a bandwidth/);
    assert.throws(() => parseRateText("1TB/s"), /unknown unit "TB"/);
    assert.deepEqual([1, 1000, 1024, 1500, 64_000, 1_048_576, 3_000_000].map(formatRate), [
      "1B/s",
      "1KB/s",
      "1KiB/s",
      "1500B/s",
      "64KB/s",
      "1MiB/s",
      "3MB/s",
    ]);
  });
});
