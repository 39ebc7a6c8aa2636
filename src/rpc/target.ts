import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { checkName } from "../wire/codec.js";

/**
 * Which agents a call is for. The string forms, as typed on the command line:
 * - `all` or `*`: every known agent;
 * - `web-1` or `web-1,web-2`: these names (each expected, connected or not);
 * - `web-*`, `db-?`: a glob over known names;
 * - `role=web`, `role=web,zone!=eu`, `gpu=*`, `!spot`: a label selector (`key=value`,
 *   `key!=value`, `key=*` present, `!key` absent; all terms must hold).
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

/** Parses the string form of a target; throws INVALID_ARGUMENT with the reason. */
export function parseTarget(text: string): Target {
  const s = text.trim();
  if (s === "") throw bad("empty target: give a name, a glob (web-*), a selector (role=web) or all");
  if (s === "all" || s === "*") return "all";
  if (s.includes("=") || s.startsWith("!") || s.includes("!")) return { labels: parseSelector(s) };
  if (/[*?]/.test(s)) {
    if (s.includes(",")) throw bad(`a glob cannot be combined with a list: ${s}`);
    if (!/^[A-Za-z0-9._:@*?-]+$/.test(s))
      throw bad(`glob ${JSON.stringify(s)} has characters no agent name can have`);
    return { glob: s };
  }
  const names = s.split(",").map((n) => n.trim());
  for (const n of names) {
    const err = checkName(n);
    if (err) throw bad(`target ${err}`);
  }
  return { names: [...new Set(names)] };
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
    throw bad(`selector term ${JSON.stringify(term)}: use key=value, key!=value, key=* or !key`);
  });
}

function checkTerm(t: LabelTerm, raw: string): LabelTerm {
  if (!LABEL_KEY.test(t.key)) throw bad(`selector term ${JSON.stringify(raw)}: invalid label key`);
  return t;
}

/** `*` any run of characters, `?` one character; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

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
    const re = globToRegExp(target.glob);
    return (a) => re.test(a.name);
  }
  const terms = target.labels;
  return (a) =>
    terms.every((t) => {
      const v = a.labels[t.key];
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
