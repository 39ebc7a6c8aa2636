import { closeSync, openSync, readSync } from "node:fs";
import { type Command, Option } from "commander";
import { isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { EXIT, fail } from "./common.js";
import { collectList, parseLabel } from "./parse.js";

/*
 * Config files of `muster server` and `muster agent`: a YAML mapping whose keys are the
 * command's long flag names and whose values are what the flags take, read through the flags'
 * own parsers. A value from the file stands for a flag that was not given on the command line
 * or in the environment: flag > environment variable > file > default.
 */

/** The largest config file read; a larger one is refused before it is parsed. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Flags that only make sense on the command line. */
const COMMAND_LINE_ONLY = new Set(["config", "check-config"]);

/** A config file that cannot be used: its name, the line at fault when there is one, and why. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly reason: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ""}: ${reason}`);
    this.name = "ConfigError";
  }
}

/** The value one key of the file gives its option, as the option's parser made it. */
export interface ConfigValue {
  option: Option;
  value: unknown;
  line: number;
}

/**
 * Checks of a repeatable option's items beyond its parser, by key (`server: parseServerUrl`),
 * so that a bad item is refused with its line. Each throws an Error saying what is wrong.
 */
export type ConfigChecks = Readonly<Record<string, (item: string) => unknown>>;

/**
 * The text of a config file, read up to `maxBytes` (a larger file, or a device that never ends,
 * is refused without reading more). Throws a ConfigError for a file that cannot be read, is too
 * large, or is not UTF-8.
 */
export function readConfigText(file: string, maxBytes = MAX_CONFIG_BYTES): string {
  const buffer = Buffer.alloc(maxBytes + 1);
  let length = 0;
  try {
    const fd = openSync(file, "r");
    try {
      for (;;) {
        const n = readSync(fd, buffer, length, buffer.length - length, null);
        length += n;
        if (n === 0 || length === buffer.length) break;
      }
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const what = e.code !== undefined ? `${e.code}${ERRNO_TEXT[e.code] ?? ""}` : e.message;
    throw new ConfigError(file, undefined, `cannot read the config file: ${what}`);
  }
  if (length > maxBytes)
    throw new ConfigError(
      file,
      undefined,
      `the config file is larger than the ${sizeText(maxBytes)} allowed`,
    );
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, length));
  } catch {
    throw new ConfigError(file, undefined, "the config file is not UTF-8 text");
  }
}

/** What the usual reasons a file cannot be read mean, in words. */
const ERRNO_TEXT: Record<string, string> = {
  ENOENT: " (no such file)",
  EACCES: " (permission denied)",
  EISDIR: " (a directory, not a file)",
};

function sizeText(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

/** How a YAML value maps onto an option: a flag, one value, a list of values, or labels. */
type Shape = "flag" | "one" | "list" | "labels";

function shapeOf(option: Option): Shape {
  if (option.isBoolean()) return "flag";
  if (option.parseArg === parseLabel) return "labels";
  if (option.parseArg === collectList) return "list";
  return "one";
}

/**
 * Reads `text` (the contents of `file`) against the options of a command: every key must be
 * one of their long names, and every value one its option takes. Returns each option's parsed
 * value by attribute name (`heartbeat`, `logLevel`). Throws a ConfigError naming the file and
 * the line for YAML that does not parse, a key that is no flag (with the nearest flag name
 * when one is close), a value of the wrong shape, or a value the option's parser refuses
 * (with the parser's own message, as for the flag).
 */
export function parseConfig(
  text: string,
  file: string,
  options: readonly Option[],
  checks: ConfigChecks = {},
): Map<string, ConfigValue> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const lineAt = (offset: number): number => lines.linePos(offset).line;
  const lineOf = (node: unknown): number => {
    const range = (node as Node | null)?.range;
    return range ? lineAt(range[0]) : 1;
  };
  const error = doc.errors[0];
  if (error !== undefined)
    throw new ConfigError(file, lineAt(error.pos[0]), `not valid YAML: ${error.message}`);
  const byName = new Map<string, Option>();
  for (const o of options) if (o.long !== undefined && !o.negate) byName.set(o.long.slice(2), o);
  const out = new Map<string, ConfigValue>();
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return out;
  if (!isMap(root))
    throw new ConfigError(
      file,
      lineOf(root),
      'the config file must be a mapping of flag names to values, e.g. "heartbeat: 5s"',
    );
  const resolve = (node: unknown): unknown => (isAlias(node) ? node.resolve(doc) : node);
  for (const pair of root.items) {
    const keyNode = pair.key;
    const keyLine = lineOf(keyNode);
    if (!isScalar(keyNode) || typeof keyNode.value !== "string")
      throw new ConfigError(file, keyLine, "a key must be a flag name, e.g. heartbeat");
    const key = keyNode.value;
    if (COMMAND_LINE_ONLY.has(key))
      throw new ConfigError(file, keyLine, `${key} goes on the command line only, not in a config file`);
    const option = byName.get(key);
    if (option === undefined) throw new ConfigError(file, keyLine, unknownKey(key, [...byName.keys()]));
    const line = pair.value !== null ? lineOf(pair.value) : keyLine;
    const value = optionValue(key, option, resolve(pair.value), line, {
      file,
      lineOf,
      resolve,
      check: checks[key],
    });
    out.set(option.attributeName(), { option, value, line });
  }
  return out;
}

interface ValueContext {
  file: string;
  lineOf(node: unknown): number;
  /** An alias's node; any other node as it is. */
  resolve(node: unknown): unknown;
  check: ((item: string) => unknown) | undefined;
}

/** The value of one key, as its option's parser makes it from the YAML node. */
function optionValue(key: string, option: Option, node: unknown, line: number, c: ValueContext): unknown {
  const shape = shapeOf(option);
  const bad = (at: number, why: string): ConfigError => new ConfigError(c.file, at, `${key}: ${why}`);
  if (node === null || node === undefined || (isScalar(node) && node.value === null))
    throw bad(line, "no value: give one, or leave the key out");
  if (shape === "flag") {
    if (isScalar(node) && typeof node.value === "boolean") return node.value;
    throw bad(line, `${describe(node)} is not true or false (it is a flag: true sets it)`);
  }
  const items: Array<{ text: string; line: number }> = [];
  if (isScalar(node)) items.push({ text: scalarText(node), line });
  else if (isSeq(node)) {
    if (shape === "one") throw bad(line, "give one value, not a list");
    for (const written of node.items) {
      const at = c.lineOf(written);
      const item = c.resolve(written);
      if (!isScalar(item) || item.value === null)
        throw bad(at, `each item must be one value, not ${describe(item)}`);
      items.push({ text: scalarText(item), line: at });
    }
  } else if (isMap(node)) {
    if (shape === "list") throw bad(line, "give a value or a list of values, not a mapping");
    if (shape === "one") throw bad(line, "give one value, not a mapping");
    for (const pair of node.items) {
      const at = c.lineOf(pair.key);
      const name = c.resolve(pair.key);
      const value = c.resolve(pair.value);
      if (!isScalar(name) || !(value === null || isScalar(value)))
        throw bad(at, "each label is key: value, e.g. role: web");
      const text = value === null || value.value === null ? "" : scalarText(value);
      items.push({ text: `${scalarText(name)}=${text}`, line: at });
    }
  } else throw bad(line, `${describe(node)} is not a value`);
  let value: unknown;
  for (const item of items) {
    try {
      const before = Array.isArray(value) ? value.length : 0;
      value = option.parseArg ? option.parseArg(item.text, value) : item.text;
      if (c.check !== undefined)
        for (const added of Array.isArray(value) ? value.slice(before) : [value]) c.check(String(added));
    } catch (err) {
      throw bad(item.line, (err as { rawMessage?: string }).rawMessage ?? (err as Error).message);
    }
  }
  return value;
}

/** A scalar as it was written (without quotes): what the flag would have been given. */
function scalarText(node: { source?: string; value: unknown }): string {
  return node.source ?? String(node.value);
}

function describe(node: unknown): string {
  if (isSeq(node)) return "a list";
  if (isMap(node)) return "a mapping";
  if (isScalar(node)) return JSON.stringify(scalarText(node));
  return "this";
}

/** `unknown key "hearbeat"; did you mean "heartbeat"?`, or the way to see the keys. */
function unknownKey(key: string, names: string[]): string {
  const kebab = key
    .replace(/([a-z0-9])([A-Z])/g, "$1-$2")
    .replace(/_/g, "-")
    .toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const name of names) {
    const d = name === kebab ? 0 : distance(key, name);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)))
    return `unknown key ${JSON.stringify(key)}; did you mean ${JSON.stringify(best)}?`;
  return `unknown key ${JSON.stringify(key)}: the keys are the command's long flag names (see --help)`;
}

/** Levenshtein distance: the single-character edits that turn `a` into `b`. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/**
 * Sets the options of `cmd` that were not given on the command line or in the environment
 * from its config file (--config or $MUSTER_CONFIG), with the source `config`. Returns the
 * file read, if any. Throws a ConfigError for a file that cannot be used.
 */
export function applyConfigFile(cmd: Command, checks: ConfigChecks = {}): string | undefined {
  const file = cmd.getOptionValue("config") as string | undefined;
  if (file === undefined || (file === "" && cmd.getOptionValueSource("config") === "env")) return undefined;
  if (file === "") throw new ConfigError("--config", undefined, "give a file name");
  const values = parseConfig(readConfigText(file), file, cmd.options, checks);
  for (const [name, { value }] of values) {
    const source = cmd.getOptionValueSource(name);
    if (source === undefined || source === "default") cmd.setOptionValueWithSource(name, value, "config");
  }
  return file;
}

/**
 * Adds --config <file> (also $MUSTER_CONFIG) and --check-config to `cmd`: the file's values
 * are applied before the command's action runs (a file that cannot be used exits 2 with the
 * file, the line and why). The action ends a check with `configChecked`.
 */
export function withConfigFile(cmd: Command, checks: ConfigChecks = {}): Command {
  return cmd
    .addOption(
      new Option(
        "--config <file>",
        "read flags from this YAML file, keys being the long flag names (heartbeat: 5s); a flag given on the command line or in the environment wins",
      ).env("MUSTER_CONFIG"),
    )
    .option(
      "--check-config",
      "check the flags, the config file and the files they name, then exit (0: all good) without listening, connecting or writing anything",
      false,
    )
    .hook("preAction", (self) => {
      try {
        applyConfigFile(self, checks);
      } catch (err) {
        if (err instanceof ConfigError) fail(err.message, EXIT.USAGE);
        throw err;
      }
    });
}

/** Ends a `--check-config` run: says so and exits 0. */
export function configChecked(file: string | undefined): never {
  process.stdout.write(
    `configuration ok${file !== undefined && file !== "" ? ` (config file ${file})` : ""}\n`,
  );
  process.exit(EXIT.OK);
}
