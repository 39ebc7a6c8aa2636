// The short soak: the same run as `npm run soak`, smaller and shorter, with a fixed seed. It
// runs alone (its name): its checks hold a cluster of three servers to exact counts, and another
// test file starving the same two cores of CPU for seconds is not what it measures.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { formatReport, runSoak, SOAK_DEFAULTS } from "../src/soak/run.js";
import { natsServerMissing } from "./support/nats-server.js";

describe("soak (short)", () => {
  // Over grpc: the cluster soak below runs over tcp, and the links' transport is all that differs.
  it("60 agents over grpc in 2 processes through 8 s of random faults: nothing lost, repeated or reordered", async () => {
    const seed = 20_261_121;
    const report = await runSoak({
      ...SOAK_DEFAULTS,
      transport: "grpc",
      durationMs: 8000,
      agents: 60,
      processes: 2,
      seed,
      log: () => {},
    });
    const text = formatReport(report).join("\n");
    console.log(text);
    assert.equal(report.seed, seed);
    assert.ok(report.checks.length >= 8, "every check ran");
    for (const c of report.checks) assert.ok(c.ok, `${c.name}: ${c.detail} (seed ${seed})`);
    assert.ok(report.agentEvents.resumed! > 0, "some links were dropped and resumed");
    assert.ok(report.ok);
  });

  it("--servers 3 through the CLI: a cluster with a server killed and one drained, every check passed", {
    skip: natsServerMissing(),
  }, async () => {
    const main = new URL("../src/soak/main.js", import.meta.url).pathname;
    const child = spawn(
      process.execPath,
      [
        main,
        "--servers",
        "3",
        "--duration",
        "9s",
        "--agents",
        "60",
        "--processes",
        "2",
        "--seed",
        "20261202",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    console.log(out);
    assert.equal(code, 0, out);
    assert.match(out, /soak passed/);
    assert.match(out, /cluster: 3 servers; s2 killed holding [1-9]\d* agents/);
    assert.match(out, /ok {5}the drain handed every session over/);
    assert.doesNotMatch(out, /FAILED/);
  });

  it("npm run soak rejects a bad flag with a precise message and exit status 2", () => {
    const main = new URL("../src/soak/main.js", import.meta.url).pathname;
    for (const [args, pattern] of [
      [["--duration", "soon"], /--duration: /],
      [["--agents", "0"], /--agents must be an integer ≥ 1, got "0"/],
      [["--seed", "99999999999"], /--seed must be at most 4294967295/],
      [["--bogus"], /Unknown option '--bogus'/],
      [["--servers", "2"], /--servers: a cluster soak needs 3 servers or more/],
      [["--transport", "udp"], /--transport must be one of tcp, ws, grpc, http, got "udp"/],
    ] as const) {
      const r = spawnSync(process.execPath, [main, ...args], { encoding: "utf8" });
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.match(r.stderr, /usage: npm run soak/);
    }
  });
});
