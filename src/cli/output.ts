import { type Command, InvalidArgumentError, Option } from "commander";
import { stringify } from "yaml";
import { EXIT, fail } from "./common.js";
import { table } from "./format.js";

/*
 * `-o wide|json|yaml` of the listing commands. Without `-o` a listing is a table; on a
 * terminal its long cells are cut so that a line fits the width, and standard error says so.
 * `wide` adds the columns marked wide and cuts nothing; `json` prints one line, `yaml` a
 * YAML document. `--json` stays an alias of `-o json`.
 */

/** How a listing is printed: `text` is the default table. */
export type OutputFormat = "text" | "wide" | "json" | "yaml";

/** The values `-o` takes. */
export const OUTPUT_CHOICES = ["wide", "json", "yaml"] as const;

/** `-o`: one of OUTPUT_CHOICES, else a usage error naming them. */
export function parseOutput(text: string): OutputFormat {
  const t = text.trim();
  if ((OUTPUT_CHOICES as readonly string[]).includes(t)) return t as OutputFormat;
  throw new InvalidArgumentError(`give -o wide, -o json or -o yaml (or --output wide, json, yaml)`);
}

/** Adds `-o, --output <format>` (and `--json`, its alias for `-o json`, when `json`). */
export function withOutputOption(cmd: Command, json = false): Command {
  cmd.addOption(
    new Option(
      "-o, --output <format>",
      "wide (every column, nothing cut), json or yaml, instead of the table",
    )
      .choices(OUTPUT_CHOICES)
      // Its own message for a bad value, naming every form.
      .argParser(parseOutput),
  );
  if (json) cmd.option("--json", "the same as -o json", false);
  return cmd;
}

export interface OutputFlags {
  output?: OutputFormat;
  json?: boolean;
}

/** The format asked for; `--json` with `-o` other than json is a usage error. */
export function outputFormat(flags: OutputFlags): OutputFormat {
  if (flags.json === true && flags.output !== undefined && flags.output !== "json")
    fail(`--json is -o json: it cannot go with -o ${flags.output}`, EXIT.USAGE);
  return flags.json === true ? "json" : (flags.output ?? "text");
}

/** True for the machine-readable formats (json, yaml). */
export const isData = (format: OutputFormat): boolean => format === "json" || format === "yaml";

/** `value` as `format` asks: one JSON line, or a YAML document. */
export function renderData(format: "json" | "yaml", value: unknown): string {
  return format === "json" ? `${JSON.stringify(value)}\n` : stringify(value, { lineWidth: 0 });
}

/** One column of a table. */
export interface Column<T> {
  header: string;
  cell: (row: T) => string;
  /** `wide`: shown with `-o wide` only; `text`: in the default table only. @default both */
  only?: "text" | "wide";
}

/** A cell is never cut below this many characters (nor below its header's width). */
const MIN_CELL = 16;

/**
 * The widest a cell may be for every line of a table to fit in `width` characters, or
 * undefined when they fit whole. Never under MIN_CELL: a narrow terminal wraps instead.
 */
export function cellCap(widths: number[], headers: number[], width: number): number | undefined {
  const lineWidth = (cap: number): number =>
    widths.reduce((sum, w, i) => sum + Math.min(w, Math.max(cap, headers[i]!)), 0) + 2 * (widths.length - 1);
  const widest = Math.max(0, ...widths);
  if (lineWidth(widest) <= width) return undefined;
  let lo = MIN_CELL;
  let hi = widest;
  if (lineWidth(lo) > width) return lo;
  // The largest cap that fits: lo always fits, hi never does.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (lineWidth(mid) <= width) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * Rows as a table of the columns for `format` (the wide ones with `wide`); with `fitTo`, cells are
 * cut with "…" so that lines fit that width. `clipped` says whether any was cut.
 */
export function renderTable<T>(
  rows: readonly T[],
  columns: readonly Column<T>[],
  format: "text" | "wide",
  fitTo?: number,
): { text: string; clipped: boolean } {
  const shown = columns.filter((c) => c.only === undefined || c.only === format);
  const header = shown.map((c) => c.header);
  let cells = rows.map((r) => shown.map((c) => c.cell(r)));
  let clipped = false;
  if (fitTo !== undefined && format === "text") {
    const widths = shown.map((_, i) => Math.max(header[i]!.length, ...cells.map((r) => r[i]!.length)));
    const cap = cellCap(
      widths,
      header.map((h) => h.length),
      fitTo,
    );
    if (cap !== undefined)
      cells = cells.map((r) =>
        r.map((c, i) => {
          const max = Math.max(cap, header[i]!.length);
          if (c.length <= max) return c;
          clipped = true;
          return `${c.slice(0, max - 1)}…`;
        }),
      );
  }
  return { text: table(header, cells), clipped };
}

/** The width tables are cut to: the terminal's, or undefined when standard output is not one. */
export function terminalWidth(stream: NodeJS.WriteStream = process.stdout): number | undefined {
  if (stream.isTTY !== true) return undefined;
  return stream.columns !== undefined && stream.columns > 0 ? stream.columns : 80;
}

/** What standard error says when a table was cut. */
export const CLIP_HINT = "(long cells are cut to fit the terminal: -o wide shows them whole)";

/** A listing: its rows, how they show as a table, and what json and yaml print. */
export interface Listing<T> {
  rows: readonly T[];
  columns: readonly Column<T>[];
  /** What -o json and -o yaml print. @default rows */
  data?: unknown;
  /** The line printed instead of a table without rows. */
  empty?: string;
}

/** A listing in `format`, as text, and whether cells were cut. */
export function renderListing<T>(
  format: OutputFormat,
  listing: Listing<T>,
  fitTo?: number,
): { text: string; clipped: boolean } {
  if (format === "json" || format === "yaml")
    return { text: renderData(format, listing.data ?? listing.rows), clipped: false };
  if (listing.rows.length === 0 && listing.empty !== undefined)
    return { text: `${listing.empty}\n`, clipped: false };
  const t = renderTable(listing.rows, listing.columns, format, fitTo);
  return { text: `${t.text}\n`, clipped: t.clipped };
}

/** Prints a listing on standard output; on a terminal, says on standard error when cells were cut. */
export function printListing<T>(format: OutputFormat, listing: Listing<T>): void {
  const { text, clipped } = renderListing(format, listing, terminalWidth());
  process.stdout.write(text);
  if (clipped) process.stderr.write(`${CLIP_HINT}\n`);
}
