// --help shows every default in the unit the flag takes: what it shows can be typed back.
import assert from "node:assert/strict";
import { it } from "node:test";
import { runCli } from "./support/cli.js";

it("duration and size defaults are shown with their unit, the form the flags take", async () => {
  const top = await runCli(["--help"]);
  const commands = [...top.out.matchAll(/^ {2}([a-z][a-z-]*) \[options\]/gm)].map((m) => m[1]!);
  for (const command of commands) {
    const help = (await runCli([command, "--help"])).out.replace(/\n\s+/g, " ");
    for (const m of help.matchAll(/--([a-z-]+) <(duration|size)>[^-]*?\(default: ([^)]+)\)/g)) {
      const [, flag, kind, shown] = m;
      assert.doesNotMatch(
        shown!,
        /^\d{3,}$/,
        `muster ${command} --${flag}: the default ${shown} has no unit`,
      );
      if (kind === "duration")
        assert.match(shown!, /^(0|none|\d+(ms|s|m|h|d))$/, `muster ${command} --${flag}: ${shown}`);
    }
  }
  const server = (await runCli(["server", "--help"])).out.replace(/\n\s+/g, " ");
  assert.match(server, /--heartbeat <duration>\s+PING interval on idle links \(default: 5s\)/);
  assert.match(server, /\(default: 1MiB\)/);
});
