// `muster flags` says where each runtime flag's value came from: `default` unless it was given
// when the server started (`option`).
import assert from "node:assert/strict";
import { it } from "node:test";
import { runCli, startCli } from "./support/cli.js";

async function sources(extra: string[]): Promise<Record<string, string>> {
  const server = startCli([
    "server",
    "--standalone",
    "--listen",
    "tcp://127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    ...extra,
  ]);
  try {
    await server.waitFor(/admin on http:\/\/\S+/);
    const admin = /admin on (http:\/\/\S+)/.exec(server.out)![1]!;
    const r = await runCli(["flags", "--admin", admin, "--json"]);
    assert.equal(r.code, 0, r.err);
    const flags = JSON.parse(r.out) as Array<{ name: string; source: string }>;
    return Object.fromEntries(flags.map((f) => [f.name, f.source]));
  } finally {
    server.child.kill("SIGKILL");
    await server.exited;
  }
}

it("flags never given are default; given ones are option", async () => {
  const none = await sources([]);
  for (const name of ["log-level", "heartbeat-interval", "resume-window", "call-timeout", "drain-timeout"])
    assert.equal(none[name], "default", `${name} without a flag`);
  const some = await sources(["--heartbeat", "3s", "--log-level", "debug", "--drain-timeout", "4s"]);
  assert.equal(some["heartbeat-interval"], "option");
  assert.equal(some["log-level"], "option");
  assert.equal(some["drain-timeout"], "option");
  assert.equal(some["call-timeout"], "default");
});
