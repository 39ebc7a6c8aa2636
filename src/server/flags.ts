import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";

/**
 * Where a flag's value came from: its default, a command-line option (or the library's
 * option), a config file (`muster server --config`), the admin API (of this server), or the
 * cluster (a flag of scope `cluster` set on any of its servers).
 */
export type FlagSource = "default" | "option" | "file" | "api" | "cluster";

/**
 * Whom a flag concerns: `server` flags are this server's own; `cluster` flags are a policy of
 * the whole fleet, and in a cluster a change on one server reaches every server.
 */
export type FlagScope = "cluster" | "server";

/** One runtime setting: how to read, check and change it. */
export interface FlagDefinition<T> {
  /** Kebab-case, e.g. `log-level`, `heartbeat-interval`, `resume-window`, `call-timeout`, `trace`. */
  name: string;
  description: string;
  /** The unit of the value shown, e.g. `ms`, or undefined. */
  unit?: string;
  /**
   * Turns a JSON value from a request into a value, or throws a MusterError INVALID_ARGUMENT
   * with a message naming the flag and saying what is accepted (see `durationFlag` & co).
   */
  parse(value: unknown): T;
  /** The value in force now. */
  get(): T;
  /** Puts a parsed value in force. Should not throw: `set` has validated every entry by then. */
  apply(value: T): void;
  /** Where the initial value came from. */
  source: FlagSource;
  /** @default "server" */
  scope?: FlagScope;
}

/** A flag as listed: its value in force and where it came from. */
export interface FlagInfo {
  name: string;
  value: unknown;
  source: FlagSource;
  scope: FlagScope;
  /** Who set it last (source `api` or `cluster`). */
  by?: string;
  /** Source `cluster`: the server it was set on. */
  server?: string;
  unit?: string;
  description: string;
}

/** One change of a flag, as `RuntimeFlags.share` passes it on. */
export interface FlagChange {
  name: string;
  /** The parsed value now in force. */
  value: unknown;
}

/** A flag's value changed: by whom, and on which server for a change from the cluster. */
export interface FlagChanged {
  flag: string;
  from: unknown;
  to: unknown;
  by: string;
  server?: string;
}

interface Entry {
  def: FlagDefinition<unknown>;
  source: FlagSource;
  by?: string;
  server?: string;
}

const NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

/**
 * The server's runtime settings, changed through the admin API (`PUT /api/flags`). A change is
 * all or nothing: every entry is validated before any is applied.
 */
export class RuntimeFlags {
  readonly #logger: Logger;
  readonly #flags = new Map<string, Entry>();
  #share: ((changes: FlagChange[], who: string) => void) | undefined;
  #server = "";
  readonly #listeners = new Set<(change: FlagChanged) => void>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * In a cluster: from now on, `set` passes every change of a `cluster` flag to `fn` (which
   * writes it for every server) and shows such flags with source `cluster`; `server` names
   * this server in their listing. Undone by the returned function.
   */
  share(server: string, fn: (changes: FlagChange[], who: string) => void): () => void {
    this.#share = fn;
    this.#server = server;
    return () => {
      if (this.#share === fn) this.#share = undefined;
    };
  }

  /**
   * Applies a value of a `cluster` flag set on another server (or this one, seen back from the
   * cluster): parsed as `set` would (throws INVALID_ARGUMENT for an unknown flag, a `server`
   * flag or a value it refuses), then put in force with source `cluster`. A change of value is
   * logged at info with who set it and where. Returns whether the value changed.
   */
  applyShared(name: string, value: unknown, by: string, server: string): boolean {
    const entry = this.#flags.get(name);
    if (entry === undefined || (entry.def.scope ?? "server") !== "cluster")
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${JSON.stringify(name)} is not a cluster flag here`);
    const parsed = entry.def.parse(value);
    const previous = entry.def.get();
    const changed = JSON.stringify(previous) !== JSON.stringify(parsed);
    if (changed) entry.def.apply(parsed);
    entry.source = "cluster";
    entry.by = by;
    entry.server = server;
    if (changed) {
      this.#logger.info(
        { flag: name, from: previous, to: entry.def.get(), by, server },
        "runtime flag changed by the cluster",
      );
      this.#changed({ flag: name, from: previous, to: entry.def.get(), by, server });
    }
    return changed;
  }

  /** Calls `fn` after each change of a flag's value (by `set` or from the cluster); returns the unsubscribe. */
  onChange(fn: (change: FlagChanged) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #changed(change: FlagChanged): void {
    for (const fn of this.#listeners) fn(change);
  }

  /** Adds a flag; its name must be kebab-case and not defined yet. */
  define<T>(def: FlagDefinition<T>): this {
    if (!NAME.test(def.name))
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `flag name "${def.name}" is not kebab-case`);
    if (this.#flags.has(def.name))
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `flag ${def.name} is defined twice`);
    this.#flags.set(def.name, { def: def as FlagDefinition<unknown>, source: def.source });
    return this;
  }

  /** Every flag, in the order defined. */
  list(): FlagInfo[] {
    return [...this.#flags.values()].map(info);
  }

  get(name: string): FlagInfo | undefined {
    const e = this.#flags.get(name);
    return e === undefined ? undefined : info(e);
  }

  /**
   * Changes flags: validates every entry first (an unknown name, or a value its flag refuses,
   * is an INVALID_ARGUMENT naming it), then applies them all, marks them `api`, and logs each
   * change at info with `by: who`. Nothing is applied when any entry is invalid. Returns the
   * new list.
   */
  set(patch: Record<string, unknown>, who: string): FlagInfo[] {
    if (typeof patch !== "object" || patch === null || Array.isArray(patch))
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, "flags must be an object of names to values");
    const names = Object.keys(patch);
    const unknown = names.filter((n) => !this.#flags.has(n));
    if (unknown.length > 0)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `unknown flag${unknown.length > 1 ? "s" : ""} ${unknown.map((n) => JSON.stringify(n)).join(", ")}; ` +
          `the flags are ${[...this.#flags.keys()].join(", ")}`,
      );
    const parsed = names.map((name) => {
      const entry = this.#flags.get(name)!;
      try {
        return { entry, value: entry.def.parse(patch[name]) };
      } catch (err) {
        if (err instanceof MusterError) throw err;
        throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${name}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    });
    const applied: Array<{
      entry: Entry;
      previous: unknown;
      source: FlagSource;
      by: string | undefined;
      server: string | undefined;
    }> = [];
    try {
      for (const { entry, value } of parsed) {
        const previous = entry.def.get();
        entry.def.apply(value);
        applied.push({ entry, previous, source: entry.source, by: entry.by, server: entry.server });
        const shared = this.#share !== undefined && (entry.def.scope ?? "server") === "cluster";
        entry.source = shared ? "cluster" : "api";
        entry.by = who;
        entry.server = shared ? this.#server : undefined;
      }
    } catch (err) {
      // An apply that throws breaks its contract; put back what was changed before it.
      for (const a of applied.reverse()) {
        a.entry.def.apply(a.previous);
        a.entry.source = a.source;
        a.entry.by = a.by;
        a.entry.server = a.server;
      }
      throw MusterError.from(err);
    }
    for (const { entry, previous } of applied) {
      this.#logger.info(
        { flag: entry.def.name, from: previous, to: entry.def.get(), by: who },
        "runtime flag changed",
      );
      this.#changed({ flag: entry.def.name, from: previous, to: entry.def.get(), by: who });
    }
    const shared = applied
      .filter((a) => a.entry.source === "cluster")
      .map((a) => ({ name: a.entry.def.name, value: a.entry.def.get() }));
    if (shared.length > 0) this.#share?.(shared, who);
    return this.list();
  }
}

function info(e: Entry): FlagInfo {
  return {
    name: e.def.name,
    value: e.def.get(),
    source: e.source,
    scope: e.def.scope ?? "server",
    ...(e.by !== undefined ? { by: e.by } : {}),
    ...(e.server !== undefined ? { server: e.server } : {}),
    ...(e.def.unit !== undefined ? { unit: e.def.unit } : {}),
    description: e.def.description,
  };
}

function invalid(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

/** A value as a request gave it, for messages: strings quoted, anything else as JSON. */
function shown(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `250ms`, `5s`, `2m`, `1h`: the largest unit that shows `ms` exactly. */
export function formatDurationMs(ms: number): string {
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const)
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/**
 * A parser of durations in milliseconds, from `min` to `max`: a number of milliseconds, or a
 * string with a unit (`250ms`, `5s`, `1.5m`, `1h`). Fractions of a millisecond are rounded.
 */
export function durationFlag(name: string, min: number, max: number): (value: unknown) => number {
  const range = `${formatDurationMs(min)} to ${formatDurationMs(max)}`;
  return (value) => {
    let ms: number | undefined;
    if (typeof value === "number" && Number.isFinite(value)) ms = Math.round(value);
    else if (typeof value === "string") {
      // A bare number is milliseconds, as a JSON number is: "250" is 250ms.
      const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
      if (m) ms = Math.round(Number(m[1]) * UNITS[m[2] ?? "ms"]!);
    }
    if (ms === undefined)
      throw invalid(
        `${name}: ${shown(value)} is not a duration; give a number of milliseconds or a number and a unit, e.g. "250ms", "5s", "2m", "1h"`,
      );
    if (ms < min || ms > max) throw invalid(`${name}: ${shown(value)} is out of range; give ${range}`);
    return ms;
  };
}

const TRUE = new Set(["true", "on", "yes", "1"]);
const FALSE = new Set(["false", "off", "no", "0"]);

/** A parser of booleans: `true`/`false`, or the strings true, false, on, off, yes, no, 1, 0. */
export function booleanFlag(name: string): (value: unknown) => boolean {
  return (value) => {
    if (typeof value === "boolean") return value;
    if (typeof value === "string") {
      const v = value.trim().toLowerCase();
      if (TRUE.has(v)) return true;
      if (FALSE.has(v)) return false;
    }
    throw invalid(`${name}: ${shown(value)} is not a boolean; give true or false`);
  };
}

/** A parser of one string of `values`. */
export function enumFlag<T extends string>(name: string, values: readonly T[]): (value: unknown) => T {
  return (value) => {
    if (typeof value === "string" && (values as readonly string[]).includes(value)) return value as T;
    throw invalid(`${name}: ${shown(value)} is not one of ${values.join(", ")}`);
  };
}
