import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isMusterError } from "../../test/support/errors.js";
import type { Logger } from "../internal/logger.js";
import { booleanFlag, durationFlag, enumFlag, formatDurationMs, RuntimeFlags } from "./flags.js";

/** A logger that keeps what was logged at info. */
function recordingLogger(): Logger & { infos: Array<{ obj: object; msg?: string }> } {
  const infos: Array<{ obj: object; msg?: string }> = [];
  const noop = (): void => {};
  const logger = {
    infos,
    trace: noop,
    debug: noop,
    warn: noop,
    error: noop,
    info: (obj: object | string, msg?: string) => {
      if (typeof obj === "object") infos.push(msg === undefined ? { obj } : { obj, msg });
    },
    isLevelEnabled: () => true,
    child: () => logger,
  };
  return logger;
}

function setup() {
  const logger = recordingLogger();
  const state = { level: "info" as string, heartbeat: 5000, trace: false };
  const flags = new RuntimeFlags(logger)
    .define({
      name: "log-level",
      description: "least severe level logged",
      parse: enumFlag("log-level", ["debug", "info", "warn"] as const),
      get: () => state.level,
      apply: (v) => {
        state.level = v;
      },
      source: "option",
    })
    .define({
      name: "heartbeat-interval",
      description: "PING interval",
      unit: "ms",
      parse: durationFlag("heartbeat-interval", 100, 60_000),
      scope: "cluster",
      get: () => state.heartbeat,
      apply: (v) => {
        state.heartbeat = v;
      },
      source: "default",
    })
    .define({
      name: "trace",
      description: "log every frame",
      parse: booleanFlag("trace"),
      get: () => state.trace,
      apply: (v) => {
        state.trace = v;
      },
      source: "default",
    });
  return { flags, state, logger };
}

describe("RuntimeFlags", () => {
  it("lists flags in definition order with value, source, unit and description", () => {
    const { flags } = setup();
    assert.deepEqual(flags.list(), [
      {
        name: "log-level",
        value: "info",
        source: "option",
        scope: "server",
        description: "least severe level logged",
      },
      {
        name: "heartbeat-interval",
        value: 5000,
        source: "default",
        scope: "cluster",
        unit: "ms",
        description: "PING interval",
      },
      { name: "trace", value: false, source: "default", scope: "server", description: "log every frame" },
    ]);
    assert.equal(flags.get("trace")?.value, false);
    assert.equal(flags.get("nope"), undefined);
  });

  it("applies every entry, marks it api, logs each change with who, and returns the new list", () => {
    const { flags, state, logger } = setup();
    const list = flags.set({ "log-level": "debug", "heartbeat-interval": "2s" }, "alice");
    assert.equal(state.level, "debug");
    assert.equal(state.heartbeat, 2000);
    assert.deepEqual(
      list.map((f) => [f.name, f.value, f.source]),
      [
        ["log-level", "debug", "api"],
        ["heartbeat-interval", 2000, "api"],
        ["trace", false, "default"],
      ],
    );
    assert.deepEqual(
      logger.infos.map((l) => l.obj),
      [
        { flag: "log-level", from: "info", to: "debug", by: "alice" },
        { flag: "heartbeat-interval", from: 5000, to: 2000, by: "alice" },
      ],
    );
  });

  it("in a cluster: cluster flags set here are passed on and shown as the cluster's; applyShared takes the others'", () => {
    const { flags, state, logger } = setup();
    const passed: Array<{ changes: unknown; who: string }> = [];
    const unshare = flags.share("s1", (changes, who) => passed.push({ changes, who }));
    const list = flags.set({ "log-level": "debug", "heartbeat-interval": "2s" }, "alice");
    assert.deepEqual(
      list.map((f) => [f.name, f.source, f.scope, f.by, f.server]),
      [
        ["log-level", "api", "server", "alice", undefined],
        ["heartbeat-interval", "cluster", "cluster", "alice", "s1"],
        ["trace", "default", "server", undefined, undefined],
      ],
    );
    assert.deepEqual(passed, [{ changes: [{ name: "heartbeat-interval", value: 2000 }], who: "alice" }]);
    // Another server's value: parsed, applied, logged once; the same value again changes nothing.
    assert.equal(flags.applyShared("heartbeat-interval", 3000, "bob", "s2"), true);
    assert.equal(state.heartbeat, 3000);
    assert.deepEqual(flags.get("heartbeat-interval"), {
      name: "heartbeat-interval",
      value: 3000,
      source: "cluster",
      scope: "cluster",
      by: "bob",
      server: "s2",
      unit: "ms",
      description: "PING interval",
    });
    assert.equal(flags.applyShared("heartbeat-interval", "3s", "bob", "s2"), false);
    assert.deepEqual(logger.infos.at(-1)?.obj, {
      flag: "heartbeat-interval",
      from: 2000,
      to: 3000,
      by: "bob",
      server: "s2",
    });
    assert.throws(() => flags.applyShared("log-level", "warn", "x", "s2"), /not a cluster flag here/);
    assert.throws(() => flags.applyShared("nope", 1, "x", "s2"), /not a cluster flag here/);
    assert.throws(() => flags.applyShared("heartbeat-interval", "soon", "x", "s2"), /is not a duration/);
    assert.equal(state.heartbeat, 3000);
    assert.equal(passed.length, 1, "what the cluster applies is not passed back to it");
    unshare();
    flags.set({ "heartbeat-interval": "4s" }, "carol");
    assert.equal(flags.get("heartbeat-interval")?.source, "api");
    assert.equal(passed.length, 1);
  });

  it("applies nothing when one entry is invalid, and names it", () => {
    const { flags, state, logger } = setup();
    assert.throws(
      () => flags.set({ "log-level": "debug", "heartbeat-interval": "soon" }, "bob"),
      isMusterError("INVALID_ARGUMENT", /^heartbeat-interval: "soon" is not a duration/),
    );
    assert.equal(state.level, "info");
    assert.equal(flags.get("log-level")?.source, "option");
    assert.deepEqual(logger.infos, []);
  });

  it("refuses unknown names, naming them and listing the known flags", () => {
    const { flags, state } = setup();
    assert.throws(
      () => flags.set({ "log-level": "debug", "log-levle": "x" }, "bob"),
      isMusterError(
        "INVALID_ARGUMENT",
        'unknown flag "log-levle"; the flags are log-level, heartbeat-interval, trace',
      ),
    );
    assert.throws(
      () => flags.set({ a: 1, b: 2 }, "bob"),
      isMusterError("INVALID_ARGUMENT", /^unknown flags "a", "b"; /),
    );
    assert.equal(state.level, "info");
  });

  it("puts back what it changed when an apply throws", () => {
    const { flags, state } = setup();
    flags.define({
      name: "broken",
      description: "",
      parse: (v) => v,
      get: () => 0,
      apply: () => {
        throw new Error("boom");
      },
      source: "default",
    });
    assert.throws(
      () => flags.set({ "log-level": "warn", broken: 1 }, "bob"),
      isMusterError("INTERNAL", "boom"),
    );
    assert.equal(state.level, "info");
    assert.equal(flags.get("log-level")?.source, "option");
  });

  it("wraps a parser's plain Error as INVALID_ARGUMENT naming the flag", () => {
    const flags = new RuntimeFlags(recordingLogger()).define({
      name: "odd",
      description: "",
      parse: () => {
        throw new Error("must be odd");
      },
      get: () => 1,
      apply: () => {},
      source: "default",
    });
    assert.throws(() => flags.set({ odd: 2 }, "x"), isMusterError("INVALID_ARGUMENT", "odd: must be odd"));
  });

  it("refuses a name that is not kebab-case and a name defined twice", () => {
    const { flags } = setup();
    const def = { description: "", parse: (v: unknown) => v, get: () => 0, apply: () => {} };
    assert.throws(
      () => flags.define({ ...def, name: "LogLevel", source: "default" }),
      isMusterError("INVALID_ARGUMENT", 'flag name "LogLevel" is not kebab-case'),
    );
    assert.throws(
      () => flags.define({ ...def, name: "trace", source: "default" }),
      isMusterError("INVALID_ARGUMENT", "flag trace is defined twice"),
    );
  });
});

describe("flag parsers", () => {
  const d = durationFlag("resume-window", 1000, 3_600_000);

  it("durationFlag: milliseconds or a number and a unit, range-checked", () => {
    assert.equal(d(1500), 1500);
    assert.equal(d(1500.4), 1500);
    assert.equal(d("250000ms"), 250_000);
    assert.equal(d("5s"), 5000);
    assert.equal(d("1.5s"), 1500);
    assert.equal(d(" 2m "), 120_000);
    assert.equal(d("1h"), 3_600_000);
    assert.throws(
      () => d("999ms"),
      isMusterError("INVALID_ARGUMENT", 'resume-window: "999ms" is out of range; give 1s to 1h'),
    );
    assert.throws(
      () => d(3_600_001),
      isMusterError("INVALID_ARGUMENT", "resume-window: 3600001 is out of range; give 1s to 1h"),
    );
    // A bare number is milliseconds, as a JSON number is.
    assert.equal(d("5000"), 5000);
    assert.throws(
      () => d("5"),
      isMusterError("INVALID_ARGUMENT", 'resume-window: "5" is out of range; give 1s to 1h'),
    );
    for (const bad of [
      "five",
      "5 s",
      "5d",
      "-5s",
      "",
      "1e3ms",
      true,
      null,
      [],
      {},
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ])
      assert.throws(
        () => d(bad),
        isMusterError(
          "INVALID_ARGUMENT",
          /^resume-window: .* is not a duration; give a number of milliseconds/,
        ),
      );
    assert.throws(
      () => d(undefined),
      isMusterError("INVALID_ARGUMENT", /^resume-window: nothing is not a duration/),
    );
  });

  it("booleanFlag: true/false and their usual spellings", () => {
    const b = booleanFlag("trace");
    for (const yes of [true, "true", "on", "yes", "1", "TRUE"]) assert.equal(b(yes), true);
    for (const no of [false, "false", "off", "no", "0"]) assert.equal(b(no), false);
    assert.throws(
      () => b("maybe"),
      isMusterError("INVALID_ARGUMENT", 'trace: "maybe" is not a boolean; give true or false'),
    );
    assert.throws(
      () => b(1),
      isMusterError("INVALID_ARGUMENT", "trace: 1 is not a boolean; give true or false"),
    );
  });

  it("enumFlag: one of the values, exactly", () => {
    const e = enumFlag("log-level", ["debug", "info"] as const);
    assert.equal(e("debug"), "debug");
    assert.throws(
      () => e("DEBUG"),
      isMusterError("INVALID_ARGUMENT", 'log-level: "DEBUG" is not one of debug, info'),
    );
    assert.throws(() => e(2), isMusterError("INVALID_ARGUMENT", "log-level: 2 is not one of debug, info"));
  });

  it("messages clip long values", () => {
    assert.throws(
      () => d("x".repeat(500)),
      (err: Error) => err.message.length < 250,
    );
  });

  it("formatDurationMs uses the largest exact unit", () => {
    assert.deepEqual([0, 250, 1000, 1500, 60_000, 90_000, 3_600_000].map(formatDurationMs), [
      "0ms",
      "250ms",
      "1s",
      "1500ms",
      "1m",
      "90s",
      "1h",
    ]);
  });
});
