// docs/cli.md stays true to the CLI: every flag that `muster <command> --help` lists is
// documented in that command's section, and the section names no flag the command lacks.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { runCli } from "./support/cli.js";

const doc = readFileSync(new URL("../../docs/cli.md", import.meta.url), "utf8");

/** The text of each `## muster <command>` section, up to the next `## `. */
function sections(): Map<string, string> {
  const out = new Map<string, string>();
  const parts = doc.split(/^## /m).slice(1);
  for (const part of parts) {
    const m = /^muster ([a-z-]+)\n/.exec(part);
    if (m) out.set(m[1]!, part);
  }
  return out;
}

const flagsIn = (text: string): Set<string> =>
  new Set([...text.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) => m[0]));

/** The section without example lines that run another command (`muster agent --server …`). */
const ownLines = (section: string, command: string): string =>
  section
    .split("\n")
    .filter((line) => !new RegExp(`^\\s*muster (?!${command}\\b)[a-z-]+`).test(line))
    .join("\n");

it("docs/cli.md documents every flag of every command, and no flag a command lacks", async () => {
  const top = await runCli(["--help"]);
  assert.equal(top.code, 0);
  const commands = [...top.out.matchAll(/^ {2}([a-z][a-z-]*) \[options\]/gm)].map((m) => m[1]!);
  assert.ok(commands.length >= 6, `commands found in --help: ${commands.join(", ")}`);
  const docs = sections();
  for (const command of commands) {
    const section = docs.get(command);
    assert.ok(section !== undefined, `docs/cli.md has no "## muster ${command}" section`);
    const help = await runCli([command, "--help"]);
    assert.equal(help.code, 0, `${command} --help`);
    const inHelp = flagsIn(help.out.split("\nOptions:")[1] ?? "");
    inHelp.delete("--help");
    const inDocs = flagsIn(ownLines(section, command));
    const undocumented = [...inHelp].filter((f) => !inDocs.has(f));
    const unknown = [...inDocs].filter((f) => !inHelp.has(f));
    assert.deepEqual(undocumented, [], `muster ${command}: flags missing from docs/cli.md`);
    assert.deepEqual(unknown, [], `muster ${command}: docs/cli.md names flags the command lacks`);
  }
});
