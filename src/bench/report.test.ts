import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkTargets, renderTables } from "./report.js";
import type { ResultRow } from "./scenarios.js";

const fan = (system: string, medianMs: number, serverCpuUsPerAgent: number): ResultRow => ({
  scenario: "fanout-10k",
  system,
  size: 64,
  metrics: { clients: 10_000, rounds: 20, medianMs, serverCpuUsPerAgent, serverRssMiB: 150 },
});

describe("bench report", () => {
  it("checks fan-out CPU and median against the raw baseline of the same transport", () => {
    const rows = [
      fan("muster/tcp", 220, 30),
      fan("raw-tcp", 200, 27),
      fan("muster/ws", 300, 40),
      fan("raw-ws", 250, 30),
    ];
    const t = checkTargets(rows).filter((x) => x.scenario === "fanout-10k");
    const get = (target: string) => t.find((x) => x.target === target);
    assert.deepEqual(get("muster/tcp server CPU per agent ≤ 1.2 × raw-tcp's"), {
      scenario: "fanout-10k",
      target: "muster/tcp server CPU per agent ≤ 1.2 × raw-tcp's",
      measured: "1.11×",
      met: true,
    });
    assert.equal(get("muster/tcp median ≤ 1.1 × raw-tcp's")?.met, true);
    assert.equal(get("muster/ws server CPU per agent ≤ 1.2 × raw-ws's")?.measured, "1.33×");
    assert.equal(get("muster/ws server CPU per agent ≤ 1.2 × raw-ws's")?.met, false);
    assert.equal(get("muster/ws: every round completes, median ≤ 250 ms")?.met, false);
  });

  it("a scenario the machine could not run is shown as not run, neither met nor failed", () => {
    const why = "needs 100,000 connections in one server process; its descriptor limit (ulimit -n) is 20000";
    const rows: ResultRow[] = [
      { scenario: "fanout-100k", system: "muster/tcp", size: 0, metrics: {}, skipped: why },
      { scenario: "fanout-100k", system: "raw-tcp", size: 0, metrics: {}, skipped: why },
    ];
    const t = checkTargets(rows).find(
      (x) => x.scenario === "fanout-100k" && x.target.startsWith("muster/tcp"),
    );
    assert.deepEqual(t, {
      scenario: "fanout-100k",
      target: "muster/tcp: completes; time and server RSS recorded",
      measured: `not run: ${why}`,
      met: undefined,
    });
    const table = renderTables(rows);
    assert.match(table, /\| muster\/tcp \| not run: needs 100,000 connections/);
    assert.doesNotMatch(table, /vs raw/, "no ratio column without a measured baseline");
  });

  it("fanout-100k that ran: agents, median and RSS; one that failed is not met", () => {
    const ran: ResultRow = {
      scenario: "fanout-100k",
      system: "muster/ws",
      size: 64,
      metrics: { clients: 100_000, medianMs: 2400.4, serverRssMiB: 1210.2, serverCpuUsPerAgent: 31 },
    };
    const failed: ResultRow = {
      scenario: "fanout-100k",
      system: "muster/tcp",
      size: 0,
      metrics: {},
      error: "x",
    };
    const t = checkTargets([ran, failed]).filter((x) => x.scenario === "fanout-100k");
    assert.deepEqual(
      t.map((x) => [x.target.split(":")[0], x.measured, x.met]),
      [
        ["muster/tcp", "failed", false],
        ["muster/ws", "100000 agents, median 2400 ms, server RSS 1210 MiB", true],
      ],
    );
  });
});
