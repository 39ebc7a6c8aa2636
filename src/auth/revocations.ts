import { appendFileSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { musterHome } from "./keys.js";
import { checkTokenId } from "./tokens.js";

/*
 * The revocations file: one revoked token id per line, `<id> <ISO time> <reason text…>`
 * (time and reason may be left out when the line is written by hand); blank lines and lines
 * starting with # are ignored. The file is the truth: an id removed from it is no longer revoked.
 */

export interface RevocationListOptions {
  /** The file; undefined: an in-memory list. */
  path?: string;
  /**
   * How often watch() checks the file for a change.
   * @default DEFAULTS.revocationsPollMs (1000)
   */
  pollMs?: number;
  /** Where watch() reports a file it cannot read. @default silentLogger */
  logger?: Logger;
  /** The clock of the times written by add(). @default Date.now */
  now?: () => number;
}

/** $MUSTER_HOME/revoked.txt */
export function defaultRevocationsPath(): string {
  return join(musterHome(), "revoked.txt");
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/;

const invalid = (message: string): MusterError => new MusterError(ErrorCode.INVALID_ARGUMENT, message);

/** One revoked token id, as listed (`RevocationList.list`, `GET /api/revocations`). */
export interface Revocation {
  id: string;
  /** When it was revoked (ISO 8601), when known. */
  at?: string;
  reason?: string;
  /** Who revoked it, when it was revoked through the server (admin API, cluster). */
  by?: string;
  /**
   * `file`: a line of the revocations file; `memory`: revoked in this process only (a list
   * without a file, or a file that could not be written); `cluster`: learned from the cluster.
   */
  source: "file" | "memory" | "cluster";
}

/** The ids of a revocations file's text; throws INVALID_ARGUMENT naming the first bad line. */
export function parseRevocations(text: string, where: string): Set<string> {
  return new Set(parseRevocationLines(text, where).keys());
}

/** As parseRevocations, with each line's time and reason (when written). */
export function parseRevocationLines(
  text: string,
  where: string,
): Map<string, { at?: string; reason?: string }> {
  const ids = new Map<string, { at?: string; reason?: string }>();
  const lines = text.split("\n");
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [id, time] = line.split(/\s+/, 2) as [string, string | undefined];
    const at = `revocations ${where} line ${i + 1}`;
    // The first word is not repeated: it might be a whole token pasted by mistake.
    if (checkTokenId(id) !== undefined)
      throw invalid(
        `${at}: the first word is not a token id (${checkTokenId(id)}); to revoke a whole token, run muster token revoke TOKEN`,
      );
    if (time !== undefined && (!ISO_TIME.test(time) || Number.isNaN(Date.parse(time))))
      throw invalid(
        `${at}: ${JSON.stringify(time.slice(0, 40))} after the id is not an ISO time such as 2026-01-31T12:00:00Z`,
      );
    const reason = time === undefined ? "" : line.slice(line.indexOf(time, id.length) + time.length).trim();
    ids.set(id, {
      ...(time !== undefined ? { at: time } : {}),
      ...(reason !== "" ? { reason } : {}),
    });
  }
  return ids;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    throw invalid(`cannot read revocations ${path}: ${code ?? (err as Error).message}`);
  }
}

function checkId(id: string): void {
  const bad = checkTokenId(id);
  if (bad !== undefined) throw invalid(`cannot revoke: ${bad}`);
}

/** One line of the file; the reason is kept on one line. */
function formatLine(id: string, reason: string | undefined, now: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters become blanks
  const why = (reason ?? "").replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return `${id} ${new Date(now).toISOString()}${why === "" ? "" : ` ${why}`}\n`;
}

/**
 * For the CLI: appends a revocation to `path` (creating it and its directory) unless the id is
 * already there; returns false when it was. A malformed file is refused (INVALID_ARGUMENT), as a
 * server would ignore it and the new line with it.
 */
export function appendRevocation(
  path: string,
  id: string,
  reason?: string,
  now: number = Date.now(),
): boolean {
  checkId(id);
  const text = readText(path) ?? "";
  if (parseRevocations(text, path).has(id)) return false;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const separator = text === "" || text.endsWith("\n") ? "" : "\n";
    appendFileSync(path, separator + formatLine(id, reason, now));
  } catch (err) {
    throw invalid(`cannot write revocations ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return true;
}

/** What watch() compares to see whether the file changed. */
function signature(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? ""}`;
  }
}

/** What is known of an id besides the file: who revoked it, and whether the file has it. */
interface Known {
  at?: string;
  reason?: string;
  by?: string;
  /** Kept whatever the file says: added where it could not be written, or from the cluster. */
  held?: "memory" | "cluster";
}

/**
 * The set of revoked token ids, from a file (re-read when it changes) or in memory only, plus
 * the ids a cluster shares (`addShared`), kept whatever the file says.
 */
export class RevocationList {
  readonly #path: string | undefined;
  readonly #pollMs: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  #ids = new Set<string>();
  /** The file's lines: id → time and reason. */
  #lines = new Map<string, { at?: string; reason?: string }>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #seen = "";
  #onChange: (added: string[]) => void = () => {};
  /** Ids revoked through this process (add, addShared), with what is known of them. */
  readonly #known = new Map<string, Known>();

  constructor(options: RevocationListOptions = {}) {
    const pollMs = options.pollMs ?? DEFAULTS.revocationsPollMs;
    if (!(Number.isFinite(pollMs) && pollMs > 0)) throw invalid(`pollMs must be above 0, not ${pollMs}`);
    this.#path = options.path;
    this.#pollMs = pollMs;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#ids.size;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** Every id revoked now, oldest first when the time is known (ids without a time last). */
  list(): Revocation[] {
    const out: Revocation[] = [];
    for (const id of this.#ids) {
      const line = this.#lines.get(id);
      const known = this.#known.get(id);
      const at = known?.at ?? line?.at;
      const reason = known?.reason ?? line?.reason;
      out.push({
        id,
        ...(at !== undefined ? { at } : {}),
        ...(reason !== undefined ? { reason } : {}),
        ...(known?.by !== undefined ? { by: known.by } : {}),
        // Added here and written to the file (held: no), the file has it even before a poll.
        source:
          line !== undefined || (known !== undefined && known.held === undefined)
            ? "file"
            : (known?.held ?? "memory"),
      });
    }
    const time = (r: Revocation) => (r.at === undefined ? Number.POSITIVE_INFINITY : Date.parse(r.at));
    return out.sort((a, b) => time(a) - time(b));
  }

  /** The file's lines, plus the ids held whatever it says. */
  #withHeld(lines: Map<string, { at?: string; reason?: string }>): Set<string> {
    const ids = new Set(lines.keys());
    for (const [id, k] of this.#known) if (k.held !== undefined) ids.add(id);
    return ids;
  }

  /** Loads the file now: a missing file is an empty list, a malformed line an INVALID_ARGUMENT error. */
  load(): void {
    if (this.#path === undefined) return;
    const seen = signature(this.#path);
    const text = readText(this.#path);
    this.#lines = text === undefined ? new Map() : parseRevocationLines(text, this.#path);
    this.#ids = this.#withHeld(this.#lines);
    this.#seen = seen;
  }

  /**
   * Checks the file every pollMs (its inode, size and mtime; re-read on a change; the timer is
   * unref()ed) and calls onChange with the ids a change newly revoked, when there are any. A file
   * that became malformed or unreadable keeps the previous list and logs one error per change.
   * `add()` and `addShared()` report their id to onChange at once, with or without a file. A
   * second call replaces the callback.
   */
  watch(onChange: (added: string[]) => void): void {
    const path = this.#path;
    this.#onChange = onChange;
    if (path === undefined) return;
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#poll(path), this.#pollMs);
    this.#timer.unref();
  }

  #poll(path: string): void {
    const seen = signature(path);
    if (seen === this.#seen) return;
    this.#seen = seen;
    let lines: Map<string, { at?: string; reason?: string }>;
    try {
      const text = readText(path);
      lines = text === undefined ? new Map() : parseRevocationLines(text, path);
    } catch (err) {
      this.#logger.error(
        { err: (err as MusterError).rawMessage ?? String(err), path },
        "revocations file not applied: the previous list stays in force",
      );
      return;
    }
    const next = this.#withHeld(lines);
    const added = [...next].filter((id) => !this.#ids.has(id));
    this.#ids = next;
    this.#lines = lines;
    if (added.length > 0) this.#notify(added);
  }

  /**
   * Revokes an id: in memory, and appended to the file when there is one (created with its
   * directory). Idempotent. When the file cannot be written (or is malformed) it throws
   * INVALID_ARGUMENT, and the id stays revoked in memory all the same. `by` (who asked) is
   * kept in memory for `list()`.
   */
  add(id: string, reason?: string, by?: string): void {
    checkId(id);
    if (this.#ids.has(id)) return;
    this.#ids.add(id);
    const known: Known = { at: new Date(this.#now()).toISOString() };
    if (reason !== undefined && reason !== "") known.reason = reason;
    if (by !== undefined) known.by = by;
    this.#known.set(id, known);
    try {
      if (this.#path !== undefined) appendRevocation(this.#path, id, reason, this.#now());
      else known.held = "memory";
    } catch (err) {
      known.held = "memory";
      throw err;
    } finally {
      // Whoever watches hears of it now, not at the next poll (which will not see it as new).
      this.#notify([id]);
    }
  }

  /**
   * Revokes an id that another server revoked (the cluster's list): in memory only, kept
   * whatever the file says, never written to it. Idempotent; returns whether it is new.
   */
  addShared(id: string, meta: { at?: string; reason?: string; by?: string } = {}): boolean {
    checkId(id);
    const fresh = !this.#ids.has(id);
    const known = this.#known.get(id) ?? {};
    // What the revoking server said wins over nothing; an id revoked here keeps its own story.
    if (fresh) Object.assign(known, stripUndefined(meta));
    known.held = known.held === "memory" ? "memory" : "cluster";
    this.#known.set(id, known);
    if (!fresh) return false;
    this.#ids.add(id);
    this.#notify([id]);
    return true;
  }

  #notify(added: string[]): void {
    try {
      this.#onChange(added);
    } catch (err) {
      this.#logger.error({ err: String(err), path: this.#path }, "revocations: the change callback threw");
    }
  }

  /** Stops watching. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
