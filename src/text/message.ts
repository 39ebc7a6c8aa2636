import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { optionLimit } from "../internal/limits.js";
import { oneLine, quote } from "../wire/text.js";
import {
  type Address,
  checkAddress,
  checkInteger,
  checkTimespec,
  parseAddress,
  parseTimespec,
  type Timespec,
} from "./param-types.js";

/*
 * Text messages in the format of m2osw/eventdispatcher (its message.cpp), one per line:
 *
 *     [<sent_from_server:sent_from_service ][[server:]service/]COMMAND[ name=value[;name=value]…]
 *
 * or the same fields as a JSON object (a line starting with `{`). Where upstream is
 * ambiguous or buggy, the choice made here is said where it applies.
 */

/** Limits applied to untrusted input; each can be lowered or raised per call. */
export const MESSAGE_LIMITS = {
  /** Longest line accepted, in UTF-8 bytes, before any parsing. */
  maxLineBytes: 1024 * 1024,
  /** Most parameters accepted in one message. */
  maxParams: 1000,
} as const;

export interface ParseOptions {
  /** Longest line accepted, in UTF-8 bytes. @default 1048576 */
  maxLineBytes?: number;
  /** Most parameters accepted in one message. @default 1000 */
  maxParams?: number;
}

/** What a parameter may be given as; everything is written as text. */
export type ParamValue = string | number | bigint | boolean;

/**
 * Parameters as a record, a map, or name/value pairs; they are kept sorted by name. An
 * undefined value leaves the parameter out, so that optional ones can be passed along as
 * `{ serial: message.get("serial") }`.
 */
export type ParamsInit =
  | Readonly<Record<string, ParamValue | undefined>>
  | ReadonlyMap<string, ParamValue | undefined>
  | Iterable<readonly [string, ParamValue | undefined]>;

/** The fields of a message; empty strings and left-out fields mean "not set". */
export interface MessageInit {
  command: string;
  /** Destination server: a name, or `.` (this machine), `*` (all servers), `?` (remote). */
  server?: string;
  /** Destination service: a name, or `.` (local), `*` (public) or `?` (private broadcast). */
  service?: string;
  /** Set by a communicator when it forwards a message: where it came from. */
  sentFromServer?: string;
  sentFromService?: string;
  params?: ParamsInit;
}

/** The names a message carries, for error messages and `checkMessageName`. */
export type NameKind =
  | "command"
  | "server"
  | "service"
  | "sent-from server"
  | "sent-from service"
  | "parameter";

/** Destinations accepted in place of a server or service name. */
export const SPECIAL_DESTINATIONS: readonly string[] = [".", "*", "?"];

function bad(message: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, message);
}

const NAME_CHAR = /[^A-Za-z0-9_]/;

/**
 * Why `name` is not a valid name of `kind`, or undefined when it is. All names are ASCII
 * letters, digits and `_`, not starting with a digit; a command is uppercase; a server or
 * service may also be one of the special destinations. Empty names are reported here;
 * callers that treat "" as "not set" skip the call.
 */
export function checkMessageName(kind: NameKind, name: string): string | undefined {
  const what = kind === "parameter" ? "parameter name" : kind;
  if (name === "") return `${what} cannot be empty`;
  if ((kind === "server" || kind === "service") && SPECIAL_DESTINATIONS.includes(name)) return undefined;
  const m = NAME_CHAR.exec(name);
  if (m !== null) {
    const ch = String.fromCodePoint(name.codePointAt(m.index)!);
    const allowed =
      kind === "command"
        ? "A–Z, 0–9 and _"
        : kind === "server" || kind === "service"
          ? 'ASCII letters, digits and _ (or exactly ".", "*" or "?")'
          : "ASCII letters, digits and _";
    const base = `${what} ${quote(name, 40)} has ${quote(ch, 4)} at position ${m.index + 1}: only ${allowed} are allowed`;
    // An agent's name (web-1) is addressed by its text name (web_1): say so.
    if ((kind !== "server" && kind !== "service") || !/^[A-Za-z0-9_.:@-]+$/.test(name)) return base;
    const mapped = name.replace(/[^A-Za-z0-9_]/g, "_");
    return `${base}; did you mean ${/^[0-9]/.test(mapped) ? `_${mapped}` : mapped}? (an agent's text name has _ for each other character)`;
  }
  if (name.charCodeAt(0) <= 0x39) return `${what} ${quote(name, 40)} cannot start with a digit`;
  if (kind === "command" && /[a-z]/.test(name))
    return `command ${quote(name, 40)} must be uppercase: ${name.toUpperCase()}`;
  return undefined;
}

function paramText(name: string, value: ParamValue): string {
  switch (typeof value) {
    case "string":
      return value;
    case "bigint":
      return value.toString();
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw bad(`parameter ${name} must be a finite number, got ${value}`);
      // Integers are written with all their digits: 1e21 is "1000000000000000000000", not "1e+21".
      return Number.isInteger(value) ? BigInt(value).toString() : String(value);
    default:
      throw bad(`parameter ${name} must be a string, number, bigint or boolean, got ${typeof value}`);
  }
}

function paramEntries(params: ParamsInit): Iterable<readonly [string, ParamValue | undefined]> {
  if (params instanceof Map || Symbol.iterator in params)
    return params as Iterable<readonly [string, ParamValue | undefined]>;
  return Object.entries(params);
}

function byName(a: readonly [string, string], b: readonly [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

function optionalName(kind: NameKind, value: unknown): string {
  if (value === undefined || value === "") return "";
  if (typeof value !== "string") throw bad(`${kind} must be a string, got ${typeof value}`);
  const why = checkMessageName(kind, value);
  if (why !== undefined) throw bad(why);
  return value;
}

// Set by the parsers, which have already checked every field, so that the constructor
// does not check them a second time. Only ever true for the duration of one `new`.
let trusted = false;

function build(init: MessageInit, params: Map<string, string>): Message {
  trusted = true;
  try {
    return new Message({ ...init, params: new Map([...params].sort(byName)) });
  } finally {
    trusted = false;
  }
}

/**
 * One text message. Immutable; every field is checked on construction, so that any
 * message can be written and read back unchanged. Parameters are sorted by name, the
 * order in which they are written.
 */
export class Message {
  readonly command: string;
  readonly server: string;
  readonly service: string;
  readonly sentFromServer: string;
  readonly sentFromService: string;
  readonly params: ReadonlyMap<string, string>;

  /** Builds a message; throws INVALID_ARGUMENT naming the first bad field. */
  constructor(init: MessageInit) {
    if (trusted) {
      trusted = false;
      this.command = init.command;
      this.server = init.server ?? "";
      this.service = init.service ?? "";
      this.sentFromServer = init.sentFromServer ?? "";
      this.sentFromService = init.sentFromService ?? "";
      this.params = init.params as Map<string, string>;
      return;
    }
    if (typeof init !== "object" || init === null) throw bad("a message needs at least a command");
    if (typeof init.command !== "string") throw bad(`command must be a string, got ${typeof init.command}`);
    const why = checkMessageName("command", init.command);
    if (why !== undefined) throw bad(why);
    this.command = init.command;
    this.server = optionalName("server", init.server);
    this.service = optionalName("service", init.service);
    if (this.server !== "" && this.service === "")
      throw bad(
        `server ${quote(this.server, 40)} needs a service: a message is addressed as server:service/COMMAND`,
      );
    this.sentFromServer = optionalName("sent-from server", init.sentFromServer);
    this.sentFromService = optionalName("sent-from service", init.sentFromService);
    const entries: [string, string][] = [];
    const seen = new Set<string>();
    for (const [name, value] of init.params === undefined ? [] : paramEntries(init.params)) {
      const whyName =
        typeof name === "string" ? checkMessageName("parameter", name) : "parameter name must be a string";
      if (whyName !== undefined) throw bad(whyName);
      if (seen.has(name)) throw bad(`parameter ${name} is given twice`);
      seen.add(name);
      if (value === undefined) continue;
      const text = paramText(name, value);
      const nul = text.indexOf("\0");
      if (nul >= 0)
        throw bad(`parameter ${name} has a NUL character at position ${nul + 1}; a NUL ends a message`);
      entries.push([name, text]);
    }
    this.params = new Map(entries.sort(byName));
  }

  /** The value of a parameter, or undefined. */
  get(name: string): string | undefined {
    return this.params.get(name);
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  private need(name: string): string {
    const value = this.params.get(name);
    if (value === undefined) throw bad(`parameter ${name} of command ${this.command} is missing`);
    return value;
  }

  /** A parameter as a number; throws INVALID_ARGUMENT when missing, not an integer, or beyond ±(2⁵³−1). */
  getInteger(name: string): number {
    const value = this.need(name);
    const why = checkInteger(value);
    if (why !== undefined) throw bad(`parameter ${name} of command ${this.command} ${why}`);
    const n = Number(value);
    if (!Number.isSafeInteger(n))
      throw bad(`parameter ${name} of command ${this.command} is ${value}, beyond ±(2⁵³−1)`);
    return n;
  }

  /**
   * A parameter as a timespec (`<seconds>[.<nanoseconds>]`); throws INVALID_ARGUMENT when
   * missing, malformed, or beyond 2⁵³−1 seconds.
   */
  getTimespec(name: string): Timespec {
    const value = this.need(name);
    const why = checkTimespec(value);
    if (why !== undefined) throw bad(`parameter ${name} of command ${this.command} ${why}`);
    try {
      return parseTimespec(value);
    } catch (err) {
      throw bad(`parameter ${name} of command ${this.command}: ${(err as MusterError).rawMessage}`);
    }
  }

  /** A parameter as an address; throws INVALID_ARGUMENT when missing or malformed. */
  getAddress(name: string): Address {
    const value = this.need(name);
    const why = checkAddress(value);
    if (why !== undefined) throw bad(`parameter ${name} of command ${this.command} ${why}`);
    return parseAddress(value);
  }

  /**
   * A reply to this message: addressed to where it came from (the sent-from fields become
   * the destination), as upstream's `reply_to()`. A sent-from server without a sent-from
   * service is dropped, since a server alone cannot be addressed (upstream drops it when
   * writing the line).
   */
  reply(command: string, params?: ParamsInit): Message {
    const init: MessageInit = { command };
    if (this.sentFromService !== "") {
      init.service = this.sentFromService;
      init.server = this.sentFromServer;
    }
    if (params !== undefined) init.params = params;
    return new Message(init);
  }

  /** A copy with some fields replaced; `params`, when given, replaces all parameters. */
  with(changes: Partial<MessageInit>): Message {
    return new Message({
      command: this.command,
      server: this.server,
      service: this.service,
      sentFromServer: this.sentFromServer,
      sentFromService: this.sentFromService,
      params: this.params,
      ...changes,
    });
  }

  /** Whether both messages have the same fields and parameters. */
  equals(other: Message): boolean {
    if (
      this.command !== other.command ||
      this.server !== other.server ||
      this.service !== other.service ||
      this.sentFromServer !== other.sentFromServer ||
      this.sentFromService !== other.sentFromService ||
      this.params.size !== other.params.size
    )
      return false;
    for (const [name, value] of this.params) if (other.params.get(name) !== value) return false;
    return true;
  }

  /** The message as a line (without the newline). */
  toString(): string {
    return formatMessage(this);
  }
}

// ---------------------------------------------------------------------------------------
// Writing

/**
 * A value needs quotes when it holds `;` or starts with `"` (upstream's rule), and also
 * when it ends with a blank: a reader trims the line, which would eat a trailing blank of
 * the last value.
 */
function needsQuotes(value: string): boolean {
  if (value.includes(";") || value.startsWith('"')) return true;
  const last = value.charCodeAt(value.length - 1);
  return last === 0x20 || last === 0x09 || last === 0x0b || last === 0x0c;
}

const ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", '"': '\\"' };

function formatValue(value: string): string {
  if (needsQuotes(value)) return `"${value.replace(/[\\\n\r"]/g, (c) => ESCAPES[c]!)}"`;
  return value.replace(/[\\\n\r]/g, (c) => ESCAPES[c]!);
}

/** Writes a message as one line, without the newline: the canonical form. */
export function formatMessage(message: Message): string {
  const m = message;
  let line = "";
  if (m.sentFromServer !== "" || m.sentFromService !== "")
    line += `<${m.sentFromServer}:${m.sentFromService} `;
  if (m.service !== "") line += m.server === "" ? `${m.service}/` : `${m.server}:${m.service}/`;
  line += m.command;
  let separator = " ";
  for (const [name, value] of m.params) {
    line += `${separator}${name}=${formatValue(value)}`;
    separator = ";";
  }
  return line;
}

/**
 * Writes a message as a JSON object on one line, with the fields upstream uses. Parameter
 * values are strings, except `true`, `false` and integers that any reader turns back into
 * the same text; unlike upstream, every output is valid JSON.
 */
export function messageToJson(message: Message): string {
  const m = message;
  // Null prototypes: a parameter named __proto__ is an ordinary key here.
  const o: Record<string, unknown> = Object.create(null);
  if (m.sentFromServer !== "") o["sent-from-server"] = m.sentFromServer;
  if (m.sentFromService !== "") o["sent-from-service"] = m.sentFromService;
  if (m.server !== "") o["server"] = m.server;
  if (m.service !== "") o["service"] = m.service;
  o["command"] = m.command;
  if (m.params.size > 0) {
    const params: Record<string, unknown> = Object.create(null);
    for (const [name, value] of m.params) params[name] = jsonValue(value);
    o["parameters"] = params;
  }
  return JSON.stringify(o);
}

const SAFE_INTEGER_TEXT = /^(?:0|-?[1-9][0-9]{0,15})$/;

function jsonValue(value: string): string | number | boolean {
  if (value === "true") return true;
  if (value === "false") return false;
  if (SAFE_INTEGER_TEXT.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
  return value;
}

// ---------------------------------------------------------------------------------------
// Reading

interface Limits {
  maxLineBytes: number;
  maxParams: number;
}

function limitsOf(options: ParseOptions | undefined): Limits {
  return {
    maxLineBytes: optionLimit(options?.maxLineBytes, MESSAGE_LIMITS.maxLineBytes, "maxLineBytes", 1),
    maxParams: optionLimit(options?.maxParams, MESSAGE_LIMITS.maxParams, "maxParams", 0),
  };
}

/** Refuses text over the byte limit, counting bytes only when the length cannot decide. */
function checkSize(text: string, max: number): void {
  // Each UTF-16 unit is 1 to 3 UTF-8 bytes (a surrogate pair, 2 units, is 4 bytes).
  if (text.length > max) throw bad(`message is over the ${max}-byte limit (at least ${text.length} bytes)`);
  if (text.length * 3 > max) {
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > max) throw bad(`message is ${bytes} bytes, over the ${max}-byte limit`);
  }
}

// The blanks C's isspace() sees, which upstream trims around a line (a telnet \r, say).
function isBlank(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * Reads one message: a text line, or a JSON object when the line starts with `{`. Blanks
 * around the line are ignored (so a trailing `\r` or `\n` is harmless). Throws
 * INVALID_ARGUMENT with a one-line reason naming the column (1-based, in UTF-16 units of
 * `line`) or the field at fault.
 */
export function parseMessage(line: string, options?: ParseOptions): Message {
  const limits = limitsOf(options);
  if (typeof line !== "string") throw bad(`a message must be a string, got ${typeof line}`);
  checkSize(line, limits.maxLineBytes);
  let start = 0;
  let end = line.length;
  while (start < end && isBlank(line.charCodeAt(start))) start++;
  while (end > start && isBlank(line.charCodeAt(end - 1))) end--;
  if (start === end) throw bad("empty message: a line needs at least a command");
  const nul = line.indexOf("\0", start);
  if (nul >= 0 && nul < end) throw bad(`column ${nul + 1}: NUL character; a NUL ends a message`);
  if (line.charCodeAt(start) === 0x7b) return fromJson(line.slice(start, end), limits);
  return new TextReader(line.slice(0, end), start, limits).read();
}

const COLON = 0x3a;
const SLASH = 0x2f;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SEMICOLON = 0x3b;

class TextReader {
  constructor(
    private readonly line: string,
    private pos: number,
    private readonly limits: Limits,
  ) {}

  private fail(at: number, problem: string): never {
    throw bad(`column ${at + 1}: ${problem}`);
  }

  private name(kind: NameKind, value: string, at: number): string {
    const why = checkMessageName(kind, value);
    if (why !== undefined) this.fail(at, why);
    return value;
  }

  /** Index of `ch` at or after `from`, or the end of the line. */
  private find(ch: string, from: number): number {
    const i = this.line.indexOf(ch, from);
    return i < 0 ? this.line.length : i;
  }

  read(): Message {
    const line = this.line;
    const end = line.length;
    const init: MessageInit = { command: "" };
    if (line.charCodeAt(this.pos) === 0x3c) this.sentFrom(init);

    // The address and command run to the first space.
    const tokenEnd = this.find(" ", this.pos);
    let part = this.pos;
    let serverAt = -1;
    let serviceAt = -1;
    for (let i = this.pos; i < tokenEnd; i++) {
      const c = line.charCodeAt(i);
      if (c === COLON) {
        if (serviceAt >= 0) this.fail(i, "':' after the service's '/': the form is server:service/COMMAND");
        if (serverAt >= 0) this.fail(i, "second ':': the form is server:service/COMMAND");
        if (i === part) this.fail(i, "empty server name before ':'");
        init.server = line.slice(part, i);
        serverAt = part;
        part = i + 1;
      } else if (c === SLASH) {
        if (serviceAt >= 0) this.fail(i, "second '/': the form is server:service/COMMAND");
        if (i === part) this.fail(i, "empty service name before '/'");
        init.service = line.slice(part, i);
        serviceAt = part;
        part = i + 1;
      }
    }
    if (part === tokenEnd) this.fail(part, "command is missing");
    if (serverAt >= 0 && serviceAt < 0)
      this.fail(
        serverAt,
        `server ${quote(init.server!, 40)} has no service: the form is server:service/COMMAND`,
      );
    if (serverAt >= 0) this.name("server", init.server!, serverAt);
    if (serviceAt >= 0) this.name("service", init.service!, serviceAt);
    init.command = this.name("command", line.slice(part, tokenEnd), part);

    const params = new Map<string, string>();
    // The line is trimmed, so a space here is always followed by parameters.
    if (tokenEnd < end) this.params(tokenEnd + 1, params);
    return build(init, params);
  }

  private sentFrom(init: MessageInit): void {
    const line = this.line;
    const open = this.pos;
    let colon = open + 1;
    for (; colon < line.length && line.charCodeAt(colon) !== COLON; colon++) {
      if (line.charCodeAt(colon) === 0x20)
        this.fail(colon, "space in the sent-from server: the prefix is <server:service followed by a space");
    }
    if (colon === line.length) this.fail(open, "sent-from prefix has no ':': the prefix is <server:service");
    const space = this.find(" ", colon + 1);
    if (space === line.length) this.fail(open, "sent-from prefix is not followed by a space and a command");
    const server = line.slice(open + 1, colon);
    const service = line.slice(colon + 1, space);
    if (server !== "") init.sentFromServer = this.name("sent-from server", server, open + 1);
    if (service !== "") init.sentFromService = this.name("sent-from service", service, colon + 1);
    this.pos = space + 1;
  }

  private params(from: number, params: Map<string, string>): void {
    const line = this.line;
    const end = line.length;
    let p = from;
    while (p < end) {
      if (params.size >= this.limits.maxParams)
        this.fail(p, `more than ${this.limits.maxParams} parameters in one message`);
      const eq = this.find("=", p);
      const semicolon = this.find(";", p);
      if (semicolon < eq) {
        if (semicolon === p) this.fail(p, "empty parameter name");
        this.fail(p, `parameter ${quote(line.slice(p, semicolon), 40)} has no '=': the form is name=value`);
      }
      if (eq === p) this.fail(p, "empty parameter name");
      const name = this.name("parameter", line.slice(p, eq), p);
      if (eq === end) this.fail(p, `parameter ${name} has no '=': the form is name=value`);
      let value: string;
      const v = eq + 1;
      if (v < end && line.charCodeAt(v) === QUOTE) {
        const [text, close] = this.quoted(v, name);
        value = text;
        p = close + 1;
        if (p < end) {
          if (line.charCodeAt(p) !== SEMICOLON)
            this.fail(
              p,
              `${quote(String.fromCodePoint(line.codePointAt(p)!), 4)} after the closing quote of parameter ${name}; expected ';' or the end of the line`,
            );
          p++;
        }
      } else {
        const stop = Math.min(semicolon, end);
        value = unescapeValue(line.slice(v, stop));
        p = stop + 1;
      }
      if (params.has(name)) this.fail(eq - name.length, `parameter ${name} appears twice`);
      params.set(name, value);
    }
  }

  /** Reads a quoted value opened at `open`; returns the value and the closing quote's index. */
  private quoted(open: number, name: string): [string, number] {
    const line = this.line;
    let text = "";
    let chunk = open + 1;
    // Jumps from backslash to backslash, so that a value costs O(its length) however it is made.
    let close = line.indexOf('"', chunk);
    let backslash = line.indexOf("\\", chunk);
    for (;;) {
      if (close < 0) this.fail(open, `quoted value of parameter ${name} has no closing quote`);
      if (backslash < 0 || backslash > close) return [text + line.slice(chunk, close), close];
      const replacement = escaped(line.charCodeAt(backslash + 1), true);
      let next = backslash + 1;
      if (replacement !== undefined) {
        text += line.slice(chunk, backslash) + replacement;
        chunk = next = backslash + 2;
      }
      if (close < next) close = line.indexOf('"', next);
      backslash = line.indexOf("\\", next);
    }
  }
}

/**
 * What the escape `\` + `c` stands for, or undefined when it is not an escape and stays as
 * it is. `\"` is an escape in a quoted value only; outside quotes it is two characters.
 */
function escaped(c: number, quoted: boolean): string | undefined {
  switch (c) {
    case BACKSLASH:
      return "\\";
    case 0x6e:
      return "\n";
    case 0x72:
      return "\r";
    case QUOTE:
      return quoted ? '"' : undefined;
    default:
      return undefined;
  }
}

/** Undoes the writer's escapes in an unquoted value. */
function unescapeValue(raw: string): string {
  let backslash = raw.indexOf("\\");
  if (backslash < 0) return raw;
  let text = "";
  let chunk = 0;
  while (backslash >= 0) {
    const replacement = escaped(raw.charCodeAt(backslash + 1), false);
    let next = backslash + 1;
    if (replacement !== undefined) {
      text += raw.slice(chunk, backslash) + replacement;
      chunk = next = backslash + 2;
    }
    backslash = raw.indexOf("\\", next);
  }
  return text + raw.slice(chunk);
}

/** Reads a message in its JSON form. Throws INVALID_ARGUMENT naming the field at fault. */
export function messageFromJson(text: string, options?: ParseOptions): Message {
  const limits = limitsOf(options);
  if (typeof text !== "string") throw bad(`a JSON message must be a string, got ${typeof text}`);
  checkSize(text, limits.maxLineBytes);
  return fromJson(text, limits);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function fromJson(text: string, limits: Limits): Message {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    if (err instanceof RangeError) throw bad("JSON message is nested too deeply to parse");
    const reason = oneLine(err instanceof Error ? err.message : String(err)).slice(0, 200);
    throw bad(`JSON message is not valid JSON: ${reason}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw bad(`JSON message must be an object, got ${describe(value)}`);
  const o = value as Record<string, unknown>;
  const field = (key: string): string | undefined => {
    if (!Object.hasOwn(o, key)) return undefined;
    const v = o[key];
    if (typeof v !== "string") throw bad(`JSON field "${key}" must be a string, got ${describe(v)}`);
    return v;
  };
  // Unknown fields are ignored, as upstream does, so that newer peers can add some.
  const command = field("command");
  if (command === undefined) throw bad('JSON message has no "command" field');
  const init: MessageInit = { command };
  const server = field("server");
  const service = field("service");
  const sentFromServer = field("sent-from-server");
  const sentFromService = field("sent-from-service");
  if (server !== undefined) init.server = server;
  if (service !== undefined) init.service = service;
  if (sentFromServer !== undefined) init.sentFromServer = sentFromServer;
  if (sentFromService !== undefined) init.sentFromService = sentFromService;
  if (Object.hasOwn(o, "parameters")) {
    const p = o["parameters"];
    if (typeof p !== "object" || p === null || Array.isArray(p))
      throw bad(`JSON field "parameters" must be an object, got ${describe(p)}`);
    const entries = Object.entries(p);
    if (entries.length > limits.maxParams)
      throw bad(`JSON message has ${entries.length} parameters, more than ${limits.maxParams}`);
    init.params = entries.map(([name, v]): [string, string] => [name, jsonParam(name, v)]);
  }
  return new Message(init);
}

/** A JSON parameter value as text: upstream's conversions, without its loss of digits. */
function jsonParam(name: string, value: unknown): string {
  switch (typeof value) {
    case "string":
      return value;
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value))
        throw bad(`JSON parameter ${quote(name, 40)} is a number too large to hold`);
      return Number.isInteger(value) ? BigInt(value).toString() : String(value);
    default:
      if (value === null) return "";
      throw bad(
        `JSON parameter ${quote(name, 40)} must be a string, number, true, false or null, got ${describe(value)}`,
      );
  }
}
