import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { truncateForLog } from "../internal/log-safe.js";
import { checkName } from "../wire/codec.js";

/**
 * Which agents a call is for. The string forms, as typed on the command line:
 * - `all` or `*`: every known agent;
 * - `web-1` or `web-1,web-2`: these names (each expected, connected or not);
 * - `web-*`, `db-?`: a glob over known names;
 * - `role=web`, `role=web,zone!=eu`, `gpu=*`, `!spot`: a label selector (`key=value`,
 *   `key!=value`, `key=*` present, `!key` absent; all terms must hold). Values are compared
 *   literally: a `*` is a wildcard only as the whole value (`key=*`).
 */
export type Target =
  | "all"
  | { names: readonly string[] }
  | { glob: string }
  | { labels: readonly LabelTerm[] };

export interface LabelTerm {
  key: string;
  op: "=" | "!=" | "exists" | "absent";
  value?: string;
}

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

function bad(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

/**
 * Parses the string form of a target; throws INVALID_ARGUMENT with the reason. A target longer
 * than `maxBytes` (UTF-8) is refused before anything else is done with it. Runs of `*` in a
 * glob are collapsed (`a**b` is `a*b`).
 */
export function parseTarget(text: string, maxBytes: number = DEFAULTS.maxTargetBytes): Target {
  // UTF-16 length ≤ UTF-8 length: a string this long is over the limit without counting.
  const bytes = text.length > maxBytes ? text.length * 3 : Buffer.byteLength(text);
  if (bytes > maxBytes) {
    const size = text.length > maxBytes ? `at least ${text.length}` : `${bytes}`;
    throw bad(`target is ${size} bytes, more than the limit of ${maxBytes} (maxTargetBytes)`);
  }
  const s = text.trim();
  if (s === "") throw bad("empty target: give a name, a glob (web-*), a selector (role=web) or all");
  if (s === "all" || s === "*") return "all";
  if (s.includes("=") || s.startsWith("!") || s.includes("!")) return { labels: parseSelector(s) };
  if (/[*?]/.test(s)) {
    if (s.includes(",")) throw bad(`a glob cannot be combined with a list: ${quoted(s)}`);
    if (!/^[A-Za-z0-9._:@*?-]+$/.test(s))
      throw bad(`glob ${quoted(s)} has characters no agent name can have`);
    const glob = s.replace(/\*+/g, "*");
    return glob === "*" ? "all" : { glob };
  }
  const names = s.split(",").map((n) => n.trim());
  for (const n of names) {
    const err = checkName(n);
    if (err) throw bad(`target ${err}`);
  }
  return { names: [...new Set(names)] };
}

/** Part of a target quoted in an error message: JSON, cut short. */
function quoted(s: string): string {
  return truncateForLog(JSON.stringify(s), 80);
}

function parseSelector(s: string): LabelTerm[] {
  return s.split(",").map((raw) => {
    const term = raw.trim();
    let m = /^([^=!]+)!=(.*)$/.exec(term);
    if (m) return checkTerm({ key: m[1]!.trim(), op: "!=", value: m[2]!.trim() }, term);
    m = /^([^=!]+)==?(.*)$/.exec(term);
    if (m) {
      const value = m[2]!.trim();
      if (value === "*") return checkTerm({ key: m[1]!.trim(), op: "exists" }, term);
      return checkTerm({ key: m[1]!.trim(), op: "=", value }, term);
    }
    if (term.startsWith("!")) return checkTerm({ key: term.slice(1).trim(), op: "absent" }, term);
    throw bad(`selector term ${quoted(term)}: use key=value, key!=value, key=* or !key`);
  });
}

function checkTerm(t: LabelTerm, raw: string): LabelTerm {
  if (!LABEL_KEY.test(t.key)) throw bad(`selector term ${quoted(raw)}: invalid label key`);
  return t;
}

/**
 * `*` any run of characters, `?` one character; everything else literal. For patterns from a
 * trusted source only (configuration, signed tokens): a backtracking regular expression takes
 * time exponential in the number of `*` on some inputs. Runs of `*` are collapsed, which
 * removes the worst of it; `globMatcher` is linear and is what peer-supplied globs use.
 */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/\*+/g, "*")
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/**
 * A glob (`*` any run of characters, `?` one character) as a predicate that never backtracks:
 * the pattern is split at its stars; the first piece must start the string, the last must end
 * it, and each piece between is found at its leftmost place after the one before (which is
 * the right choice for globs). Time is linear in the string times the longest piece at worst,
 * and a string shorter than the pattern's fixed characters is refused at once.
 */
export function globMatcher(glob: string): (s: string) => boolean {
  const pieces = glob.split(/\*+/);
  if (pieces.length === 1) return (s) => s.length === glob.length && matchesAt(s, 0, glob);
  const head = pieces[0]!;
  const tail = pieces[pieces.length - 1]!;
  const middle = pieces.slice(1, -1).filter((p) => p !== "");
  let fixed = head.length + tail.length;
  for (const p of middle) fixed += p.length;
  return (s) => {
    if (s.length < fixed) return false;
    if (!matchesAt(s, 0, head) || !matchesAt(s, s.length - tail.length, tail)) return false;
    let from = head.length;
    const end = s.length - tail.length;
    for (const p of middle) {
      const at = find(s, p, from, end);
      if (at < 0) return false;
      from = at + p.length;
    }
    return true;
  };
}

/** Whether `piece` (with `?` for any character) matches `s` at `at`. */
function matchesAt(s: string, at: number, piece: string): boolean {
  for (let i = 0; i < piece.length; i++) {
    const c = piece.charCodeAt(i);
    if (c !== QUESTION && c !== s.charCodeAt(at + i)) return false;
  }
  return true;
}

/** The leftmost index ≥ `from` where `piece` matches and ends by `end`, or -1. */
function find(s: string, piece: string, from: number, end: number): number {
  if (!piece.includes("?")) {
    const at = s.indexOf(piece, from);
    return at >= 0 && at + piece.length <= end ? at : -1;
  }
  for (let at = from; at + piece.length <= end; at++) if (matchesAt(s, at, piece)) return at;
  return -1;
}

const QUESTION = "?".charCodeAt(0);

/** Something that has a name and labels. */
export interface Labelled {
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** Compiles a target to a predicate over known agents. Explicit names are handled by the caller. */
export function matcher(target: Target): (a: Labelled) => boolean {
  if (target === "all") return () => true;
  if ("names" in target) {
    const set = new Set(target.names);
    return (a) => set.has(a.name);
  }
  if ("glob" in target) {
    const match = globMatcher(target.glob);
    return (a) => match(a.name);
  }
  const terms = target.labels;
  return (a) =>
    terms.every((t) => {
      // Own labels only: `constructor` or `toString` is no label of any agent.
      const v = Object.hasOwn(a.labels, t.key) ? a.labels[t.key] : undefined;
      switch (t.op) {
        case "=":
          return v === t.value;
        case "!=":
          return v !== t.value;
        case "exists":
          return v !== undefined;
        default:
          return v === undefined;
      }
    });
}

/** The target as text, for logs and the CLI. */
export function formatTarget(target: Target): string {
  if (target === "all") return "all";
  if ("names" in target) return target.names.join(",");
  if ("glob" in target) return target.glob;
  return target.labels
    .map((t) =>
      t.op === "exists"
        ? `${t.key}=*`
        : t.op === "absent"
          ? `!${t.key}`
          : `${t.key}${t.op === "=" ? "=" : "!="}${t.value}`,
    )
    .join(",");
}
