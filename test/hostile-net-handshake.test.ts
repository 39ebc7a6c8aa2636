// A dialer that does not wait for the WELCOME (protocol §6.1): the frames it sends with its
// HELLO are refused with CLOSE protocol_error, every time, over TCP and WebSocket, with and
// without authentication, however the bytes are split into writes and into the server's
// reads. It used to depend on the split: a CALL completed in the read after the HELLO's was
// served whenever the HELLO's check resolved at once (standalone, or a cached token), since
// Node runs promise callbacks between two reads of one burst.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { generateKey } from "../src/auth/keys.js";
import { issueToken } from "../src/auth/tokens.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { encodeFrame } from "../src/wire/codec.js";
import { FrameType } from "../src/wire/frame.js";
import { lengthPrefix } from "../src/wire/length-prefix.js";
import { until } from "./support/fleet.js";
import { closeOf, type Received, rawTcp, rawWs, wsFrame } from "./support/raw-peers.js";

const ROUNDS = Number(process.env.ROUNDS ?? 200);
/** A CALL this big ends beyond the server's first 64 KiB read: it completes in the next one. */
const BIG_CALL_BYTES = 70 * 1024;

interface Target {
  server: MusterServer;
  tcp: number;
  ws: number;
  auth: string | undefined;
  served: { n: number };
}

async function target(withAuth: boolean): Promise<Target> {
  const key = generateKey();
  const server = createServer({
    listen: ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"],
    ...(withAuth ? { auth: { key } } : { standalone: true }),
    handshakesPerSecond: 0,
    maxConnectionsPerIp: 0,
  });
  const served = { n: 0 };
  server.handle("echo", (x) => {
    served.n++;
    return x;
  });
  await server.start();
  const auth = withAuth ? await issueToken(key, { role: "agent", subject: "eager" }) : undefined;
  return { server, tcp: server.listeners[0]!.port, ws: server.listeners[1]!.port, auth, served };
}

function handshake(t: Target, callBytes: number): [Uint8Array, Uint8Array] {
  const hello = encodeFrame({
    type: FrameType.HELLO,
    seq: 0,
    ack: 0,
    hello: { role: "agent", name: "eager", labels: {}, version: "1", ...(t.auth ? { auth: t.auth } : {}) },
  });
  const call = encodeFrame({
    type: FrameType.CALL,
    seq: 1,
    ack: 0,
    id: 1,
    timeoutMs: 5000,
    method: "echo",
    payload: { kind: 2, bytes: new Uint8Array(callBytes) },
  });
  return [hello, call];
}

type Split = "one write" | "two writes";

/** Sends HELLO and CALL as told and returns what came back once the server closed the link. */
async function attempt(t: Target, over: "tcp" | "ws", split: Split, callBytes: number): Promise<Received> {
  const [hello, call] = handshake(t, callBytes);
  let socket: Socket;
  let got: Received;
  let wire: (f: Uint8Array) => Buffer;
  if (over === "tcp") {
    ({ socket, got } = await rawTcp(t.tcp));
    wire = lengthPrefix;
  } else {
    ({ socket, got } = await rawWs(t.ws));
    wire = (f) => wsFrame(f);
  }
  if (split === "one write") socket.write(Buffer.concat([wire(hello), wire(call)]));
  else {
    socket.write(wire(hello));
    socket.write(wire(call));
  }
  try {
    // A CLOSE (then the server closes: over ws after the close handshake) or a RESULT.
    await until(
      () => got.closed || got.frames.some((f) => f.type === FrameType.CLOSE || f.type === FrameType.RESULT),
      10_000,
      `an answer on the ${over} link`,
    );
  } finally {
    socket.destroy();
  }
  return got;
}

for (const withAuth of [false, true]) {
  describe(`a frame right behind the HELLO, ${withAuth ? "with a token (verified once, then cached)" : "standalone"}`, () => {
    let t: Target;
    before(async () => {
      t = await target(withAuth);
    });
    after(() => t.server.close());

    for (const over of ["tcp", "ws"] as const) {
      for (const split of ["one write", "two writes"] as const) {
        for (const [size, callBytes] of [
          ["a small CALL", 1],
          ["a CALL ending in the next read", BIG_CALL_BYTES],
        ] as const) {
          it(`${over}: HELLO and ${size} in ${split}: CLOSE protocol_error, ${ROUNDS} times out of ${ROUNDS}`, async () => {
            const servedBefore = t.served.n;
            const outcomes = new Map<string, number>();
            for (let i = 0; i < ROUNDS; i++) {
              const got = await attempt(t, over, split, callBytes);
              const close = closeOf(got);
              const types = got.frames.map((f) => f.type);
              const outcome =
                close?.code === "protocol_error" && types.length === 1
                  ? "refused"
                  : types.includes(FrameType.RESULT)
                    ? "served"
                    : `other: ${types.join(",")} ${close?.code}: ${close?.message}`;
              outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
            }
            assert.deepEqual(Object.fromEntries(outcomes), { refused: ROUNDS });
            const close = closeOf(await attempt(t, over, split, callBytes));
            assert.equal(close?.message, "a frame arrived before the WELCOME: wait for it");
            assert.equal(t.served.n - servedBefore, 0, "no CALL was served");
            assert.equal(t.server.agent("eager"), undefined, "no session was made for a refused link");
          });
        }
      }
    }
  });
}
