import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { checkMessageName, Message } from "./message.js";
import { checkParamValue, PARAM_TYPES, type ParamType } from "./param-types.js";

/**
 * Match priorities: matches run in ascending priority, in the order added within one
 * priority. Built-in commands sit above application handlers, so that an application's
 * handler for the same command wins.
 */
export const Priority = {
  /** Pass-through callbacks that must see a message before anything handles it. */
  CALLBACK: 0,
  /** The default, for application handlers. */
  USER: 7,
  /** Built-in commands every service understands. */
  SYSTEM: 10,
  /** The largest priority accepted. */
  MAX: 15,
} as const;

/** What a dispatch is given along with the message: at least a way to answer. */
export interface DispatchContext {
  /** Sends a message on the connection the dispatched message came from. */
  send(message: Message): void | Promise<void>;
}

/** Runs for a matched message; a returned promise is awaited before the next match. */
export type Handler<C extends DispatchContext = DispatchContext> = (
  message: Message,
  ctx: C,
) => void | Promise<void>;

/** Names a group of matches for `removeMatches`: a positive integer or a non-empty string. */
export type Tag = number | string;

export interface MatchOptions {
  /** 0 (first) … 15 (last). @default Priority.USER (7) */
  priority?: number;
  /** Groups matches so that `removeMatches(tag)` removes them together. */
  tag?: Tag;
  /**
   * When true the handler runs and matching goes on with the next match (upstream's
   * "callback" matches); otherwise the first match that runs ends the dispatch.
   * @default false
   */
  passThrough?: boolean;
}

export interface PredicateOptions extends MatchOptions {
  /** The commands the predicate may accept, so that `commands()` can list them. */
  commands?: readonly string[];
}

/**
 * `required`: the parameter must be present. `empty`: it may be present with an empty
 * value. `forbidden`: it must not be present. `optional` says neither and only reads
 * better than `[]`.
 */
export type ParamFlag = "required" | "empty" | "forbidden" | "optional";

/** One parameter of a command's definition (upstream's `<COMMAND>.conf` section). */
export interface ParamDef {
  name: string;
  /** @default "string" */
  type?: ParamType;
  /**
   * Left out, the flags are `["required", "empty"]`, as upstream. Given, they replace
   * that default entirely: `["optional"]` is neither required nor allowed to be empty.
   */
  flags?: readonly ParamFlag[];
}

/** What became of a dispatched message. */
export type DispatchResult =
  | { readonly status: "handled" }
  | { readonly status: "invalid"; readonly problems: readonly string[] }
  | { readonly status: "unhandled" };

export interface DispatcherOptions {
  /** Parameter definitions by command, as `define()` takes them. */
  definitions?: Readonly<Record<string, readonly ParamDef[]>>;
  /**
   * Answer a message that fails its definition with `INVALID command=… message=…`
   * (upstream only logs it). An INVALID message is never answered this way, so that two
   * peers cannot bounce INVALIDs. @default true
   */
  replyInvalid?: boolean;
}

/**
 * Matches commands to handlers. A message goes through the matches in priority order: a
 * match whose handler runs ends the dispatch unless it is a pass-through. The catch-all
 * runs only when no other match ran. Before the first handler runs, the message is
 * checked against its command's parameter definition; a message that fails runs no
 * handler at all.
 */
export interface Dispatcher<C extends DispatchContext = DispatchContext> {
  /** Handles `command` exactly. */
  on(command: string, handler: Handler<C>, options?: MatchOptions): void;
  /** Handles the messages `predicate` accepts. */
  match(predicate: (message: Message) => boolean, handler: Handler<C>, options?: PredicateOptions): void;
  /** Handles any message no other match took; only one catch-all may be set. */
  catchAll(handler: Handler<C>, options?: { tag?: Tag }): void;
  /** Removes every match (the catch-all included) with this tag; returns how many. */
  removeMatches(tag: Tag): number;
  /** A tag no earlier call returned (1, 2, 3, …). */
  nextTag(): number;
  /** Sets the parameter definition of `command`, replacing any earlier one. */
  define(command: string, params: readonly ParamDef[]): void;
  /** The parameter definition of `command`, if any. */
  definition(command: string): readonly ParamDef[] | undefined;
  /** What is wrong with the message's parameters per its definition; empty when nothing. */
  validate(message: Message): readonly string[];
  /**
   * The commands handled, sorted: exact and pass-through matches and the commands that
   * predicates declared (for a HELP → COMMANDS answer). The catch-all adds none.
   */
  commands(): string[];
  /** Dispatches one message; rejects with whatever a handler or predicate threw. */
  dispatch(message: Message, ctx: C): Promise<DispatchResult>;
}

function bad(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

interface Entry<C extends DispatchContext> {
  test: (message: Message) => boolean;
  handler: Handler<C>;
  priority: number;
  passThrough: boolean;
  tag: Tag | undefined;
  /** The command of an exact match, or those a predicate declared. */
  commands: readonly string[];
}

interface Rule {
  name: string;
  type: ParamType;
  required: boolean;
  empty: boolean;
  forbidden: boolean;
}

const FLAGS: readonly ParamFlag[] = ["required", "empty", "forbidden", "optional"];
const DEFAULT_FLAGS: readonly ParamFlag[] = ["required", "empty"];
const HANDLED: DispatchResult = Object.freeze({ status: "handled" });
const UNHANDLED: DispatchResult = Object.freeze({ status: "unhandled" });

function checkCommand(command: unknown, what: string): string {
  if (typeof command !== "string") throw bad(`${what} must be a string, got ${typeof command}`);
  const why = checkMessageName("command", command);
  if (why !== undefined) throw bad(`${what}: ${why}`);
  return command;
}

function checkTag(tag: unknown): Tag {
  if (
    (typeof tag === "number" && Number.isSafeInteger(tag) && tag > 0) ||
    (typeof tag === "string" && tag !== "")
  )
    return tag;
  throw bad(`a tag must be a positive integer or a non-empty string, got ${String(tag)}`);
}

function checkHandler(handler: unknown): void {
  if (typeof handler !== "function") throw bad(`a handler must be a function, got ${typeof handler}`);
}

function toRules(command: string, params: readonly ParamDef[]): Rule[] {
  if (!Array.isArray(params)) throw bad(`definition of ${command} must be an array of parameters`);
  const seen = new Set<string>();
  return params.map((p: ParamDef) => {
    const where = `definition of ${command}`;
    const why =
      typeof p?.name === "string" ? checkMessageName("parameter", p.name) : "parameter name must be a string";
    if (why !== undefined) throw bad(`${where}: ${why}`);
    if (seen.has(p.name)) throw bad(`${where}: parameter ${p.name} is defined twice`);
    seen.add(p.name);
    const type = p.type ?? "string";
    if (!PARAM_TYPES.includes(type))
      throw bad(`${where}: parameter ${p.name} has type ${String(type)}; use ${PARAM_TYPES.join(", ")}`);
    const flags = p.flags ?? DEFAULT_FLAGS;
    for (const f of flags)
      if (!FLAGS.includes(f))
        throw bad(`${where}: parameter ${p.name} has flag ${String(f)}; use ${FLAGS.join(", ")}`);
    const rule = {
      name: p.name,
      type,
      required: flags.includes("required"),
      empty: flags.includes("empty"),
      forbidden: flags.includes("forbidden"),
    };
    if (rule.required && rule.forbidden)
      throw bad(`${where}: parameter ${p.name} cannot be both required and forbidden`);
    return rule;
  });
}

class DispatcherImpl<C extends DispatchContext> implements Dispatcher<C> {
  private matches: Entry<C>[] = [];
  private end: Entry<C> | undefined;
  private lastTag = 0;
  private readonly rules = new Map<string, Rule[]>();
  private readonly defs = new Map<string, readonly ParamDef[]>();
  private readonly replyInvalid: boolean;

  constructor(options: DispatcherOptions | undefined) {
    this.replyInvalid = options?.replyInvalid ?? true;
    for (const [command, params] of Object.entries(options?.definitions ?? {})) this.define(command, params);
  }

  private add(
    entry: Omit<Entry<C>, "priority" | "passThrough" | "tag">,
    options: MatchOptions | undefined,
  ): void {
    checkHandler(entry.handler);
    const priority = options?.priority ?? Priority.USER;
    if (!Number.isInteger(priority) || priority < 0 || priority > Priority.MAX)
      throw bad(`priority must be an integer 0–${Priority.MAX}, got ${String(priority)}`);
    const tag = options?.tag === undefined ? undefined : checkTag(options.tag);
    const e: Entry<C> = { ...entry, priority, passThrough: options?.passThrough === true, tag };
    // After every match of the same or a lower priority: stable within a priority. A new
    // array, so that a dispatch under way keeps the list it started with.
    const at = this.matches.findIndex((m) => m.priority > priority);
    const next = this.matches.slice();
    next.splice(at < 0 ? next.length : at, 0, e);
    this.matches = next;
  }

  on(command: string, handler: Handler<C>, options?: MatchOptions): void {
    checkCommand(command, "matched command");
    this.add({ test: (m) => m.command === command, handler, commands: [command] }, options);
  }

  match(predicate: (message: Message) => boolean, handler: Handler<C>, options?: PredicateOptions): void {
    if (typeof predicate !== "function") throw bad(`a predicate must be a function, got ${typeof predicate}`);
    const commands = (options?.commands ?? []).map((c) => checkCommand(c, "declared command"));
    this.add({ test: predicate, handler, commands }, options);
  }

  catchAll(handler: Handler<C>, options?: { tag?: Tag }): void {
    checkHandler(handler);
    if (this.end !== undefined) throw bad("a catch-all is already set; remove it (by its tag) first");
    const tag = options?.tag === undefined ? undefined : checkTag(options.tag);
    this.end = { test: () => true, handler, priority: Priority.MAX, passThrough: false, tag, commands: [] };
  }

  removeMatches(tag: Tag): number {
    checkTag(tag);
    const before = this.matches.length;
    this.matches = this.matches.filter((m) => m.tag !== tag);
    let removed = before - this.matches.length;
    if (this.end?.tag === tag) {
      this.end = undefined;
      removed++;
    }
    return removed;
  }

  nextTag(): number {
    return ++this.lastTag;
  }

  define(command: string, params: readonly ParamDef[]): void {
    checkCommand(command, "defined command");
    const rules = toRules(command, params);
    this.rules.set(command, rules);
    const copy = params.map(
      (p, i): ParamDef =>
        Object.freeze({
          name: p.name,
          type: rules[i]!.type,
          flags: Object.freeze([...(p.flags ?? DEFAULT_FLAGS)]),
        }),
    );
    this.defs.set(command, Object.freeze(copy));
  }

  definition(command: string): readonly ParamDef[] | undefined {
    return this.defs.get(command);
  }

  validate(message: Message): readonly string[] {
    const rules = this.rules.get(message.command);
    if (rules === undefined) return [];
    const problems: string[] = [];
    for (const r of rules) {
      const value = message.get(r.name);
      if (value === undefined) {
        if (r.required) problems.push(`parameter ${r.name} is required`);
      } else if (r.forbidden) {
        problems.push(`parameter ${r.name} is forbidden`);
      } else if (value === "") {
        if (!r.empty) problems.push(`parameter ${r.name} cannot be empty`);
      } else {
        const why = checkParamValue(r.type, value);
        if (why !== undefined) problems.push(`parameter ${r.name} ${why}`);
      }
    }
    return problems;
  }

  commands(): string[] {
    const set = new Set<string>();
    for (const m of this.matches) for (const c of m.commands) set.add(c);
    return [...set].sort();
  }

  /** Checks the message once, before its first handler; answers INVALID when it fails. */
  private async refuse(message: Message, ctx: C): Promise<DispatchResult | undefined> {
    const problems = this.validate(message);
    if (problems.length === 0) return undefined;
    if (this.replyInvalid && message.command !== "INVALID")
      await ctx.send(message.reply("INVALID", { command: message.command, message: problems.join("; ") }));
    return Object.freeze({ status: "invalid", problems: Object.freeze(problems) });
  }

  async dispatch(message: Message, ctx: C): Promise<DispatchResult> {
    if (!(message instanceof Message)) throw bad("dispatch needs a Message");
    // A handler may add or remove matches; this dispatch goes on with the list it started with.
    const matches = this.matches;
    let checked = false;
    let ran = false;
    for (const m of matches) {
      if (!m.test(message)) continue;
      if (!checked) {
        checked = true;
        const refused = await this.refuse(message, ctx);
        if (refused !== undefined) return refused;
      }
      await m.handler(message, ctx);
      if (!m.passThrough) return HANDLED;
      ran = true;
    }
    if (ran) return HANDLED;
    const end = this.end;
    if (end === undefined) return UNHANDLED;
    // Nothing matched, so nothing was checked yet.
    const refused = await this.refuse(message, ctx);
    if (refused !== undefined) return refused;
    await end.handler(message, ctx);
    return HANDLED;
  }
}

/** Creates an empty dispatcher; `C` is what `dispatch` passes on to the handlers. */
export function createDispatcher<C extends DispatchContext = DispatchContext>(
  options?: DispatcherOptions,
): Dispatcher<C> {
  return new DispatcherImpl<C>(options);
}
