// The handshake target: a real server on tcp://127.0.0.1:0 receives generated HELLO frames
// (and raw garbage) on fresh connections, while a control agent connected beforehand must
// keep answering calls. Each input is the exact bytes written to one connection.

import { connect as netConnect } from "node:net";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import { DEFAULTS } from "../src/internal/defaults.js";
import { createServer } from "../src/server/create-server.js";
import { decodeFrame, encodeFrame } from "../src/wire/codec.js";
import { CloseCode, type Frame, FrameType, HEADER_BYTES } from "../src/wire/frame.js";
import { LengthPrefixDecoder, lengthPrefix } from "../src/wire/length-prefix.js";
import { BAD_UTF8, helloBody, mutateBytes, rawFrame, seedFrames } from "./inputs.js";
import { Rng } from "./rng.js";
import type { Failure } from "./run.js";
import { describeThrown, oneLine, referenceSplit } from "./targets.js";

export const MAX_FRAME_BYTES = 1024 * 1024;
/** Incomplete handshakes are closed by the server after this long. */
export const HANDSHAKE_TIMEOUT_MS = 1500;
/** A connection not settled after this long is a failure. */
const SETTLE_MS = HANDSHAKE_TIMEOUT_MS + 4000;
/** The control agent answers a call after every this many connections, and at the end. */
const CONTROL_EVERY = 8;
/** The control agent's name: no generated HELLO can take it over. */
const CONTROL = "fuzz-control-5c1e0d7a";

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** The bytes one connection writes, generated from (seed, i). */
export function handshakeInput(seed: number, i: number): Buffer {
  const rng = new Rng(seed ^ 0x48454c4f, i);
  const name = `fz-${i}`;
  const kind = rng.weighted([
    [8, "garbage"],
    [50, "hello"],
    [15, "bytes"],
    [10, "valid"],
    [10, "other-frame"],
    [7, "truncated"],
  ] as const);
  switch (kind) {
    case "garbage":
      return rng.pick([
        () => rng.bytes(rng.range(1, 300)),
        () => Buffer.from("GET / HTTP/1.1\r\nHost: muster\r\n\r\n"),
        () => Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
        () => Buffer.concat([u32(0xffffffff), rng.bytes(rng.size(40))]),
        () => Buffer.concat([u32(rng.range(0, 13)), rng.bytes(rng.size(40))]),
        () => Buffer.concat([u32(MAX_FRAME_BYTES + 1), rng.bytes(rng.size(40))]),
        () => Buffer.from(rng.pick(BAD_UTF8)),
      ])();
    case "hello":
      return lengthPrefix(
        rawFrame(FrameType.HELLO, 0, rng.chance(0.8) ? 0 : rng.u32(), helloBody(rng, name)),
      );
    case "bytes": {
      let out = lengthPrefix(rawFrame(FrameType.HELLO, 0, 0, helloBody(rng, name)));
      const rounds = rng.range(1, 4);
      for (let r = 0; r < rounds; r++) out = mutateBytes(rng, out, seedFrames());
      return out;
    }
    case "valid": {
      const labels: Record<string, string> = {};
      const n = rng.pick([0, 1, 63, 64]);
      for (let k = 0; k < n; k++)
        labels[`k${k}`.padEnd(rng.pick([2, 63]), "x")] = "v".repeat(rng.pick([0, 256]));
      const frame: Frame = {
        type: FrameType.HELLO,
        seq: 0,
        ack: 0,
        hello: {
          role: rng.chance(0.8) ? "agent" : "operator",
          name: rng.chance(0.5) ? name : `${name}-`.padEnd(128, "n"),
          labels,
          version: "v".repeat(rng.pick([0, 5, 64])),
          ...(rng.chance(0.3) ? { token: "t".repeat(rng.range(1, 128)) } : {}),
        },
      };
      return lengthPrefix(encodeFrame(frame));
    }
    case "other-frame": {
      const seeds = seedFrames().filter((f) => f[1] !== FrameType.HELLO);
      const first = rng.chance(0.7)
        ? rng.pick(seeds)
        : rawFrame(
            FrameType.HELLO,
            rng.chance(0.5) ? 1 : 0,
            0,
            helloBody(rng, name),
            rng.chance(0.5) ? 2 : 1,
          );
      return lengthPrefix(first);
    }
    default: {
      const whole = lengthPrefix(rawFrame(FrameType.HELLO, 0, 0, helloBody(rng, name)));
      return whole.subarray(0, rng.range(1, whole.length - 1));
    }
  }
}

/** What the server must do with a connection, judged from the bytes alone. */
export type Expectation =
  | { kind: "welcome" /** a bad length prefix follows the HELLO */; thenStreamError: boolean }
  | { kind: "close"; message: string | undefined }
  | { kind: "stream-error" }
  | { kind: "incomplete" /** keep the connection open: the server must time it out */; wait: boolean };

export function expectationFor(bytes: Buffer, waitOnIncomplete: boolean): Expectation {
  // Over TCP, a first frame announced larger than any HELLO may be is refused from its length
  // prefix (frame_too_large), before its body is read.
  if (bytes.length >= 4 && bytes.readUInt32BE(0) > HEADER_BYTES + DEFAULTS.maxHelloBytes) {
    return { kind: "stream-error" };
  }
  const split = referenceSplit(bytes, MAX_FRAME_BYTES);
  const first = split.frames[0];
  if (first === undefined) {
    return split.error ? { kind: "stream-error" } : { kind: "incomplete", wait: waitOnIncomplete };
  }
  let frame: Frame;
  try {
    frame = decodeFrame(first);
  } catch (err) {
    return { kind: "close", message: err instanceof MusterError ? err.rawMessage : undefined };
  }
  if (frame.type !== FrameType.HELLO) return { kind: "close", message: "the first frame must be HELLO" };
  return { kind: "welcome", thenStreamError: split.error !== undefined };
}

export interface Outcome {
  frames: Frame[];
  /** The server ended the connection (we had not ended our side first). */
  closedByServer: boolean;
  error: string | undefined;
  timedOut: boolean;
  undecodable: string | undefined;
}

/** Writes `bytes` on a fresh connection and collects what the server answers until it closes. */
export function probe(port: number, bytes: Buffer, expect: Expectation): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    const frames: Frame[] = [];
    const decoder = new LengthPrefixDecoder(MAX_FRAME_BYTES);
    let endedByUs = false;
    let closedByServer = false;
    let error: string | undefined;
    let undecodable: string | undefined;
    const endOurSide = (): void => {
      if (endedByUs) return;
      endedByUs = true;
      socket.end();
    };
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ frames, closedByServer, error, timedOut: true, undecodable });
    }, SETTLE_MS);
    socket.on("data", (chunk: Buffer) => {
      try {
        decoder.push(chunk, (f) => {
          const frame = decodeFrame(f);
          frames.push(frame);
          if (frame.type === FrameType.WELCOME) endOurSide();
        });
      } catch (err) {
        undecodable ??= describeThrown(err);
        socket.destroy();
      }
    });
    socket.on("end", () => {
      if (!endedByUs) closedByServer = true;
    });
    socket.on("error", (err) => {
      error ??= describeThrown(err);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ frames, closedByServer, error, timedOut: false, undecodable });
    });
    socket.on("connect", () => {
      socket.write(bytes);
      if (expect.kind === "incomplete" && !expect.wait) endOurSide();
    });
  });
}

const CLOSE_ON_BAD_HELLO = new Set<string>([CloseCode.PROTOCOL_ERROR]);
const CLOSE_ON_BAD_STREAM = new Set<string>([CloseCode.PROTOCOL_ERROR, CloseCode.FRAME_TOO_LARGE]);

/** Judges one connection; undefined when the server behaved. */
export function judge(expect: Expectation, o: Outcome): string | undefined {
  if (o.undecodable) return `the server sent bytes that do not decode: ${o.undecodable}`;
  if (o.timedOut) return `the connection was neither answered nor closed within ${SETTLE_MS} ms`;
  if (o.error) return `the connection failed: ${o.error}`;
  const first = o.frames[0];
  switch (expect.kind) {
    case "welcome":
      // A bad length prefix read in the same chunk as the HELLO may close the link before
      // the WELCOME is written: a clean close, or a CLOSE, is acceptable then.
      if (
        expect.thenStreamError &&
        o.closedByServer &&
        (first === undefined || first.type === FrameType.CLOSE)
      ) {
        return undefined;
      }
      if (first?.type !== FrameType.WELCOME) {
        return `a valid HELLO got ${first ? describe(first) : "no frame"} instead of WELCOME`;
      }
      return undefined;
    case "close": {
      if (first?.type !== FrameType.CLOSE)
        return `a bad HELLO got ${first ? describe(first) : "no frame"} instead of CLOSE`;
      if (!CLOSE_ON_BAD_HELLO.has(first.close.code)) return `a bad HELLO got CLOSE ${first.close.code}`;
      if (expect.message !== undefined && first.close.message !== expect.message) {
        return `CLOSE said ${oneLine(first.close.message, 120)}, the decoder says ${oneLine(expect.message, 120)}`;
      }
      if (o.frames.length > 1) return `${o.frames.length - 1} frames after CLOSE`;
      if (!o.closedByServer) return "the server sent CLOSE but did not close the connection";
      return undefined;
    }
    case "stream-error":
      if (o.frames.some((f) => f.type === FrameType.WELCOME))
        return "WELCOME on a connection with a bad length prefix";
      if (
        first !== undefined &&
        (first.type !== FrameType.CLOSE || !CLOSE_ON_BAD_STREAM.has(first.close.code))
      ) {
        return `a bad length prefix got ${describe(first)}`;
      }
      if (!o.closedByServer) return "the server did not close a connection with a bad length prefix";
      return undefined;
    case "incomplete":
      if (o.frames.some((f) => f.type === FrameType.WELCOME)) return "WELCOME without a whole HELLO";
      if (first !== undefined && first.type !== FrameType.CLOSE)
        return `an incomplete HELLO got ${describe(first)}`;
      if (expect.wait) {
        if (first?.type !== FrameType.CLOSE || first.close.code !== CloseCode.HANDSHAKE_TIMEOUT) {
          return `an incomplete HELLO got ${first ? describe(first) : "no frame"} instead of CLOSE handshake_timeout`;
        }
        if (!o.closedByServer) return "the server did not close a connection without a whole HELLO";
      }
      return undefined;
  }
}

export function describe(frame: Frame): string {
  if (frame.type === FrameType.CLOSE) return `CLOSE ${frame.close.code} ${oneLine(frame.close.message, 80)}`;
  return `frame type 0x${frame.type.toString(16)}`;
}

export interface HandshakeStats {
  connections: number;
  welcomed: number;
  closedWithFrame: number;
  closedClean: number;
  controlCalls: number;
}

export interface HandshakeOptions {
  seed: number;
  /** Generated connections. */
  connections: number;
  /** Extra inputs run first (regression fixtures). */
  extra?: readonly Buffer[];
  /** Connections in flight at once. */
  concurrency?: number;
  /**
   * Keep connections that sent an incomplete HELLO open until the server closes them with
   * handshake_timeout (about 1.5 s each, in parallel), rather than ending them.
   */
  waitOnIncomplete?: boolean;
  onFailure?(failure: Failure): void;
  onProgress?(done: number): void;
}

/**
 * Starts a server and a control agent, runs every input on its own connection, and calls
 * the control agent after each batch. Failures of the server as a whole (the control agent
 * not answering or dropped) are reported with an empty input.
 */
export async function runHandshakeFuzz(o: HandshakeOptions): Promise<HandshakeStats> {
  const stats: HandshakeStats = {
    connections: 0,
    welcomed: 0,
    closedWithFrame: 0,
    closedClean: 0,
    controlCalls: 0,
  };
  const server = createServer({
    listen: ["tcp://127.0.0.1:0"],
    name: "fuzz",
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    maxFrameBytes: MAX_FRAME_BYTES,
    // The decoder and the handshake's state machine are under test here: no credentials.
    standalone: true,
  });
  await server.start();
  const listener = server.listeners[0]!;
  let agent: MusterAgent | undefined;
  const agentTrouble: string[] = [];
  try {
    agent = createAgent({
      name: CONTROL,
      servers: [listener.url],
      reconnect: { initialMs: 5, maxMs: 50, jitter: 0.5 },
    });
    agent.onEvent((e) => {
      if (e.type === "disconnected" || e.type === "replaced" || e.type === "closed" || e.type === "expired") {
        agentTrouble.push(`control agent ${e.type}${"reason" in e ? `: ${e.reason}` : ""}`);
      }
    });
    agent.start();
    await agent.connected();
    const inputs: Buffer[] = [...(o.extra ?? [])];
    for (let i = 0; i < o.connections; i++) inputs.push(handshakeInput(o.seed, i));
    const recent: Buffer[] = []; // the inputs run since the last control call
    const control = async (): Promise<void> => {
      const since = Buffer.concat(recent.splice(0));
      try {
        const answer = await server.callAgent<{ pong: boolean }>(CONTROL, "sys.ping", undefined, {
          timeoutMs: 3000,
        });
        if (answer?.pong !== true) {
          throw new MusterError(ErrorCode.INTERNAL, `sys.ping answered ${JSON.stringify(answer)}`);
        }
        stats.controlCalls++;
      } catch (err) {
        o.onFailure?.({
          target: "handshake",
          input: since,
          message: `the control agent did not answer: ${describeThrown(err)}`,
        });
      }
      for (const trouble of agentTrouble.splice(0)) {
        o.onFailure?.({ target: "handshake", input: since, message: trouble });
      }
    };
    // A pool of connections in flight; a slow one (waiting for the handshake timeout) does not
    // hold the others back. The control agent is called after every CONTROL_EVERY connections.
    let next = 0;
    const runner = async (): Promise<void> => {
      for (let i = next++; i < inputs.length; i = next++) {
        const bytes = inputs[i]!;
        const expect = expectationFor(bytes, o.waitOnIncomplete === true);
        const outcome = await probe(listener.port, bytes, expect);
        stats.connections++;
        if (outcome.frames[0]?.type === FrameType.WELCOME) stats.welcomed++;
        else if (outcome.frames[0]?.type === FrameType.CLOSE) stats.closedWithFrame++;
        else if (!outcome.error && !outcome.timedOut) stats.closedClean++;
        const bad = judge(expect, outcome);
        if (bad !== undefined) o.onFailure?.({ target: "handshake", input: bytes, message: bad });
        recent.push(bytes);
        if (stats.connections % CONTROL_EVERY === 0) await control();
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
