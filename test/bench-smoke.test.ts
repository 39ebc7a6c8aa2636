// A smoke run of the benchmarks: every scenario on every system completes and every reply
// verifies. No timing is asserted here (figures belong in bench/RESULTS.md).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { ResultRow } from "../src/bench/scenarios.js";
import { runCli } from "./support/cli.js";

const RUN = new URL("../bench/run.js", import.meta.url).pathname;
const SYSTEMS = ["muster/tcp", "muster/ws", "raw-tcp", "raw-ws", "socket.io", "grpc"];

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("exit", (code) => resolve({ code, out }));
  });
}

describe("benchmarks (smoke)", { timeout: 600_000 }, () => {
  it("npm run bench -- --quick: every scenario on every system completes with verified replies", async () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-bench-"));
    try {
      const json = join(dir, "rows.json");
      // muster over grpc and long-polling: the calls, streams and fan-outs of the next test.
      const { code, out } = await run(["--quick", "--systems", SYSTEMS.join(","), "--json", json]);
      const rows = JSON.parse(readFileSync(json, "utf8")) as ResultRow[];
      const failed = rows.filter((r) => r.error);
      assert.deepEqual(
        failed.map((r) => `${r.system} ${r.scenario} ${r.size}: ${r.error}`),
        [],
        "no scenario failed",
      );
      assert.equal(code, 0, out);
      const has = (system: string, scenario: string, size: number) =>
        rows.some((r) => r.system === system && r.scenario === scenario && r.size === size);
      for (const system of SYSTEMS) {
        for (const size of [64, 4096]) {
          for (const scenario of ["rtt", "pipe", "stream", "fanout-1k", "fanout-10k"]) {
            assert.ok(has(system, scenario, size), `${system} ${scenario} ${size} B measured`);
          }
        }
        assert.ok(has(system, "idle-mem", 0), `${system} idle-mem measured`);
      }
      for (const system of ["muster/tcp", "muster/ws"]) {
        const storm = rows.find((r) => r.system === system && r.scenario === "storm")?.metrics;
        assert.ok(storm, `${system} storm measured`);
        assert.equal(storm.callsLost, 0, "no call lost across the cut");
        assert.equal(storm.duplicates, 0, "no call handled twice");
        assert.equal(storm.expired, 0, "every session resumed");
        assert.ok(
          rows.some((r) => r.system === `${system} restart`),
          `${system} restart measured`,
        );
      }
      assert.match(out, /0 failed/);
      // Three servers over a real nats-server (skipped, saying so, where there is none).
      assert.match(
        out,
        /cluster: (fan-out to 150 agents, median [\d.]+ ms on one server, [\d.]+ ms over three servers|skipped, nats-server is not installed)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("muster over grpc:// and long-polling: calls, streams and fan-outs complete with verified replies", async () => {
    const dir = mkdtempSync(join(tmpdir(), "muster-bench-"));
    try {
      const json = join(dir, "rows.json");
      const systems = ["muster/grpc", "muster/http"];
      const scenarios = ["rtt", "pipe", "stream", "fanout-1k"];
      const r = await run([
        "--quick",
        "--systems",
        systems.join(","),
        "--scenarios",
        scenarios.join(","),
        "--sizes",
        "64",
        "--json",
        json,
      ]);
      const rows = JSON.parse(readFileSync(json, "utf8")) as ResultRow[];
      assert.deepEqual(
        rows.filter((x) => x.error).map((x) => `${x.system} ${x.scenario}: ${x.error}`),
        [],
      );
      assert.equal(r.code, 0, r.out);
      for (const system of systems)
        for (const scenario of scenarios)
          assert.ok(
            rows.some((x) => x.system === system && x.scenario === scenario),
            `${system} ${scenario} measured`,
          );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fanout-100k, with fewer agents: the server listens on four loopback addresses and the clients spread over them", async (t) => {
    if (process.platform !== "linux") {
      t.skip("needs 127.0.0.2–4 routed to loopback, as on Linux");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "muster-bench-"));
    try {
      const json = join(dir, "rows.json");
      const out = join(dir, "results.md");
      const args = ["--scenarios", "fanout-100k", "--fanout-100k-agents", "60", "--sizes", "64"];
      const r = await run([...args, "--systems", "muster/tcp,raw-tcp,grpc", "--json", json, "--out", out]);
      const rows = JSON.parse(readFileSync(json, "utf8")) as ResultRow[];
      assert.deepEqual(
        rows.map((x) => [x.system, x.scenario, x.error ?? x.skipped ?? "", x.metrics.clients]),
        [
          ["muster/tcp", "fanout-100k", "", 60],
          ["raw-tcp", "fanout-100k", "", 60],
        ],
        "muster and raw TCP measured (gRPC's benchmark server listens on one address only)",
      );
      assert.equal(r.code, 0, r.out);
      for (const x of rows) assert.ok(x.metrics.serverRssMiB! > 0 && x.metrics.serverCpuUsPerAgent! > 0);
      assert.match(r.out, /4 processes connected/);
      assert.match(
        readFileSync(out, "utf8"),
        /fanout-100k \| muster\/tcp: completes; time and server RSS recorded \| 60 agents, median/,
      );
      const bad = await run([...args.slice(0, 2), "--fanout-100k-agents", "many"]);
      assert.equal(bad.code, 2, "a malformed count is a usage error");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("muster bench --quick --json through the CLI", async () => {
    const r = await runCli(
      [
        "bench",
        "--quick",
        "--scenarios",
        "rtt,pipe,fanout-1k",
        "--sizes",
        "64",
        "--transports",
        "tcp",
        "--json",
      ],
      120_000,
    );
    assert.equal(r.code, 0, r.err);
    const rows = JSON.parse(r.out) as ResultRow[];
    assert.deepEqual(rows.map((x) => `${x.system} ${x.scenario} ${x.size}`).sort(), [
      "muster/tcp fanout-1k 64",
      "muster/tcp pipe 64",
      "muster/tcp rtt 64",
    ]);
    for (const row of rows) {
      assert.equal(row.error, undefined);
      const headline = row.metrics.callsPerSec ?? row.metrics.medianMs;
      assert.ok(headline !== undefined && headline > 0, `${row.scenario} has a figure`);
    }
  });

  it("muster bench refuses an unknown scenario with a usage error", async () => {
    const r = await runCli(["bench", "--scenarios", "rtt,warp"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown scenario "warp"/);
  });
});
