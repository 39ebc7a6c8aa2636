// Every command's --help ends with examples that use only its own flags, and lists the
// environment variables it reads.
import assert from "node:assert/strict";
import { it } from "node:test";
import { runCli } from "./support/cli.js";

/** The subcommands a help text lists under "Commands:". */
function subcommands(help: string): string[] {
  const section = /\nCommands:\n([\s\S]*?)(\n\n|$)/.exec(help)?.[1] ?? "";
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]!).filter((c) => c !== "help");
}

/** Every command path of the CLI, groups included: ["server"], ["token", "create"], … */
async function commandPaths(): Promise<string[][]> {
  const paths: string[][] = [];
  const walk = async (path: string[]): Promise<void> => {
    const help = (await runCli([...path, "--help"])).out;
    if (path.length > 0) paths.push(path);
    for (const sub of subcommands(help)) await walk([...path, sub]);
  };
  await walk([]);
  return paths;
}

/** The example lines of a help text (its "Examples:" section, or "Example:"). */
function examples(help: string): string[] {
  const section = /\nExamples?:\n([\s\S]*?)(\n\n|$)/.exec(help)?.[1] ?? "";
  return section
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("muster ") || l.startsWith("printf") || l.startsWith("#"));
}

it("every command's --help has examples, and each uses only flags of that command", async () => {
  const paths = await commandPaths();
  assert.ok(paths.length >= 20, `commands found: ${paths.map((p) => p.join(" ")).join(", ")}`);
  for (const path of paths) {
    const name = `muster ${path.join(" ")}`;
    const help = (await runCli([...path, "--help"])).out;
    const lines = examples(help).filter((l) => l.startsWith(`${name} `) || l === name);
    assert.ok(lines.length > 0, `${name} --help has no example of ${name}`);
    // The flags its "Options:" section lists (not the examples' own).
    const options = /\nOptions:\n([\s\S]*?)(\n\n|$)/.exec(help)?.[1] ?? "";
    const flags = new Set(
      [...options.matchAll(/(?:^|[\s,])(--[a-z][a-z-]*|-[a-zA-Z])\b/gm)].map((m) => m[1]!),
    );
    const subs = subcommands(help);
    for (const line of lines) {
      // An example of a subcommand is checked against the subcommand's own flags.
      if (subs.includes(line.slice(name.length + 1).split(" ")[0]!)) continue;
      // Flags of the example itself, not of what it pipes into.
      const own = line.split(/\s[|#]\s/)[0]!;
      for (const m of own.matchAll(/\s(--[a-z][a-z-]*|-[a-zA-Z])(?=[\s=]|$)/g))
        assert.ok(
          flags.has(m[1]!),
          `${name}: the example "${line}" uses ${m[1]}, which ${name} does not take`,
        );
    }
  }
});

it("--help lists the environment variables: all of them at the top, each command's own below it", async () => {
  const top = (await runCli(["--help"])).out;
  for (const v of [
    "MUSTER_SERVER",
    "MUSTER_TOKEN",
    "MUSTER_ADMIN",
    "MUSTER_HOME",
    "MUSTER_CONFIG",
    "FINCH_DSN",
  ])
    assert.match(top, new RegExp(`\\nEnvironment:\\n[\\s\\S]*^  ${v}\\s+\\S`, "m"), v);
  const call = (await runCli(["call", "--help"])).out;
  assert.match(call, /\nEnvironment:\n( {2}.*\n?)* {2}MUSTER_SERVER\s+server URL/);
  assert.match(call, /\nEnvironment:\n( {2}.*\n?)* {2}MUSTER_TOKEN\s/);
  assert.doesNotMatch(call, /\nEnvironment:\n( {2}.*\n?)* {2}FINCH_DSN/, "call reads no Finch variable");
  const run = (await runCli(["run", "--help"])).out;
  assert.match(run, /\nEnvironment:\n( {2}.*\n?)* {2}FINCH_DSN\s/);
});
