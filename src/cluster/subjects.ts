/**
 * Subjects, headers, bucket names and keys as NATS accepts them, checked the same way for every
 * backend so that code tested on the in-memory bus is refused nothing by NATS later.
 *
 * A subject is dot-separated non-empty tokens without whitespace. In a subscription a token may
 * be `*` (exactly one token) or, last, `>` (one or more tokens); `*` and `>` are not allowed
 * inside other tokens, nor anywhere in a subject that is published to.
 */
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";

const WHITESPACE = /[\s]/;

/** Throws INVALID_ARGUMENT unless `subject` is valid; `pattern`: wildcards allowed. */
export function checkSubject(subject: string, pattern: boolean): void {
  const bad = (why: string): never => {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid subject ${JSON.stringify(subject)}: ${why}`);
  };
  if (typeof subject !== "string" || subject.length === 0) bad("empty");
  if (WHITESPACE.test(subject)) bad("whitespace");
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) bad("empty token");
    if (t === "*" || t === ">") {
      if (!pattern) bad("wildcards are only allowed when subscribing");
      if (t === ">" && i !== tokens.length - 1) bad("'>' must be the last token");
    } else if (t.includes("*") || t.includes(">")) bad("'*' and '>' must be whole tokens");
  }
}

/** True when `subject` (no wildcards) is matched by `pattern` (may hold `*` and `>`). */
export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const t = p[i];
    if (t === ">") return s.length > i;
    if (i >= s.length) return false;
    if (t !== "*" && t !== s[i]) return false;
  }
  return p.length === s.length;
}

/**
 * Throws INVALID_ARGUMENT unless every header name is printable ASCII without `:` and every
 * value is free of CR and LF (the NATS header block is MIME-like text).
 */
export function checkHeaders(headers: Record<string, string> | undefined): void {
  if (headers === undefined) return;
  for (const [name, value] of Object.entries(headers)) {
    if (name.length === 0 || !/^[!-9;-~]+$/.test(name)) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid header name ${JSON.stringify(name)}`);
    }
    if (typeof value !== "string" || /[\r\n]/.test(value)) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid value for header ${name}`);
    }
  }
}

const utf8 = new TextEncoder();

/**
 * Bytes a message takes against `maxPayload`: NATS counts the header block with the body
 * (`NATS/1.0\r\n`, a `name: value\r\n` line per header, then `\r\n`).
 */
export function messageSize(data: Uint8Array, headers?: Record<string, string>): number {
  if (headers === undefined) return data.length;
  const entries = Object.entries(headers);
  if (entries.length === 0) return data.length;
  let size = data.length + 12;
  for (const [name, value] of entries) size += utf8.encode(name).length + utf8.encode(value).length + 4;
  return size;
}

/** Throws RESOURCE_EXHAUSTED when the message is larger than `maxPayload`. */
export function checkPayload(
  what: string,
  data: Uint8Array,
  headers: Record<string, string> | undefined,
  maxPayload: number,
): void {
  const size = messageSize(data, headers);
  if (size > maxPayload) {
    throw new MusterError(
      ErrorCode.RESOURCE_EXHAUSTED,
      `${what}: ${size} bytes is more than the backplane carries (max_payload ${maxPayload})`,
    );
  }
}

/** Throws INVALID_ARGUMENT unless `name` is a bucket name NATS accepts (`[-_a-zA-Z0-9]+`). */
export function checkBucketName(name: string): void {
  if (typeof name !== "string" || !/^[-\w]+$/.test(name)) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid bucket name ${JSON.stringify(name)}`);
  }
}

/**
 * Throws INVALID_ARGUMENT unless `key` is a key NATS KV accepts: `[-/_=.a-zA-Z0-9]+`, no
 * leading, trailing or double dot (`encodeKey` makes one from any name).
 */
export function checkKey(key: string): void {
  if (typeof key !== "string" || !/^[-/=.\w]+$/.test(key) || /^\.|\.\.|\.$/.test(key)) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid key ${JSON.stringify(key)} (see encodeKey)`);
  }
}
