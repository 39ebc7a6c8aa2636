import { ErrorCode, isErrorCode } from "../errors/codes.js";
import { type ErrorBody, MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import {
  type CloseBody,
  CloseCode,
  type Frame,
  FrameType,
  HEADER_BYTES,
  type HelloBody,
  isSequenced,
  LABEL_KEY_PATTERN,
  MAX_SEQ,
  NAME_LIMITS,
  NAME_PATTERN,
  type Payload,
  PayloadKind,
  PROTOCOL_VERSION,
  WELCOME_SERVERS_LIMITS,
  type WelcomeBody,
  type WelcomeServer,
  type WelcomeServerState,
  type WelcomeServers,
} from "./frame.js";
import { checkOrigin, ORIGIN_LIMITS, originJson } from "./origin.js";
import { oneLine, quote } from "./text.js";

// ignoreBOM: keep a leading U+FEFF instead of silently stripping it, so that a method name
// (or any text) decodes to exactly what was encoded.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const closeCodes = new Set<string>(Object.values(CloseCode));
const ENROL_ID = new RegExp(`^[A-Za-z0-9_-]{16,${NAME_LIMITS.enrolIdMaxChars}}$`);

function protocolError(message: string): MusterError {
  return new MusterError(ErrorCode.PROTOCOL_ERROR, message);
}

/** Limits applied while decoding; each defaults to its entry in `DEFAULTS`. */
export interface DecodeLimits {
  /** Deepest nesting of arrays and objects in a JSON body or payload. @default 1000 */
  maxJsonDepth?: number;
  /** Largest HELLO body, in bytes. @default 131072 */
  maxHelloBytes?: number;
}

/** What `decodeFrame` tells its caller about, besides the frame. */
export interface DecodeHooks {
  /**
   * Told, with a one-line reason, when an optional field is malformed and dropped instead of
   * failing the frame (WELCOME or CLOSE `servers`): the codec logs nothing itself, so the caller can.
   */
  onDropped?: (message: string) => void;
}

/**
 * "deeper" when `value` holds arrays or objects nested more than `max` deep. The walk goes
 * at most `max` levels down; should the stack still run out first (a huge `max`), the
 * answer is "stack": the value is refused as well.
 */
function tooDeep(value: unknown, max: number): "deeper" | "stack" | undefined {
  try {
    return deeper(value, max) ? "deeper" : undefined;
  } catch (err) {
    if (err instanceof RangeError) return "stack";
    throw err;
  }
}

function deeper(value: unknown, max: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (max <= 0) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (deeper(value[i], max - 1)) return true;
    return false;
  }
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    if (deeper((value as Record<string, unknown>)[keys[i]!], max - 1)) return true;
  }
  return false;
}

/**
 * Parses UTF-8 JSON text; `what` names it in errors ("payload", "HELLO body", ...). Values
 * nested deeper than `maxDepth` are refused. JSON text `n` bytes long is at most n / 2
 * deep, so short texts (ordinary payloads) skip the depth walk.
 */
function parseJson(bytes: Uint8Array, what: string, maxDepth: number, code: ErrorCode): unknown {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (err) {
    if (err instanceof RangeError) throw new MusterError(code, `${what} is nested too deeply to parse`);
    const reason = oneLine(err instanceof Error ? err.message : String(err)).slice(0, 200);
    throw new MusterError(code, `${what} is not valid UTF-8 JSON: ${reason}`);
  }
  if (bytes.length > 2 * maxDepth + 1) {
    const deep = tooDeep(value, maxDepth);
    if (deep !== undefined) {
      throw new MusterError(
        code,
        deep === "deeper"
          ? `${what} is nested deeper than ${maxDepth} levels`
          : `${what} is nested too deeply to walk (limit ${maxDepth} levels)`,
      );
    }
  }
  return value;
}

// ---------------------------------------------------------------------------------------
// Encoding

function header(type: number, seq: number, ack: number, bodyBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + bodyBytes);
  buf[0] = PROTOCOL_VERSION;
  buf[1] = type;
  buf.writeUIntBE(seq, 2, 6);
  buf.writeUIntBE(ack, 8, 6);
  return buf;
}

function jsonFrame(type: number, seq: number, ack: number, body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), "utf8");
  const buf = header(type, seq, ack, json.length);
  json.copy(buf, HEADER_BYTES);
  return buf;
}

function checkId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `call id out of range (u32): ${id}`);
  }
}

/** Encodes one frame. Throws INVALID_ARGUMENT for values the format cannot carry. */
export function encodeFrame(frame: Frame): Buffer {
  const { seq, ack } = frame;
  if (
    !Number.isInteger(seq) ||
    seq < 0 ||
    seq > MAX_SEQ ||
    !Number.isInteger(ack) ||
    ack < 0 ||
    ack > MAX_SEQ
  ) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `seq/ack out of range: ${seq}/${ack}`);
  }
  switch (frame.type) {
    case FrameType.HELLO:
      return jsonFrame(frame.type, seq, ack, frame.hello);
    case FrameType.WELCOME:
      return jsonFrame(frame.type, seq, ack, frame.welcome);
    case FrameType.CLOSE:
      return jsonFrame(frame.type, seq, ack, frame.close);
    case FrameType.PING:
    case FrameType.PONG: {
      const buf = header(frame.type, seq, ack, 8);
      buf.writeDoubleBE(frame.time, HEADER_BYTES);
      return buf;
    }
    case FrameType.ACK:
      return header(frame.type, seq, ack, 0);
    case FrameType.CALL:
      return encodeCall(seq, ack, frame.id, frame.timeoutMs, frame.method, frame.payload);
    case FrameType.ITEM: {
      checkId(frame.id);
      const buf = header(frame.type, seq, ack, 5 + frame.payload.bytes.length);
      buf.writeUInt32BE(frame.id, HEADER_BYTES);
      buf[HEADER_BYTES + 4] = frame.payload.kind;
      buf.set(frame.payload.bytes, HEADER_BYTES + 5);
      return buf;
    }
    case FrameType.RESULT: {
      checkId(frame.id);
      if ("error" in frame) {
        const json = Buffer.from(JSON.stringify(frame.error), "utf8");
        const buf = header(frame.type, seq, ack, 5 + json.length);
        buf.writeUInt32BE(frame.id, HEADER_BYTES);
        buf[HEADER_BYTES + 4] = 1;
        json.copy(buf, HEADER_BYTES + 5);
        return buf;
      }
      const buf = header(frame.type, seq, ack, 6 + frame.payload.bytes.length);
      buf.writeUInt32BE(frame.id, HEADER_BYTES);
      buf[HEADER_BYTES + 4] = 0;
      buf[HEADER_BYTES + 5] = frame.payload.kind;
      buf.set(frame.payload.bytes, HEADER_BYTES + 6);
      return buf;
    }
    case FrameType.CANCEL: {
      checkId(frame.id);
      const buf = header(frame.type, seq, ack, 4);
      buf.writeUInt32BE(frame.id, HEADER_BYTES);
      return buf;
    }
    case FrameType.OPEN:
      return encodeOpen(seq, ack, frame.id, frame.timeoutMs, frame.window, frame.method, frame.payload);
    case FrameType.CREDIT: {
      checkId(frame.id);
      checkU32(frame.bytes, "CREDIT bytes");
      const buf = header(frame.type, seq, ack, 8);
      buf.writeUInt32BE(frame.id, HEADER_BYTES);
      buf.writeUInt32BE(frame.bytes, HEADER_BYTES + 4);
      return buf;
    }
    case FrameType.ORIGIN: {
      checkId(frame.id);
      const json = originJson(frame.origin);
      const buf = header(frame.type, seq, ack, 4 + json.length);
      buf.writeUInt32BE(frame.id, HEADER_BYTES);
      json.copy(buf, HEADER_BYTES + 4);
      return buf;
    }
  }
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${what} must be an integer in 0…2³²−1, got ${value}`);
}

function methodLength(method: string): number {
  const methodBytes = Buffer.byteLength(method, "utf8");
  if (methodBytes === 0 || methodBytes > NAME_LIMITS.methodMaxBytes) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `method name must be 1–255 bytes, got ${methodBytes}`);
  }
  return methodBytes;
}

/** Encodes an OPEN: a CALL's fields plus the opener's window (docs/protocol.md §4). */
export function encodeOpen(
  seq: number,
  ack: number,
  id: number,
  timeoutMs: number,
  window: number,
  method: string,
  payload: Payload,
): Buffer {
  checkId(id);
  checkU32(window, "stream window");
  if (window === 0)
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, "stream window must be at least 1 byte");
  const methodBytes = methodLength(method);
  const buf = header(FrameType.OPEN, seq, ack, 14 + methodBytes + payload.bytes.length);
  buf.writeUInt32BE(id, HEADER_BYTES);
  buf.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(timeoutMs))), HEADER_BYTES + 4);
  buf.writeUInt32BE(window, HEADER_BYTES + 8);
  buf[HEADER_BYTES + 12] = methodBytes;
  buf.write(method, HEADER_BYTES + 13, "utf8");
  buf[HEADER_BYTES + 13 + methodBytes] = payload.kind;
  buf.set(payload.bytes, HEADER_BYTES + 14 + methodBytes);
  return buf;
}

/**
 * Encodes a CALL. Kept separate because a fan-out encodes the payload once and calls this
 * per agent with only the header fields and the id changing.
 */
export function encodeCall(
  seq: number,
  ack: number,
  id: number,
  timeoutMs: number,
  method: string,
  payload: Payload,
): Buffer {
  checkId(id);
  const methodBytes = methodLength(method);
  const buf = header(FrameType.CALL, seq, ack, 10 + methodBytes + payload.bytes.length);
  buf.writeUInt32BE(id, HEADER_BYTES);
  buf.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(timeoutMs))), HEADER_BYTES + 4);
  buf[HEADER_BYTES + 8] = methodBytes;
  buf.write(method, HEADER_BYTES + 9, "utf8");
  buf[HEADER_BYTES + 9 + methodBytes] = payload.kind;
  buf.set(payload.bytes, HEADER_BYTES + 10 + methodBytes);
  return buf;
}

/** Returns a copy of an encoded frame with its `ack` field replaced (used on replay). */
export function withAck(frame: Uint8Array, ack: number): Buffer {
  const copy = Buffer.from(frame);
  copy.writeUIntBE(ack, 8, 6);
  return copy;
}

const EMPTY = new Uint8Array(0);

/** Encodes a JavaScript value as a payload: bytes stay bytes, `undefined` is NONE, the rest JSON. */
export function encodeValue(value: unknown): Payload {
  if (value === undefined) return { kind: PayloadKind.NONE, bytes: EMPTY };
  if (value instanceof Uint8Array) return { kind: PayloadKind.BYTES, bytes: value };
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `value cannot be encoded as JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (text === undefined) return { kind: PayloadKind.NONE, bytes: EMPTY };
  return { kind: PayloadKind.JSON, bytes: Buffer.from(text, "utf8") };
}

/**
 * Decodes a payload into a value. Malformed JSON, and JSON nested deeper than
 * `limits.maxJsonDepth`, throw INVALID_ARGUMENT.
 */
export function decodeValue(payload: Payload, limits?: DecodeLimits): unknown {
  switch (payload.kind) {
    case PayloadKind.NONE:
      return undefined;
    case PayloadKind.BYTES:
      return payload.bytes;
    case PayloadKind.JSON:
      return parseJson(
        payload.bytes,
        "payload",
        limits?.maxJsonDepth ?? DEFAULTS.maxJsonDepth,
        ErrorCode.INVALID_ARGUMENT,
      );
    default:
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `unknown payload kind ${String(payload.kind)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Decoding

function readJson(buf: Uint8Array, start: number, what: string, maxDepth: number): Record<string, unknown> {
  const value = parseJson(buf.subarray(start), `${what} body`, maxDepth, ErrorCode.PROTOCOL_ERROR);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw protocolError(`${what} body must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function needString(o: Record<string, unknown>, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== "string") throw protocolError(`${what}.${key} must be a string`);
  return v;
}

function needBool(o: Record<string, unknown>, key: string, what: string): boolean {
  const v = o[key];
  if (typeof v !== "boolean") throw protocolError(`${what}.${key} must be a boolean`);
  return v;
}

function needCount(o: Record<string, unknown>, key: string, what: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw protocolError(`${what}.${key} must be a non-negative integer`);
  }
  return v;
}

/** Checks an agent name; returns an error message or undefined. */
export function checkName(name: string): string | undefined {
  if (!NAME_PATTERN.test(name)) {
    return `name ${quote(name, 40)} is invalid: 1–128 of letters, digits and . _ - : @, starting with a letter or digit`;
  }
  return undefined;
}

/** Checks a label set; returns an error message or undefined. */
export function checkLabels(labels: unknown): string | undefined {
  if (typeof labels !== "object" || labels === null || Array.isArray(labels))
    return "labels must be an object";
  const entries = Object.entries(labels);
  if (entries.length > NAME_LIMITS.labelsMax) {
    return `too many labels: ${entries.length} > ${NAME_LIMITS.labelsMax}`;
  }
  for (const [k, v] of entries) {
    if (!LABEL_KEY_PATTERN.test(k)) {
      return `label key ${quote(k, 64)} is invalid: 1–63 of letters, digits and . _ - /, starting with a letter or digit`;
    }
    if (typeof v !== "string") return `label ${k} must have a string value`;
    if (v.length > NAME_LIMITS.labelValueMaxChars) {
      return `label ${k} value longer than ${NAME_LIMITS.labelValueMaxChars} characters`;
    }
  }
  return undefined;
}

function decodeHello(o: Record<string, unknown>): HelloBody {
  const role = o.role;
  if (role !== "agent" && role !== "operator")
    throw protocolError(`HELLO.role must be "agent" or "operator"`);
  const name = needString(o, "name", "HELLO");
  // Labels may be left out (same as {}); null or any other non-object is an error.
  const labels = o.labels === undefined ? {} : o.labels;
  const bad = checkName(name) ?? checkLabels(labels);
  if (bad !== undefined) throw protocolError(`HELLO ${bad}`);
  const version = needString(o, "version", "HELLO");
  if (version.length > NAME_LIMITS.versionMaxChars) {
    throw protocolError(`HELLO.version longer than ${NAME_LIMITS.versionMaxChars} characters`);
  }
  const hello: HelloBody = { role, name, labels: { ...(labels as Record<string, string>) }, version };
  if (o.token !== undefined) {
    const token = needString(o, "token", "HELLO");
    if (token.length === 0 || token.length > NAME_LIMITS.tokenMaxChars) {
      throw protocolError(`HELLO.token must be 1–${NAME_LIMITS.tokenMaxChars} characters`);
    }
    hello.token = token;
  }
  if (o.auth !== undefined) {
    const auth = needString(o, "auth", "HELLO");
    if (auth.length === 0 || auth.length > NAME_LIMITS.authMaxChars) {
      throw protocolError(`HELLO.auth must be 1–${NAME_LIMITS.authMaxChars} characters`);
    }
    hello.auth = auth;
  }
  if (o.enrolId !== undefined) {
    const id = needString(o, "enrolId", "HELLO");
    if (!ENROL_ID.test(id)) {
      throw protocolError(`HELLO.enrolId must be 16–${NAME_LIMITS.enrolIdMaxChars} base64url characters`);
    }
    hello.enrolId = id;
  }
  if (o.features !== undefined) {
    const f = o.features;
    const { featuresMax: n, featureMaxChars: c } = NAME_LIMITS;
    if (
      !Array.isArray(f) ||
      f.length > n ||
      !f.every((x) => typeof x === "string" && x.length > 0 && x.length <= c)
    )
      throw protocolError(`HELLO.features must be an array of at most ${n} strings of 1–${c} characters`);
    hello.features = [...(f as string[])];
  }
  return hello;
}

function decodeWelcome(o: Record<string, unknown>, onDropped?: (message: string) => void): WelcomeBody {
  const server = o.server;
  if (typeof server !== "object" || server === null) throw protocolError("WELCOME.server must be an object");
  const s = server as Record<string, unknown>;
  const welcome: WelcomeBody = {
    sessionId: needString(o, "sessionId", "WELCOME"),
    token: needString(o, "token", "WELCOME"),
    resumed: needBool(o, "resumed", "WELCOME"),
    expired: needBool(o, "expired", "WELCOME"),
    replaying: needCount(o, "replaying", "WELCOME"),
    heartbeatIntervalMs: needCount(o, "heartbeatIntervalMs", "WELCOME"),
    resumeWindowMs: needCount(o, "resumeWindowMs", "WELCOME"),
    server: {
      name: needString(s, "name", "WELCOME.server"),
      version: needString(s, "version", "WELCOME.server"),
    },
  };
  if (o.auth !== undefined) {
    const auth = needString(o, "auth", "WELCOME");
    if (auth.length === 0 || auth.length > NAME_LIMITS.authMaxChars) {
      throw protocolError(`WELCOME.auth must be 1–${NAME_LIMITS.authMaxChars} characters`);
    }
    welcome.auth = auth;
  }
  if (o.servers !== undefined) {
    const read = readWelcomeServers(o.servers);
    if ("servers" in read) welcome.servers = read.servers;
    else onDropped?.(`WELCOME.servers ignored: ${read.error}`);
  }
  return welcome;
}

const SERVER_STATES = new Set<string>(["ready", "draining"]);

/**
 * Reads a WELCOME `servers` value (docs/protocol.md §6.2): the checked list, copied field by
 * field, or why it must be ignored as a whole (wrong shape, or beyond `WELCOME_SERVERS_LIMITS`).
 * An entry whose `state` is a string this side does not know is skipped, not an error: a later
 * version may add states, and a server in a state this side cannot judge is no place to go.
 */
export function readWelcomeServers(value: unknown): { servers: WelcomeServers } | { error: string } {
  const L = WELCOME_SERVERS_LIMITS;
  if (!Array.isArray(value)) return { error: "servers must be an array" };
  if (value.length > L.serversMax) return { error: `more than ${L.serversMax} servers (${value.length})` };
  const servers: WelcomeServers = [];
  for (let i = 0; i < value.length; i++) {
    const at = `servers[${i}]`;
    const e: unknown = value[i];
    if (typeof e !== "object" || e === null || Array.isArray(e)) return { error: `${at} must be an object` };
    const o = e as Record<string, unknown>;
    const name = o.name;
    if (typeof name !== "string" || name.length === 0 || name.length > L.nameMaxChars)
      return { error: `${at}.name must be a string of 1–${L.nameMaxChars} characters` };
    const urls = o.urls;
    if (!Array.isArray(urls) || urls.length === 0 || urls.length > L.urlsMax)
      return { error: `${at}.urls must be an array of 1–${L.urlsMax} URLs` };
    for (let j = 0; j < urls.length; j++) {
      const u: unknown = urls[j];
      if (typeof u !== "string" || u.length === 0 || u.length > L.urlMaxChars)
        return { error: `${at}.urls[${j}] must be a string of 1–${L.urlMaxChars} characters` };
    }
    const server: WelcomeServer = { name, urls: [...(urls as string[])] };
    if (o.load !== undefined) {
      if (typeof o.load !== "number" || !Number.isFinite(o.load) || o.load < 0)
        return { error: `${at}.load must be a non-negative number` };
      server.load = o.load;
    }
    if (o.state !== undefined) {
      if (typeof o.state !== "string") return { error: `${at}.state must be a string` };
      if (!SERVER_STATES.has(o.state)) continue;
      server.state = o.state as WelcomeServerState;
    }
    servers.push(server);
  }
  return { servers };
}

function decodeClose(o: Record<string, unknown>, onDropped?: (why: string) => void): CloseBody {
  const code = needString(o, "code", "CLOSE");
  if (!closeCodes.has(code)) throw protocolError(`CLOSE.code ${quote(code, 40)} is unknown`);
  const close: CloseBody = { code: code as CloseBody["code"], message: needString(o, "message", "CLOSE") };
  if (o.retryAfterMs !== undefined) close.retryAfterMs = needCount(o, "retryAfterMs", "CLOSE");
  if (o.servers !== undefined) {
    const read = readWelcomeServers(o.servers);
    if ("servers" in read) close.servers = read.servers;
    else onDropped?.(`CLOSE.servers ignored: ${read.error}`);
  }
  return close;
}

function decodeError(o: Record<string, unknown>): ErrorBody {
  const code = needString(o, "code", "RESULT.error");
  const body: ErrorBody = {
    code: isErrorCode(code) ? code : ErrorCode.UNKNOWN,
    message: needString(o, "message", "RESULT.error"),
  };
  if (o.details !== undefined) body.details = o.details;
  return body;
}

function readPayload(buf: Uint8Array, at: number): Payload {
  if (at >= buf.length) throw protocolError("payload kind byte missing");
  const kind = buf[at]!;
  if (kind !== PayloadKind.NONE && kind !== PayloadKind.JSON && kind !== PayloadKind.BYTES) {
    throw protocolError(`unknown payload kind ${kind}`);
  }
  const bytes = buf.subarray(at + 1);
  if (kind === PayloadKind.NONE && bytes.length > 0) throw protocolError("payload of kind NONE has bytes");
  return { kind: kind as PayloadKind, bytes };
}

function exact(buf: Uint8Array, bodyBytes: number, what: string): void {
  const got = buf.length - HEADER_BYTES;
  if (got !== bodyBytes) throw protocolError(`${what} body must be ${bodyBytes} bytes, got ${got}`);
}

function atLeast(buf: Uint8Array, bodyBytes: number, what: string): void {
  const got = buf.length - HEADER_BYTES;
  if (got < bodyBytes) throw protocolError(`${what} body truncated: ${got} < ${bodyBytes} bytes`);
}

/**
 * Decodes one whole frame. Every malformed shape throws a MusterError with code
 * PROTOCOL_ERROR and a message that says what was wrong. The returned payloads are views
 * into `input` (no copy); their JSON is parsed later, by decodeValue. A malformed optional
 * field that is dropped rather than refused (WELCOME or CLOSE `servers`) is reported to
 * `limits.onDropped`, so one object carries a dialer's limits and its hook through layers that
 * only pass `DecodeLimits` on.
 */
export function decodeFrame(input: Uint8Array, limits?: DecodeLimits & DecodeHooks): Frame {
  if (input.length < HEADER_BYTES) {
    throw protocolError(`frame truncated: ${input.length} bytes < ${HEADER_BYTES}-byte header`);
  }
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.length);
  const version = buf[0]!;
  if (version !== PROTOCOL_VERSION) {
    throw protocolError(`unsupported protocol version ${version} (this side speaks ${PROTOCOL_VERSION})`);
  }
  const type = buf[1]!;
  const seq = buf.readUIntBE(2, 6);
  const ack = buf.readUIntBE(8, 6);
  if (isSequenced(type)) {
    if (seq === 0) throw protocolError(`frame type 0x${type.toString(16)} needs a sequence number`);
  } else if (seq !== 0) {
    throw protocolError(`control frame type 0x${type.toString(16)} must have seq 0`);
  }
  const B = HEADER_BYTES;
  const depth = limits?.maxJsonDepth ?? DEFAULTS.maxJsonDepth;
  switch (type) {
    case FrameType.HELLO: {
      const maxHello = limits?.maxHelloBytes ?? DEFAULTS.maxHelloBytes;
      if (buf.length - B > maxHello) {
        throw protocolError(`HELLO body of ${buf.length - B} bytes is over the limit of ${maxHello} bytes`);
      }
      return { type, seq, ack, hello: decodeHello(readJson(buf, B, "HELLO", depth)) };
    }
    case FrameType.WELCOME:
      return {
        type,
        seq,
        ack,
        welcome: decodeWelcome(readJson(buf, B, "WELCOME", depth), limits?.onDropped),
      };
    case FrameType.CLOSE:
      return { type, seq, ack, close: decodeClose(readJson(buf, B, "CLOSE", depth), limits?.onDropped) };
    case FrameType.PING:
    case FrameType.PONG:
      exact(buf, 8, type === FrameType.PING ? "PING" : "PONG");
      return { type, seq, ack, time: buf.readDoubleBE(B) };
    case FrameType.ACK:
      exact(buf, 0, "ACK");
      return { type, seq, ack };
    case FrameType.CALL: {
      atLeast(buf, 10, "CALL");
      const id = buf.readUInt32BE(B);
      const timeoutMs = buf.readUInt32BE(B + 4);
      const methodLen = buf[B + 8]!;
      if (methodLen === 0) throw protocolError("CALL method name is empty");
      atLeast(buf, 10 + methodLen, "CALL");
      let method: string;
      try {
        method = utf8.decode(buf.subarray(B + 9, B + 9 + methodLen));
      } catch {
        throw protocolError("CALL method name is not valid UTF-8");
      }
      return { type, seq, ack, id, timeoutMs, method, payload: readPayload(buf, B + 9 + methodLen) };
    }
    case FrameType.ITEM:
      atLeast(buf, 5, "ITEM");
      return { type, seq, ack, id: buf.readUInt32BE(B), payload: readPayload(buf, B + 4) };
    case FrameType.RESULT: {
      atLeast(buf, 5, "RESULT");
      const id = buf.readUInt32BE(B);
      const status = buf[B + 4]!;
      if (status === 0) return { type, seq, ack, id, payload: readPayload(buf, B + 5) };
      if (status === 1)
        return { type, seq, ack, id, error: decodeError(readJson(buf, B + 5, "RESULT.error", depth)) };
      throw protocolError(`RESULT status must be 0 (ok) or 1 (error), got ${status}`);
    }
    case FrameType.CANCEL:
      exact(buf, 4, "CANCEL");
      return { type, seq, ack, id: buf.readUInt32BE(B) };
    case FrameType.OPEN: {
      atLeast(buf, 14, "OPEN");
      const id = buf.readUInt32BE(B);
      const timeoutMs = buf.readUInt32BE(B + 4);
      const window = buf.readUInt32BE(B + 8);
      if (window === 0) throw protocolError("OPEN window is 0: the stream could never send");
      const methodLen = buf[B + 12]!;
      if (methodLen === 0) throw protocolError("OPEN method name is empty");
      atLeast(buf, 14 + methodLen, "OPEN");
      let method: string;
      try {
        method = utf8.decode(buf.subarray(B + 13, B + 13 + methodLen));
      } catch {
        throw protocolError("OPEN method name is not valid UTF-8");
      }
      return {
        type,
        seq,
        ack,
        id,
        timeoutMs,
        window,
        method,
        payload: readPayload(buf, B + 13 + methodLen),
      };
    }
    case FrameType.CREDIT:
      exact(buf, 8, "CREDIT");
      return { type, seq, ack, id: buf.readUInt32BE(B), bytes: buf.readUInt32BE(B + 4) };
    case FrameType.ORIGIN: {
      atLeast(buf, 6, "ORIGIN");
      if (buf.length - B - 4 > ORIGIN_LIMITS.maxJsonBytes)
        throw protocolError(
          `ORIGIN body of ${buf.length - B - 4} bytes is over the limit of ${ORIGIN_LIMITS.maxJsonBytes} bytes`,
        );
      const id = buf.readUInt32BE(B);
      return { type, seq, ack, id, origin: checkOrigin(readJson(buf, B + 4, "ORIGIN", 2)) };
    }
    default:
      throw protocolError(`unknown frame type 0x${type.toString(16).padStart(2, "0")}`);
  }
}
