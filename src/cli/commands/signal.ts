import { createSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { hostname } from "node:os";
import { connect as tlsConnect } from "node:tls";
import { type Command, InvalidArgumentError, Option } from "commander";
import { parseDocument } from "yaml";
import { MusterError } from "../../errors/muster-error.js";
import { LineSplitter } from "../../text/lines.js";
import { checkMessageName, Message, parseMessage } from "../../text/message.js";
import { DEFAULT_MAX_LINE_BYTES } from "../../text/service.js";
import { formatTextAddress, isLoopbackHost, parseTextAddress } from "../../text/url.js";
import type { TlsClientOptions } from "../../transport/types.js";
import { dialTlsFrom, EXIT, fail, withDialTls } from "../common.js";
import { type CredentialFlags, credentialFrom, withCredentialOptions } from "../credentials.js";
import { parseDuration } from "../parse.js";

/*
 * `muster signal`: sends one text message (the line format of eventdispatcher, as its
 * `ed-signal` tool does) to a text endpoint over UDP, TCP (optionally TLS) or a Unix stream
 * socket, and optionally prints the first reply.
 */

/** How the message travels. */
export type SignalType = "udp" | "tcp" | "unix";

export const SIGNAL_TYPES: readonly SignalType[] = ["udp", "tcp", "unix"];

/** The port used when an address has none: the UDP port of an eventdispatcher communicator. */
export const DEFAULT_SIGNAL_PORT = 4041;
export const DEFAULT_SIGNAL_HOST = `127.0.0.1:${DEFAULT_SIGNAL_PORT}`;

/** The largest UDP datagram a text endpoint accepts, in bytes. */
export const MAX_UDP_MESSAGE_BYTES = 1024;

/** The sent-from service of every message this command sends. */
export const SIGNAL_SERVICE_NAME = "muster_signal";

/** Replies that say the message was not taken. */
export const ERROR_REPLIES: readonly string[] = ["INVALID", "UNKNOWN", "SERVICE_UNAVAILABLE"];

/** A failure with the exit status it calls for. */
export class SignalError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "SignalError";
  }
}

const usage = (message: string): SignalError => new SignalError(message, EXIT.USAGE);

/** Where the message goes. */
export type SignalTarget =
  | { readonly type: "tcp"; readonly host: string; readonly port: number; readonly tls: boolean }
  | { readonly type: "udp"; readonly host: string; readonly port: number }
  | { readonly type: "unix"; readonly path: string };

/** A target as a URL, for messages: `udp://127.0.0.1:4041`, `tls://[::1]:3001`, `unix:/run/x.sock`. */
export function describeTarget(t: SignalTarget): string {
  if (t.type === "unix") return formatTextAddress({ kind: "unix", path: t.path });
  const kind = t.type === "tcp" && t.tls ? "tls" : t.type;
  return formatTextAddress({ kind, host: t.host, port: t.port });
}

// ---------------------------------------------------------------------------------------
// The message

/** The parts of `[[server:]service/]COMMAND`. */
export interface Destination {
  server?: string;
  service?: string;
  command: string;
}

function checked(kind: "server" | "service" | "command", name: string, where: string): string {
  const why = checkMessageName(kind, name);
  if (why !== undefined) throw usage(`${where}: ${why}`);
  return name;
}

/** Reads `[[server:]service/]COMMAND`; throws a usage error naming what is wrong. */
export function parseDestination(text: string): Destination {
  const where = `message ${JSON.stringify(text)}`;
  const form = "the form is [[server:]service/]COMMAND";
  if (text.trim() === "") throw usage(`the message is empty: ${form}`);
  if (/\s/.test(text))
    throw usage(`${where} has a blank: ${form}, and parameters are given with -p name=value`);
  const slash = text.indexOf("/");
  if (slash >= 0 && text.indexOf("/", slash + 1) >= 0) throw usage(`${where} has a second '/': ${form}`);
  const address = slash >= 0 ? text.slice(0, slash) : "";
  const command = slash >= 0 ? text.slice(slash + 1) : text;
  if (command.includes(":"))
    throw usage(
      slash >= 0
        ? `${where} has ':' after the '/': ${form}`
        : `${where} names a server without a service: ${form}`,
    );
  if (command === "") throw usage(`${where} has no command after the '/': ${form}`);
  const out: Destination = { command: checked("command", command, where) };
  if (slash < 0) return out;
  if (address === "") throw usage(`${where} has an empty service before the '/': ${form}`);
  const colon = address.indexOf(":");
  if (colon >= 0 && address.indexOf(":", colon + 1) >= 0) throw usage(`${where} has a second ':': ${form}`);
  if (colon === 0) throw usage(`${where} has an empty server before the ':': ${form}`);
  if (colon === address.length - 1) throw usage(`${where} has an empty service before the '/': ${form}`);
  if (colon > 0) out.server = checked("server", address.slice(0, colon), where);
  out.service = checked("service", colon > 0 ? address.slice(colon + 1) : address, where);
  return out;
}

/** Reads the `-p` values (`name[=value]`) into pairs; a missing `=value` is an empty value. */
export function parseParams(items: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const eq = item.indexOf("=");
    const name = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? "" : item.slice(eq + 1);
    if (name === "") throw usage(`-p ${JSON.stringify(item)}: the parameter name is empty; use name=value`);
    const why = checkMessageName("parameter", name);
    if (why !== undefined) throw usage(`-p ${JSON.stringify(item)}: ${why}`);
    if (seen.has(name)) throw usage(`parameter ${name} is given twice (-p)`);
    const nul = value.indexOf("\0");
    if (nul >= 0) throw usage(`-p ${name}: the value has a NUL character; a NUL ends a message`);
    seen.add(name);
    out.push([name, value]);
  }
  return out;
}

/**
 * This machine's name as a sent-from server: characters other than letters, digits and `_`
 * become `_` (`web-1.example.com` → `web_1_example_com`); a name that is still invalid (it
 * starts with a digit) gives "", and the message then carries no sent-from server.
 */
export function sentFromServerName(host: string = hostname()): string {
  if (host === "") return "";
  if (checkMessageName("sent-from server", host) === undefined) return host;
  const fixed = host.replace(/[^A-Za-z0-9_]/g, "_");
  return checkMessageName("sent-from server", fixed) === undefined ? fixed : "";
}

export interface MessageFlags {
  /** The message text, `[[server:]service/]COMMAND`. */
  message?: string;
  server?: string;
  service?: string;
  /** `-p` values, `name[=value]`. */
  params?: readonly string[];
  secretCode?: string;
  /** The credential, sent as the parameter `token` (a server takes it out before anything else sees the message). */
  token?: string;
  /** The sent-from server; "" for none. @default sentFromServerName() */
  sentFromServer?: string;
}

function merge(
  field: "server" | "service",
  flag: string | undefined,
  inText: string | undefined,
  text: string,
) {
  if (flag === undefined) return inText;
  const option = field === "server" ? "--server" : "--service";
  const why = checkMessageName(field, flag);
  if (why !== undefined) throw usage(`${option}: ${why}`);
  if (inText !== undefined && inText !== flag)
    throw usage(
      `${option} ${flag} conflicts with ${field} ${inText} in the message ${JSON.stringify(text)}: give it once`,
    );
  return flag;
}

/** Builds the message to send from the command's flags; throws usage errors. */
export function buildSignalMessage(flags: MessageFlags): Message {
  if (flags.message === undefined)
    throw usage("no message: give [[server:]service/]COMMAND as the argument or with -m");
  const d = parseDestination(flags.message);
  const server = merge("server", flags.server, d.server, flags.message);
  const service = merge("service", flags.service, d.service, flags.message);
  if (server !== undefined && service === undefined)
    throw usage(
      `server ${server} needs a service: a message is addressed as server:service/COMMAND (add --service or service/ to the message)`,
    );
  const params = parseParams(flags.params ?? []);
  if (flags.secretCode !== undefined) {
    if (flags.secretCode === "") throw usage("--secret-code cannot be empty");
    if (flags.secretCode.includes("\0")) throw usage("--secret-code has a NUL character");
    if (params.some(([name]) => name === "secret_code"))
      throw usage("parameter secret_code is given twice: by -p and by --secret-code");
    params.push(["secret_code", flags.secretCode]);
  }
  if (flags.token !== undefined) {
    if (params.some(([name]) => name === "token"))
      throw usage(
        "parameter token is given twice: by -p and by the credential (--token, --token-file, $MUSTER_TOKEN)",
      );
    params.push(["token", flags.token]);
  }
  try {
    return new Message({
      command: d.command,
      server: server ?? "",
      service: service ?? "",
      sentFromServer: flags.sentFromServer ?? sentFromServerName(),
      sentFromService: SIGNAL_SERVICE_NAME,
      params,
    });
  } catch (err) {
    throw usage(err instanceof MusterError ? err.rawMessage : String(err));
  }
}

/** Why a line cannot go in one UDP datagram, or undefined when it can. */
export function udpSizeProblem(line: string): string | undefined {
  const bytes = Buffer.byteLength(line, "utf8");
  if (bytes <= MAX_UDP_MESSAGE_BYTES) return undefined;
  return `the message is ${bytes} bytes, over the ${MAX_UDP_MESSAGE_BYTES} bytes a UDP datagram may carry: send it with --type tcp or --type unix`;
}

// ---------------------------------------------------------------------------------------
// The address, possibly read from a configuration file

const FIELD = /^[A-Za-z0-9_-]+(?:(?:\.|::)[A-Za-z0-9_-]+)*$/;
const URL_START = /^(?:tcp|tls|udp):\/\/|^unix:/;

/** `FILE@FIELD` split in two, or undefined when `text` is not of that form. */
export function splitFileField(text: string): { file: string; field: string } | undefined {
  if (URL_START.test(text)) return undefined;
  const at = text.lastIndexOf("@");
  if (at <= 0) return undefined;
  const field = text.slice(at + 1);
  if (!FIELD.test(field)) return undefined;
  return { file: text.slice(0, at), field };
}

/** What a configuration value is, for "… is a number, not a string". */
function kindOf(value: unknown): string {
  if (value === null) return "empty";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `a ${typeof value}`;
}

type YamlMap = { [key: string]: unknown };

/**
 * Reads `text` as a YAML (or JSON) document whose top level is a mapping, or returns
 * undefined when it is not one. Aliases are expanded with a bound, so that a hostile file
 * cannot make them explode.
 */
export function parseYamlMapping(text: string): YamlMap | undefined {
  let value: unknown;
  try {
    const doc = parseDocument(text, { uniqueKeys: true });
    if (doc.errors.length > 0) return undefined;
    value = doc.toJS({ maxAliasCount: 100 });
  } catch {
    return undefined;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as YamlMap)
    : undefined;
}

/**
 * Reads `name=value` lines in the style of advgetopt configuration files: `#` starts a
 * comment line, blanks around the name and value are dropped, a value in matching quotes
 * loses them, `[section]` prefixes the names that follow with `section::`, and a later line
 * overrides an earlier one. Throws a usage error naming the first line that is none of these.
 */
export function parseConfLines(text: string, where: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = "";
  for (const [i, raw] of text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const head = /^\[\s*([A-Za-z0-9_:.-]*)\s*\]$/.exec(line);
    if (head !== null) {
      section = head[1]!;
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0)
      throw usage(`${where}: line ${i + 1} is not name=value, and the file is not a YAML or JSON mapping`);
    const name = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && /^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    out.set(confKey(section === "" ? name : `${section}::${name}`), value);
  }
  return out;
}

/** Names compare as advgetopt compares them: `_` and `-` alike, `.` as the section separator `::`. */
function confKey(name: string): string {
  return name.replace(/_/g, "-").replace(/\./g, "::");
}

function walk(doc: YamlMap, field: string, file: string, where: string): unknown {
  if (Object.hasOwn(doc, field)) return doc[field];
  const parts = field.split(/\.|::/);
  let node: unknown = doc;
  for (const [i, part] of parts.entries()) {
    if (typeof node !== "object" || node === null || Array.isArray(node)) {
      const parent = parts.slice(0, i).join(".");
      throw usage(`${where}: in ${file}, ${parent} is ${kindOf(node)}, not a mapping, so it has no ${part}`);
    }
    const map = node as YamlMap;
    if (!Object.hasOwn(map, part)) throw usage(`${where}: ${file} has no field ${field}`);
    node = map[part];
  }
  return node;
}

/**
 * The value of `field` in a configuration file: a YAML or JSON mapping (a dotted field
 * such as `text.udp` walks nested mappings) or else `name=value` lines. Throws a usage
 * error naming the file and the field when the file cannot be read, has no such field, or
 * the field is not a non-empty string.
 */
export function readConfigField(
  file: string,
  field: string,
  readFile: (path: string) => string = (p) => readFileSync(p, "utf8"),
): string {
  const where = `--host ${file}@${field}`;
  let text: string;
  try {
    text = readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw usage(`${where}: cannot read ${file}: ${e.code ?? e.message}`);
  }
  let value: unknown;
  const body = text.replace(/^\uFEFF/, "");
  if (/^\s*[{[]/.test(body)) {
    let doc: unknown;
    try {
      doc = JSON.parse(body);
    } catch (err) {
      throw usage(`${where}: ${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc))
      throw usage(`${where}: ${file} holds ${kindOf(doc)}, not a mapping`);
    value = walk(doc as YamlMap, field, file, where);
  } else {
    const doc = parseYamlMapping(body);
    if (doc !== undefined) value = walk(doc, field, file, where);
    else {
      const lines = parseConfLines(body, `${where}: ${file}`);
      value = lines.get(confKey(field));
      if (value === undefined) throw usage(`${where}: ${file} has no field ${field}`);
    }
  }
  if (typeof value !== "string")
    throw usage(`${where}: field ${field} in ${file} is ${kindOf(value)}, not a string`);
  if (value.trim() === "") throw usage(`${where}: field ${field} in ${file} is empty`);
  return value.trim();
}

const KIND_LABEL = { tcp: "TCP", tls: "TLS", udp: "UDP", unix: "Unix socket" } as const;

export interface TargetFlags {
  /** `--host` as given; undefined when left out. */
  host?: string;
  /** `--type` when given explicitly; undefined when left to its default. */
  type?: SignalType;
  /** `--tls` */
  tls?: boolean;
  /** Reads a configuration file (for tests). */
  readFile?: (path: string) => string;
}

/**
 * Where to send, from `--host`, `--type` and `--tls`. `--host` is HOST:PORT (the port
 * defaults to 4041), `[IPv6]:PORT`, a socket path (with `--type unix`), a URL
 * (`udp://`, `tcp://`, `tls://`, `unix:`) whose scheme sets the type, or `FILE@FIELD` whose
 * value is any of those. Throws usage errors.
 */
export function resolveTarget(flags: TargetFlags): SignalTarget {
  if (flags.host === undefined && flags.type === "unix")
    throw usage("--type unix needs --host with the socket path, e.g. --host /run/muster/text.sock");
  let text = flags.host ?? DEFAULT_SIGNAL_HOST;
  let origin = `--host ${JSON.stringify(text)}`;
  const ref = splitFileField(text);
  if (ref !== undefined) {
    text = readConfigField(ref.file, ref.field, flags.readFile);
    origin = `${ref.file}@${ref.field} (${JSON.stringify(text)})`;
  }
  if (URL_START.test(text)) {
    let a: ReturnType<typeof parseTextAddress>;
    try {
      a = parseTextAddress(text);
    } catch (err) {
      throw usage(
        `${ref === undefined ? "--host" : `${ref.file}@${ref.field}`}: ${(err as MusterError).rawMessage}`,
      );
    }
    const type: SignalType = a.kind === "unix" ? "unix" : a.kind === "udp" ? "udp" : "tcp";
    if (flags.type !== undefined && flags.type !== type)
      throw usage(`--type ${flags.type} contradicts ${origin}, a ${KIND_LABEL[a.kind]} address`);
    if (flags.tls === true && type !== "tcp")
      throw usage(`--tls is for TCP only, and ${origin} is a ${KIND_LABEL[a.kind]} address`);
    if (a.kind === "unix") return { type: "unix", path: a.path };
    if (a.port === 0) throw usage(`${origin}: port 0 cannot be sent to`);
    if (a.kind === "udp") return { type: "udp", host: a.host, port: a.port };
    return { type: "tcp", host: a.host, port: a.port, tls: a.kind === "tls" || flags.tls === true };
  }
  const type = flags.type ?? "udp";
  if (flags.tls === true && type !== "tcp") throw usage(`--tls is for --type tcp, not --type ${type}`);
  if (type === "unix") {
    if (text.includes("\0")) throw usage(`${origin}: the socket path has a NUL character`);
    return { type: "unix", path: text };
  }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/@]+))(?::(\d{1,5}))?$/.exec(text);
  if (m === null) {
    if (text.includes("/"))
      throw usage(`${origin} looks like a socket path: add --type unix, or write unix:${text}`);
    throw usage(
      `${origin} is not an address: use HOST:PORT (127.0.0.1:4041, [::1]:4041, localhost:4041), a URL (udp://, tcp://, tls://, unix:) or FILE@FIELD`,
    );
  }
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined && isIP(host) !== 6) throw usage(`${origin}: ${host} is not an IPv6 address`);
  const port = m[3] === undefined ? DEFAULT_SIGNAL_PORT : Number(m[3]);
  if (port < 1 || port > 65535) throw usage(`${origin}: port ${m[3]} is out of range: 1 to 65535`);
  return type === "tcp" ? { type, host, port, tls: flags.tls === true } : { type, host, port };
}

// ---------------------------------------------------------------------------------------
// Sending

/** Why a reply line is an error (its command, or that it does not parse), or undefined. */
export function replyProblem(line: string): string | undefined {
  let command: string;
  try {
    command = parseMessage(line).command;
  } catch (err) {
    return `not a valid message: ${err instanceof MusterError ? err.rawMessage : String(err)}`;
  }
  return ERROR_REPLIES.includes(command) ? command : undefined;
}

/** A duration for messages: `5s`, `300ms`, `1.5s`. */
export function formatMs(ms: number): string {
  return ms >= 1000 && ms % 100 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export interface SendOptions {
  target: SignalTarget;
  /** The message as a line, without a newline. */
  line: string;
  /** Wait for the first reply line (stream sockets only). */
  reply?: boolean;
  /** Bounds connecting, and then the wait for the reply or for the peer to close. @default 5000 */
  timeoutMs?: number;
  /** TLS settings when the target is TLS. */
  tls?: TlsClientOptions;
}

export interface SignalResult {
  /** The first reply line, with `reply`. */
  reply?: string;
  /** Reply lines that are errors (INVALID, UNKNOWN, SERVICE_UNAVAILABLE, or not a message). */
  errors: string[];
}

function errnoText(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && /^E[A-Z0-9]+$/.test(code)) return code;
  return code === undefined ? err.message : `${err.message} (${code})`;
}

/**
 * Sends one message. UDP: one datagram, nothing awaited. TCP, TLS and Unix: the line and a
 * newline; with `reply` resolves with the first reply line, otherwise half-closes and
 * resolves when the peer has closed, with the error replies seen. Rejects with a
 * SignalError carrying the exit status: UNREACHABLE when the peer cannot be reached,
 * FAILED for a message too long, a timeout or a connection closed before a reply.
 */
export async function sendSignal(o: SendOptions): Promise<SignalResult> {
  if (o.target.type === "udp") {
    await sendDatagram(o.target, o.line);
    return { errors: [] };
  }
  return converse(o.target, o);
}

async function sendDatagram(target: { host: string; port: number }, line: string): Promise<void> {
  const tooLong = udpSizeProblem(line);
  if (tooLong !== undefined) throw new SignalError(tooLong, EXIT.FAILED);
  const where = describeTarget({ type: "udp", ...target });
  let address = target.host;
  let family = isIP(address);
  if (family === 0) {
    try {
      ({ address, family } = await lookup(target.host));
    } catch (err) {
      throw new SignalError(`cannot resolve ${target.host}: ${errnoText(err as Error)}`, EXIT.UNREACHABLE);
    }
  }
  const socket = createSocket(family === 6 ? "udp6" : "udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, () => {
        // As upstream: a broadcast address needs SO_BROADCAST, harmless otherwise.
        if (family === 4) socket.setBroadcast(true);
        socket.send(Buffer.from(line, "utf8"), target.port, address, (err) =>
          err ? reject(err) : resolve(),
        );
      });
    });
  } catch (err) {
    throw new SignalError(`cannot send to ${where}: ${errnoText(err as Error)}`, EXIT.FAILED);
  } finally {
    socket.close();
  }
}

function converse(target: Exclude<SignalTarget, { type: "udp" }>, o: SendOptions): Promise<SignalResult> {
  const where = describeTarget(target);
  const timeoutMs = o.timeoutMs ?? 5000;
  const wantReply = o.reply === true;
  return new Promise((resolve, reject) => {
    let socket: Socket;
    let connectEvent = "connect";
    if (target.type === "unix") socket = netConnect({ path: target.path });
    else if (target.tls) {
      const tls = o.tls ?? {};
      connectEvent = "secureConnect";
      socket = tlsConnect({
        host: target.host,
        port: target.port,
        ca: tls.ca,
        ...(tls.cert !== undefined && tls.key !== undefined ? { cert: tls.cert, key: tls.key } : {}),
        rejectUnauthorized: tls.insecure !== true,
        // SNI carries names only; Node checks an IP host against the IP SANs by itself.
        servername: tls.servername ?? (isIP(target.host) ? undefined : target.host),
      });
    } else socket = netConnect({ host: target.host, port: target.port });

    let connected = false;
    let settled = false;
    const errors: string[] = [];
    const splitter = new LineSplitter(DEFAULT_MAX_LINE_BYTES);
    const finish = (result: SignalResult | SignalError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (result instanceof SignalError) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(() => {
      const within = `within ${formatMs(timeoutMs)}`;
      if (!connected) finish(new SignalError(`cannot connect to ${where} ${within}`, EXIT.UNREACHABLE));
      else if (wantReply) finish(new SignalError(`no reply from ${where} ${within}`, EXIT.FAILED));
      else finish(new SignalError(`${where} did not close the connection ${within}`, EXIT.FAILED));
    }, timeoutMs);

    const onLine = (raw: string): void => {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line.trim() === "") return;
      const problem = replyProblem(line);
      if (wantReply) finish({ reply: line, errors: problem === undefined ? [] : [line] });
      else if (problem !== undefined) errors.push(line);
    };

    socket.once(connectEvent, () => {
      connected = true;
      socket.write(`${o.line}\n`);
      // Our end of input: a text endpoint answers what it read, then closes.
      if (!wantReply) socket.end();
    });
    socket.on("data", (chunk: Buffer) => {
      try {
        splitter.push(chunk, onLine);
      } catch (err) {
        finish(
          new SignalError(`${where} sent ${(err as MusterError).rawMessage ?? String(err)}`, EXIT.FAILED),
        );
      }
    });
    socket.on("error", (err) => {
      if (!connected)
        finish(new SignalError(`cannot connect to ${where}: ${errnoText(err)}`, EXIT.UNREACHABLE));
      else finish(new SignalError(`${where}: ${errnoText(err)}`, EXIT.FAILED));
    });
    socket.on("close", () => {
      if (!connected)
        finish(new SignalError(`cannot connect to ${where}: connection closed`, EXIT.UNREACHABLE));
      else if (wantReply)
        finish(
          new SignalError(
            splitter.pending > 0
              ? `${where} closed the connection in the middle of a reply line`
              : `${where}: connection closed before a reply`,
            EXIT.FAILED,
          ),
        );
      else finish({ errors });
    });
  });
}

// ---------------------------------------------------------------------------------------
// The command

interface SignalFlags extends CredentialFlags {
  message?: string;
  param?: string[];
  server?: string;
  service?: string;
  host: string;
  type: SignalType;
  tls: boolean;
  tlsCa?: string;
  tlsInsecure: boolean;
  secretCode?: string;
  reply: boolean;
  timeout: number;
}

function timeoutFlag(text: string): number {
  if (text.trim().startsWith("-")) throw new InvalidArgumentError("--timeout cannot be negative");
  const ms = parseDuration(text);
  if (ms === 0) throw new InvalidArgumentError("--timeout must be above 0");
  return ms;
}

const collect = (text: string, previous: string[] = []): string[] => [...previous, text];

export function registerSignal(program: Command): void {
  withCredentialOptions(
    withDialTls(
      program
        .command("signal")
        .description("send one text message to a text endpoint over UDP, TCP, TLS or a Unix socket")
        .argument("[message]", "[[server:]service/]COMMAND, e.g. STOP, web_1/ALIVE or '*/STOP'")
        .option("-m, --message <message>", "the message, instead of the argument")
        .option(
          "-p, --param <name[=value]>",
          "add a parameter, repeatable; without =value the value is empty",
          collect,
        )
        .option(
          "-s, --server <name>",
          "destination server name inside the message (not where to connect: see --host); needs a service",
        )
        .option("-S, --service <name>", "destination service name inside the message")
        .addOption(
          new Option(
            "-H, --host <address>",
            "where to send: HOST:PORT, [IPv6]:PORT, a socket path with --type unix, a URL (udp://, tcp://, tls://, unix:) or FILE@FIELD to read one from a YAML, JSON or name=value file",
          ).default(DEFAULT_SIGNAL_HOST),
        )
        .addOption(
          new Option("-t, --type <type>", "udp (one datagram, fire and forget), tcp or unix (stream sockets)")
            .choices([...SIGNAL_TYPES])
            .default("udp"),
        )
        .option("-e, --tls", "TCP only: connect with TLS", false)
        .option("-c, --secret-code <code>", "UDP only: add the parameter secret_code=<code>")
        .option("-r, --reply", "TCP and Unix only: wait for the first reply line and print it", false)
        .addOption(
          new Option(
            "--timeout <duration>",
            "how long to wait to connect, then for the reply (--reply) or for the peer to close",
          )
            .default(5000, "5s")
            .argParser(timeoutFlag),
        ),
    ),
  )
    .addHelpText(
      "after",
      `
The message carries the sent-from prefix <HOSTNAME:${SIGNAL_SERVICE_NAME} (the host name with
characters other than letters, digits and _ turned into _; left out if it starts with a digit).
Parameters are written sorted by name. --server and --service may also be written in the
message (server:service/COMMAND); giving a different value in both is an error.

UDP sends one datagram of at most ${MAX_UDP_MESSAGE_BYTES} bytes and waits for nothing. TCP, TLS and Unix
sockets send the line, then: without --reply, close their side and wait for the peer to close,
reporting replies INVALID, UNKNOWN or SERVICE_UNAVAILABLE on standard error; with --reply, print
the first reply line on standard output.

The credential — --token, $MUSTER_TOKEN or --token-file; else, for an address on this machine,
an admin token signed with the local key (--key, or the default key when readable) — goes in
the parameter token=, which a muster server requires for anything but ALIVE and HELP from
this machine, and takes out before the message goes further.

FILE@FIELD reads the address from a configuration file: a YAML or JSON mapping (a dotted field
such as text.udp walks nested mappings) or name=value lines (# comments). The value may be
HOST:PORT, a socket path or a URL; a URL's scheme sets --type unless --type is given, and then
they must agree.

Exit status: 0 sent (and, for TCP and Unix, the reply or the close came and was no error);
1 an error reply, no reply or no close within --timeout, a message too long for UDP; 2 a usage
error; 3 the peer cannot be reached.

Examples:
  muster signal --type tcp --host 127.0.0.1:3001 QUIT
  muster signal --host 127.0.0.1:4041 LOG_ROTATE --secret-code s3cret
  muster signal --type tcp --host hub:3001 --token-file ops.token '*/LOG_ROTATE'
  muster signal --type tcp --host 127.0.0.1:3001 --reply web_1/ALIVE -p serial=7
  muster signal --type unix --host /run/muster.sock '*/STOP'
  muster signal --host tls://127.0.0.1:3002 --tls-ca ca.pem --reply HELP
  muster signal --host /etc/muster/text.yaml@text.udp RESTART -p reason=config`,
    )
    .action(async (positional: string | undefined, flags: SignalFlags, cmd: Command) => {
      try {
        await runSignal(positional, flags, cmd);
      } catch (err) {
        if (err instanceof SignalError) fail(err.message, err.exitCode);
        throw err;
      }
    });
}

async function runSignal(positional: string | undefined, flags: SignalFlags, cmd: Command): Promise<void> {
  if (positional !== undefined && flags.message !== undefined)
    throw usage(
      `the message is given twice, as the argument ${JSON.stringify(positional)} and with -m ${JSON.stringify(flags.message)}: give it once`,
    );
  const explicitType = cmd.getOptionValueSource("type") === "cli" ? flags.type : undefined;
  const target = resolveTarget({
    ...(cmd.getOptionValueSource("host") === "cli" ? { host: flags.host } : {}),
    ...(explicitType !== undefined ? { type: explicitType } : {}),
    tls: flags.tls,
  });
  const isTls = target.type === "tcp" && target.tls;
  if ((flags.tlsCa !== undefined || flags.tlsInsecure) && !isTls)
    throw usage(
      "--tls-ca and --tls-insecure are for TLS: add --tls (with --type tcp) or use a tls:// address",
    );
  if (flags.secretCode !== undefined && target.type !== "udp")
    throw usage(
      `--secret-code is for UDP only, not ${KIND_LABEL[target.type === "tcp" && target.tls ? "tls" : target.type]}`,
    );
  if (flags.reply && target.type === "udp") throw usage("UDP carries no replies; use --type tcp or unix");
  const messageFlags: MessageFlags = {
    ...(positional !== undefined || flags.message !== undefined
      ? { message: positional ?? flags.message }
      : {}),
    ...(flags.server !== undefined ? { server: flags.server } : {}),
    ...(flags.service !== undefined ? { service: flags.service } : {}),
    params: flags.param ?? [],
    ...(flags.secretCode !== undefined ? { secretCode: flags.secretCode } : {}),
  };
  // Checked before the credential is read, so that a usage error comes first.
  let message = buildSignalMessage(messageFlags);
  const tls = isTls ? dialTlsFrom(flags) : undefined;
  // A token signed here from the local key is only ever sent to this machine.
  const explicit = flags.token !== undefined || flags.tokenFile !== undefined || flags.key !== undefined;
  const local = target.type === "unix" || isLoopbackHost(target.host);
  const token = explicit || local ? await credentialFrom(flags) : undefined;
  if (token !== undefined) message = buildSignalMessage({ ...messageFlags, token });
  const result = await sendSignal({
    target,
    line: message.toString(),
    reply: flags.reply,
    timeoutMs: flags.timeout,
    ...(tls !== undefined ? { tls } : {}),
  });
  const where = describeTarget(target);
  if (result.reply !== undefined) {
    process.stdout.write(`${result.reply}\n`);
    const problem = replyProblem(result.reply);
    if (problem !== undefined)
      throw new SignalError(
        problem.startsWith("not ")
          ? `the reply from ${where} is ${problem}`
          : `${where} replied ${problem}: the message was not taken`,
        EXIT.FAILED,
      );
    return;
  }
  if (result.errors.length > 0) {
    for (const line of result.errors) {
      const problem = replyProblem(line);
      process.stderr.write(
        problem?.startsWith("not ")
          ? `muster: ${where} sent a line that is ${problem}: ${line}\n`
          : `muster: ${where} replied: ${line}\n`,
      );
    }
    process.exit(EXIT.FAILED);
  }
}
