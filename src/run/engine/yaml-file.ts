import { readFile, stat } from "node:fs/promises";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { StageError } from "./types.js";

/** Largest stage, `_all.yaml` or trx file read. */
export const MAX_FILE_BYTES = 1024 * 1024;

/**
 * A YAML file read for a stage, with what it takes to name the line of any value in errors.
 * Values are read as plain JS (`toJS`); `line(path)` finds where a path is.
 */
export class YamlFile {
  constructor(
    readonly file: string,
    readonly value: unknown,
    readonly doc: ReturnType<typeof parseDocument>,
    readonly lines: LineCounter,
  ) {}

  /** The line (1-based) of the value at `path`, or of its nearest parent that exists. */
  line(path: ReadonlyArray<string | number>): number | undefined {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as Node | undefined;
      const at = node?.range?.[0];
      if (at !== undefined) return this.lines.linePos(at).line;
    }
    return undefined;
  }

  /** A StageError at `path`. */
  error(path: ReadonlyArray<string | number>, problem: string): StageError {
    return new StageError(this.file, this.line(path), problem);
  }

  /** The keys of the map at `path`, each checked against `known` (naming the one that is not). */
  checkKeys(
    path: ReadonlyArray<string | number>,
    obj: Record<string, unknown>,
    known: readonly string[],
    what: string,
  ): void {
    for (const k of Object.keys(obj))
      if (!known.includes(k))
        throw this.error([...path, k], `${what}: "${k}" is not supported (known: ${known.join(", ")})`);
  }
}

/** Reads a file of at most MAX_FILE_BYTES, naming it in the error. */
export async function readBounded(file: string, what: string): Promise<Buffer> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (err) {
    throw new StageError(
      file,
      undefined,
      `cannot read the ${what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (size > MAX_FILE_BYTES)
    throw new StageError(file, undefined, `the ${what} is ${size} bytes, more than ${MAX_FILE_BYTES}`);
  return readFile(file);
}

/** Reads and parses a YAML file; a syntax error names its line. */
export async function readYaml(file: string, what: string): Promise<YamlFile> {
  const text = (await readBounded(file, what)).toString("utf8");
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const first = doc.errors[0];
  if (first !== undefined)
    throw new StageError(file, first.linePos?.[0]?.line, `not valid YAML: ${first.message.split("\n")[0]}`);
  const contents = doc.contents;
  if (contents !== null && !isMap(contents) && !isSeq(contents) && !isScalar(contents))
    throw new StageError(file, undefined, "not a YAML document");
  return new YamlFile(file, doc.toJS({ maxAliasCount: 100 }), doc, lines);
}

/** The value as a string map (YAML scalars as strings), or throws at `path`. */
export function stringMap(
  y: YamlFile,
  path: ReadonlyArray<string | number>,
  v: unknown,
  what: string,
): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw y.error(path, `${what} must be a map of key: value`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (x !== null && typeof x === "object")
      throw y.error([...path, k], `${what}.${k} must be a single value`);
    out[k] = x === null || x === undefined ? "" : String(x);
  }
  return out;
}

/** The value as a map (or empty), or throws at `path`. */
export function mapAt(
  y: YamlFile,
  path: ReadonlyArray<string | number>,
  v: unknown,
  what: string,
): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw y.error(path, `${what} must be a map`);
  return v as Record<string, unknown>;
}
