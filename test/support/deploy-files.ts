// Readers of the deployment files under deploy/ (systemd units, a Dockerfile) for the tests
// that check them: their directives, their command lines, and the paths they name, moved under
// a root of the test's own.
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

/** The repository's root (this file runs from dist/test/support/). */
export const REPO = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");

/** Every file under `dir`, as paths relative to the repository. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(REPO, p));
    }
  };
  walk(join(REPO, dir));
  return out;
}

/** The blocks of a Markdown document marked `<!-- include: PATH -->` right above their fence. */
export function includedBlocks(markdown: string): Array<{ path: string; text: string; line: number }> {
  const out: Array<{ path: string; text: string; line: number }> = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- include: (\S+) -->$/.exec(lines[i]!);
    if (!m) continue;
    const fence = /^(`{3,})[\w-]*$/.exec(lines[i + 1] ?? "");
    if (!fence) throw new Error(`line ${i + 1}: "include: ${m[1]}" is not right above a fence`);
    const body: string[] = [];
    let j = i + 2;
    for (; j < lines.length && lines[j] !== fence[1]; j++) body.push(lines[j]!);
    out.push({ path: m[1]!, text: `${body.join("\n")}\n`, line: i + 1 });
    i = j;
  }
  return out;
}

/** `KEY=value` lines of an INI-style file (a systemd unit), continuation lines joined. */
export function unitDirectives(text: string): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";") || line.startsWith("[")) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    const eq = line.indexOf("=");
    out.push({ key: line.slice(0, eq), value: line.slice(eq + 1) });
  }
  return out;
}

/** A command line of a unit as systemd splits it: words, quotes removed, `%i` made `instance`. */
export function unitCommand(value: string, instance: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of value.matchAll(re)) words.push(m[1] ?? m[2] ?? m[3]!);
  // Prefixes that change how systemd runs the command, not what it runs.
  words[0] = words[0]!.replace(/^[-@:+!]+/, "");
  return words.map((w) => w.replace(/%([iI%])/g, (_, c: string) => (c === "%" ? "%" : instance)));
}

/** The instructions of a Dockerfile, continuation lines joined: `[INSTRUCTION, rest]`. */
export function dockerInstructions(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    while (line.endsWith("\\") && i + 1 < lines.length)
      line = `${line.slice(0, -1).trimEnd()} ${lines[++i]!.trim()}`;
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (m) out.push([m[1]!, m[2]!]);
  }
  return out;
}

/** The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK … CMD. */
export function execForm(rest: string): string[] {
  const json = rest.slice(rest.indexOf("["));
  return JSON.parse(json) as string[];
}

/** `ENV A=1 B=2` as pairs. */
export function envPairs(rest: string): Array<[string, string]> {
  return [...rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)].map((m) => [
    m[1]!,
    m[2]!.replace(/^"(.*)"$/, "$1"),
  ]);
}

/**
 * Moves the machine paths muster's deployment uses (/etc/muster, /var/lib/muster,
 * /var/log/muster, /run/muster…) under `root`, wherever they appear in `text`.
 */
export function underRoot(text: string, root: string): string {
  return text.replace(/(^|[\s:="'])\/(etc|var\/lib|var\/log|run)\/muster/g, `$1${root}/$2/muster`);
}
