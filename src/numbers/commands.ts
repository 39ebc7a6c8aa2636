/**
 * The text commands of the Comms protocol, parsed with anchored rules. A command that does not
 * parse gets an error that says what was expected (the seed ignored such commands silently).
 * Every error starts with the seed's own phrase (`invalid uuid`, `invalid n value`, …), so that
 * a client matching on those still recognises it.
 */
import { MAX_N, MAX_UINT64 } from "./sequence.js";

export type StatefulCommand =
  | { kind: "start"; uuid: string; n: number }
  /** The seed's form: the last value received. */
  | { kind: "continue"; uuid: string; last: number }
  /** muster's form: how many messages were received (`@0` for none). */
  | { kind: "continue"; uuid: string; position: number }
  /** An earlier revision of the seed's client: no position at all. */
  | { kind: "continue"; uuid: string };

export type StatelessCommand = { kind: "start" } | { kind: "continue"; x: bigint } | { kind: "end" };

export type Parsed<T> = { ok: true; command: T } | { ok: false; error: string };

export const STATEFUL_EXPECTED = 'START "<uuid>" <n> or CONTINUE <uuid> <last>';
export const STATELESS_EXPECTED = "START, CONTINUE <x> or END";
const UUID_EXAMPLE = "a17417a0-aa39-40b5-8675-247713cc4908";
const MAX_UINT32 = 0xffff_ffff;

/** The text as shown in an error: quoted, and cut when long. */
export function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A uuid in canonical lower-case form, from 36 characters, or from 38 whose first and last are
 * dropped unchecked: the seed's client sends `"<uuid>"`, which the Go server accepted because
 * google/uuid reads any 38-character string as `{uuid}` without checking the braces.
 */
export function parseUuid(text: string): string | undefined {
  const core = text.length === 38 ? text.slice(1, -1) : text;
  return CANONICAL.test(core) ? core.toLowerCase() : undefined;
}

const fail = (error: string): { ok: false; error: string } => ({ ok: false, error });
const digits = (t: string): boolean => /^\d+$/.test(t);

function uuidError(token: string): { ok: false; error: string } {
  return fail(
    `invalid uuid: ${quote(token)} is not a uuid such as ${UUID_EXAMPLE} (36 characters, or 38 with one wrapping pair such as quotes)`,
  );
}

export function parseStatefulCommand(text: string): Parsed<StatefulCommand> {
  const trimmed = text.trim();
  if (trimmed === "") return fail(`empty command: expected ${STATEFUL_EXPECTED}`);
  const t = trimmed.split(/\s+/);
  if (t[0] === "START") {
    if (t.length !== 3)
      return fail(`invalid start parameters: expected START "<uuid>" <n>, got ${quote(trimmed)}`);
    const uuid = parseUuid(t[1]!);
    if (uuid === undefined) return uuidError(t[1]!);
    if (!digits(t[2]!)) return fail(`invalid n: ${quote(t[2]!)} is not a whole number`);
    const n = Number(t[2]);
    if (n < 1 || n > MAX_N) return fail(`invalid n value: ${t[2]} is not in 1..${MAX_N}`);
    return { ok: true, command: { kind: "start", uuid, n } };
  }
  if (t[0] === "CONTINUE") {
    if (t.length !== 2 && t.length !== 3)
      return fail(
        `invalid continue parameters: expected CONTINUE <uuid> <last> or CONTINUE <uuid> @<position>, got ${quote(trimmed)}`,
      );
    const uuid = parseUuid(t[1]!);
    if (uuid === undefined) return uuidError(t[1]!);
    const arg = t[2];
    if (arg === undefined) return { ok: true, command: { kind: "continue", uuid } };
    if (arg.startsWith("@")) {
      const p = arg.slice(1);
      if (!digits(p) || Number(p) > MAX_N + 1)
        return fail(`invalid position: ${quote(arg)} is not @ and a whole number from 0 to ${MAX_N + 1}`);
      return { ok: true, command: { kind: "continue", uuid, position: Number(p) } };
    }
    if (!digits(arg) || Number(arg) > MAX_UINT32)
      return fail(`invalid last number: ${quote(arg)} is not a whole number from 0 to ${MAX_UINT32}`);
    return { ok: true, command: { kind: "continue", uuid, last: Number(arg) } };
  }
  if (t[0] === "END")
    return fail(`unknown command "END": this server is stateful; expected ${STATEFUL_EXPECTED}`);
  return fail(`unknown command ${quote(trimmed)}: expected ${STATEFUL_EXPECTED}`);
}

export function parseStatelessCommand(text: string): Parsed<StatelessCommand> {
  const trimmed = text.trim();
  if (trimmed === "") return fail(`empty command: expected ${STATELESS_EXPECTED}`);
  const t = trimmed.split(/\s+/);
  if (t[0] === "START") {
    if (t.length !== 1)
      return fail(
        `invalid start parameters: this server is stateless and START takes no arguments, got ${quote(trimmed)}`,
      );
    return { ok: true, command: { kind: "start" } };
  }
  if (t[0] === "END") {
    if (t.length !== 1) return fail(`invalid end parameters: END takes no arguments, got ${quote(trimmed)}`);
    return { ok: true, command: { kind: "end" } };
  }
  if (t[0] === "CONTINUE") {
    if (t.length !== 2)
      return fail(`invalid continue parameters: expected CONTINUE <x>, got ${quote(trimmed)}`);
    const arg = t[1]!;
    if (!digits(arg)) return fail(`invalid continue value: ${quote(arg)} is not a whole number`);
    const x = BigInt(arg);
    if (x > MAX_UINT64) return fail(`invalid continue value: ${quote(arg)} is larger than ${MAX_UINT64}`);
    if (x < 1n) return fail(`invalid a value: ${arg}: CONTINUE takes the last value received, 1 or more`);
    return { ok: true, command: { kind: "continue", x } };
  }
  return fail(`unknown command ${quote(trimmed)}: expected ${STATELESS_EXPECTED}`);
}
