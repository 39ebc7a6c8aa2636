// The authenticated handshake target: a real server with authentication and enrolment on, on
// tcp://127.0.0.1:0, receives HELLOs carrying tokens of every kind (valid, expired, forged,
// signed with the other algorithm, unsigned, tampered, with bad claims, oversized, mutated),
// enrolment ids (valid, missing, malformed) and resume tokens, while a control agent connected
// beforehand must keep answering calls. The oracle knows what the server must answer: it
// verifies each token with the server's key, then applies the binding rules, so a WELCOME
// without a valid credential, a wrong CLOSE code or message, a hang or a crash is a failure.

import { createHash } from "node:crypto";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { checkIssue, verifyToken } from "../src/auth/tokens.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { DEFAULTS } from "../src/internal/defaults.js";
import { globToRegExp } from "../src/rpc/target.js";
import { createServer } from "../src/server/create-server.js";
import { decodeFrame } from "../src/wire/codec.js";
import { CloseCode, FrameType, type HelloBody } from "../src/wire/frame.js";
import { lengthPrefix } from "../src/wire/length-prefix.js";
import { AGENTS, CONTROL, type Credentials, credentials, SERVER_KEY } from "./auth-credentials.js";
import {
  describe,
  type Expectation,
  expectationFor,
  HANDSHAKE_TIMEOUT_MS,
  judge,
  MAX_FRAME_BYTES,
  type Outcome,
  probe,
} from "./handshake.js";
import { mutateBytes, rawFrame, seedFrames } from "./inputs.js";
import { Rng } from "./rng.js";
import type { Failure } from "./run.js";
import { describeThrown, oneLine, referenceSplit } from "./targets.js";

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function text(rng: Rng, n: number, alphabet = B64URL): string {
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[rng.int(alphabet.length)];
  return s;
}

/** A token with a few characters changed, removed, added or cut. */
function mutateToken(rng: Rng, token: string): string {
  let t = token;
  for (let k = rng.range(1, 3); k > 0; k--) {
    const at = rng.int(Math.max(1, t.length));
    switch (rng.int(5)) {
      case 0:
        t = `${t.slice(0, at)}${text(rng, 1)}${t.slice(at + 1)}`;
        break;
      case 1:
        t = `${t.slice(0, at)}${t.slice(at + 1)}`;
        break;
      case 2:
        t = `${t.slice(0, at)}${rng.pick([".", "=", " ", "é", text(rng, 3)])}${t.slice(at)}`;
        break;
      case 3:
        t = t.slice(0, at);
        break;
      default:
        t = `${t}${t.slice(0, rng.range(1, 64))}`;
    }
  }
  return t.length === 0 ? "x" : t;
}

/** The bytes one connection writes, generated from (seed, i). */
export function authHandshakeInput(c: Credentials, seed: number, i: number): Buffer {
  const rng = new Rng(seed ^ 0x41555448, i);
  const agent = rng.pick(AGENTS);
  const hello: Record<string, unknown> = {
    role: rng.chance(0.8) ? "agent" : "operator",
    name: rng.chance(0.6) ? agent.name : rng.pick([`fz-${i}`, `fz-${i % 10}`, "n".repeat(128), "other"]),
    labels: rng.chance(0.7) ? agent.labels : rng.pick([{}, { zone: "us" }, { zone: "eu" }]),
    version: "1",
  };
  const kind = rng.weighted([
    [20, "valid"],
    [20, "invalid"],
    [15, "mutated"],
    [20, "enrol"],
    [5, "none"],
    [5, "oversized"],
    [5, "resume"],
    [10, "bytes"],
  ] as const);
  switch (kind) {
    case "valid":
    case "resume":
      hello.auth = rng.pick(c.valid);
      if (kind === "resume") hello.token = text(rng, rng.range(1, 128));
      break;
    case "invalid":
      hello.auth = rng.pick(c.invalid);
      break;
    case "mutated":
      hello.auth = mutateToken(rng, rng.pick([...c.valid, ...c.enrol]));
      break;
    case "enrol":
    case "bytes":
      hello.auth = rng.pick(c.enrol);
      hello.name = rng.chance(0.7) ? `fz-${i}` : rng.pick(["fz-7", "edge-1", "n".repeat(128), agent.name]);
      hello.labels = rng.chance(0.7) ? {} : { zone: "eu" };
      if (rng.chance(0.85))
        hello.enrolId = rng.chance(0.85)
          ? text(rng, rng.range(16, 64))
          : rng.pick([text(rng, 15), text(rng, 65), "spaces are not base64url!", ""]);
      break;
    case "oversized":
      hello.auth = rng.chance(0.5)
        ? "x".repeat(rng.range(4097, 4300))
        : `${rng.pick(c.valid)}${"A".repeat(4096)}`;
      break;
    case "none":
      break;
  }
  const frame = rawFrame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify(hello)));
  const bytes = lengthPrefix(frame);
  return kind === "bytes" ? mutateBytes(rng, bytes, seedFrames()) : bytes;
}

/** What the server must answer a HELLO that decodes. */
interface AuthExpect {
  welcome: boolean;
  /** CLOSE codes allowed (when no WELCOME is due). */
  codes: readonly string[];
  message?: string | RegExp;
}

const close = (codes: string | string[], message?: string | RegExp): AuthExpect => ({
  welcome: false,
  codes: typeof codes === "string" ? [codes] : codes,
  ...(message !== undefined ? { message } : {}),
});

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/** The oracle: the server's rules, restated from docs/auth.md. */
export async function authExpectation(hello: HelloBody, now = Date.now()): Promise<AuthExpect> {
  if (hello.auth === undefined) return close(CloseCode.UNAUTHENTICATED, /^no credential: present a token/);
  let claims: Awaited<ReturnType<typeof verifyToken>>;
  try {
    claims = await verifyToken(SERVER_KEY, hello.auth, now);
  } catch (err) {
    return close(CloseCode.UNAUTHENTICATED, (err as MusterError).rawMessage);
  }
  if (claims.role === "enrol") {
    if (hello.role !== "agent")
      return close(CloseCode.REJECTED, "an enrolment token opens agent sessions only");
    if (!globToRegExp(claims.subject).test(hello.name))
      return close(CloseCode.REJECTED, /^this enrolment token is for agents named /);
    if (!sameLabels(hello.labels, claims.labels))
      return close(CloseCode.REJECTED, /^agent \S+ presents labels /);
    if (hello.enrolId === undefined)
      return close(CloseCode.PROTOCOL_ERROR, "an enrolment HELLO must carry enrolId");
    try {
      checkIssue(SERVER_KEY, {
        role: "agent",
        subject: hello.name,
        labels: hello.labels,
        ttlMs: DEFAULTS.enrolledTokenTtlMs,
        ...(claims.methods !== undefined ? { methods: claims.methods } : {}),
      });
    } catch (err) {
      return close(
        CloseCode.REJECTED,
        `enrolment of ${hello.name} refused: ${(err as MusterError).rawMessage}`,
      );
    }
    const fingerprint = createHash("sha256").update(hello.enrolId).digest("hex").slice(0, 16);
    // Pending (a conflict when a name repeats), or busy once the book is full.
    return close(
      [CloseCode.PENDING, CloseCode.BUSY],
      new RegExp(
        `^(waiting for an operator to accept ${hello.name} \\(fingerprint ${fingerprint}\\)|too many enrolment requests are waiting)`,
      ),
    );
  }
  if ((hello.role === "agent") !== (claims.role === "agent"))
    return close(CloseCode.REJECTED, /token cannot open an? (agent|operator) session/);
  if (claims.role === "agent" && hello.name !== claims.subject)
    return close(CloseCode.REJECTED, /^the token is for agent /);
  if (claims.role === "agent" && !sameLabels(hello.labels, claims.labels))
    return close(CloseCode.REJECTED, /^agent \S+ presents labels /);
  return { welcome: true, codes: [] };
}

/** Judges a connection whose HELLO decoded; undefined when the server behaved. */
function judgeAuth(e: AuthExpect, o: Outcome, earlyFrame: boolean): string | undefined {
  if (o.undecodable) return `the server sent bytes that do not decode: ${o.undecodable}`;
  if (o.timedOut) return "the connection was neither answered nor closed in time";
  if (o.error) return `the connection failed: ${o.error}`;
  const first = o.frames[0];
  // A whole second frame sent with the HELLO may be read while the credential is checked.
  if (earlyFrame && first?.type === FrameType.CLOSE && first.close.code === CloseCode.PROTOCOL_ERROR)
    return undefined;
  if (e.welcome)
    return first?.type === FrameType.WELCOME
      ? undefined
      : `a valid credential got ${first ? describe(first) : "no frame"} instead of WELCOME`;
  if (first?.type !== FrameType.CLOSE)
    return `expected CLOSE ${e.codes.join("|")}, got ${first ? describe(first) : "no frame"}`;
  if (!e.codes.includes(first.close.code))
    return `expected CLOSE ${e.codes.join("|")}, got ${describe(first)}`;
  const m = first.close.message;
  if (typeof e.message === "string" ? m !== e.message : e.message !== undefined && !e.message.test(m))
    return `CLOSE ${first.close.code} said ${oneLine(m, 120)}, expected ${oneLine(String(e.message), 120)}`;
  if (o.frames.length > 1) return `${o.frames.length - 1} frames after CLOSE`;
  if (!o.closedByServer) return "the server sent CLOSE but did not close the connection";
  return undefined;
}

/** A connection that ended one way or another, with bytes that decode. */
function endedAtAll(o: Outcome): string | undefined {
  if (o.undecodable) return `the server sent bytes that do not decode: ${o.undecodable}`;
  if (o.timedOut) return "the connection was neither answered nor closed in time";
  return undefined;
}

export interface AuthHandshakeStats {
  connections: number;
  welcomed: number;
  /** CLOSE frames received, by code. */
  closed: Record<string, number>;
  controlCalls: number;
}

export interface AuthHandshakeOptions {
  seed: number;
  connections: number;
  /** Extra inputs run first (regression fixtures). */
  extra?: readonly Buffer[];
  concurrency?: number;
  onFailure?(failure: Failure): void;
  onProgress?(done: number): void;
}

/**
 * Starts a server with authentication and enrolment, and a control agent with a token, runs
 * every input on its own connection, and calls the control agent after every 8 connections.
 * The failure limiter and the enrolment bounds are set out of reach: they are tested elsewhere,
 * and every connection here comes from 127.0.0.1.
 */
export async function runAuthHandshakeFuzz(o: AuthHandshakeOptions): Promise<AuthHandshakeStats> {
  const c = await credentials();
  const stats: AuthHandshakeStats = { connections: 0, welcomed: 0, closed: {}, controlCalls: 0 };
  const server = createServer({
    listen: ["tcp://127.0.0.1:0"],
    name: "fuzz-auth",
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    maxFrameBytes: MAX_FRAME_BYTES,
    auth: {
      key: SERVER_KEY,
      approve: true,
      failuresPerMinute: 1e9,
      failureBurst: 1e9,
      enrolmentMaxPendingPerToken: 1e6,
      enrolmentMaxPendingPerAddress: 1e6,
    },
  });
  await server.start();
  const listener = server.listeners[0]!;
  let agent: MusterAgent | undefined;
  const trouble: string[] = [];
  try {
    agent = createAgent({
      name: CONTROL,
      servers: [listener.url],
      token: c.control,
      reconnect: { initialMs: 5, maxMs: 50, jitter: 0.5 },
    });
    agent.onEvent((e) => {
      if (e.type === "disconnected" || e.type === "replaced" || e.type === "closed" || e.type === "expired")
        trouble.push(`control agent ${e.type}${"reason" in e ? `: ${e.reason}` : ""}`);
    });
    agent.start();
    await agent.connected();
    const inputs: Buffer[] = [...(o.extra ?? [])];
    for (let i = 0; i < o.connections; i++) inputs.push(authHandshakeInput(c, o.seed, i));
    const recent: Buffer[] = [];
    const control = async (): Promise<void> => {
      const since = Buffer.concat(recent.splice(0));
      try {
        await server.callAgent(CONTROL, "sys.ping", undefined, { timeoutMs: 3000 });
        stats.controlCalls++;
      } catch (err) {
        o.onFailure?.({
          target: "auth",
          input: since,
          message: `the control agent did not answer: ${describeThrown(err)}`,
        });
      }
      for (const t of trouble.splice(0)) o.onFailure?.({ target: "auth", input: since, message: t });
    };
    let next = 0;
    const runner = async (): Promise<void> => {
      for (let i = next++; i < inputs.length; i = next++) {
        const bytes = inputs[i]!;
        const expect: Expectation = expectationFor(bytes, false);
        const split = referenceSplit(bytes, MAX_FRAME_BYTES);
        let oracle: AuthExpect | undefined;
        if (expect.kind === "welcome" && !expect.thenStreamError) {
          const f = decodeFrame(split.frames[0]!);
          if (f.type === FrameType.HELLO) oracle = await authExpectation(f.hello);
        }
        const outcome = await probe(listener.port, bytes, expect);
        stats.connections++;
        const first = outcome.frames[0];
        if (first?.type === FrameType.WELCOME) stats.welcomed++;
        else if (first?.type === FrameType.CLOSE)
          stats.closed[first.close.code] = (stats.closed[first.close.code] ?? 0) + 1;
        const bad =
          oracle !== undefined
            ? judgeAuth(oracle, outcome, split.frames.length > 1)
            : expect.kind === "welcome"
              ? endedAtAll(outcome) // a HELLO, then a broken length prefix: any end will do
              : judge(expect, outcome);
        if (bad !== undefined) o.onFailure?.({ target: "auth", input: bytes, message: bad });
        recent.push(bytes);
        if (stats.connections % 8 === 0) await control();
        o.onProgress?.(stats.connections);
      }
    };
    await Promise.all(Array.from({ length: o.concurrency ?? 16 }, runner));
    await control();
  } finally {
    await agent?.close();
    await server.close();
  }
  return stats;
}
