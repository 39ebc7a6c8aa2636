// Hand-made peers for hostile tests over real sockets: a TCP peer speaking length-prefixed
// frames, and a WebSocket peer that does the upgrade and the framing itself, so that a test
// decides every byte and every write (one write, several, a byte at a time, fragments).
import { connect, type Socket } from "node:net";
import { decodeFrame } from "../../src/wire/codec.js";
import type { CloseBody, Frame } from "../../src/wire/frame.js";
import { FrameType } from "../../src/wire/frame.js";
import { LengthPrefixDecoder } from "../../src/wire/length-prefix.js";

/** What a raw peer received. */
export interface Received {
  /** Our frames, decoded, in order. */
  frames: Frame[];
  /** The WebSocket close frame, if one came. */
  wsClose?: { status: number; reason: string };
  /** The HTTP answer, when an upgrade was refused (status line, headers and body). */
  httpAnswer?: string;
  /** The connection is closed. */
  closed: boolean;
}

/** The first CLOSE frame received, if any. */
export function closeOf(r: Received): CloseBody | undefined {
  const f = r.frames.find((x) => x.type === FrameType.CLOSE);
  return f?.type === FrameType.CLOSE ? f.close : undefined;
}

/** Resolves when `r` is closed (or rejects after `ms`). */
export async function closedWithin(r: Received, ms: number, what = "the connection to close"): Promise<void> {
  const start = Date.now();
  while (!r.closed) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

export interface ConnectOptions {
  host?: string;
  /** Source address to connect from (127.0.0.2, say: another client on loopback). */
  localAddress?: string;
}

function open(port: number, o: ConnectOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({
      port,
      host: o.host ?? "127.0.0.1",
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    s.setNoDelay(true);
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** A TCP peer: write raw bytes, read length-prefixed frames. */
export async function rawTcp(
  port: number,
  o: ConnectOptions = {},
): Promise<{ socket: Socket; got: Received }> {
  const socket = await open(port, o);
  const got: Received = { frames: [], closed: false };
  const decoder = new LengthPrefixDecoder(64 * 1024 * 1024);
  socket.on("data", (chunk) => decoder.push(chunk, (f) => got.frames.push(decodeFrame(f))));
  socket.on("error", () => {});
  socket.on("close", () => {
    got.closed = true;
  });
  return { socket, got };
}

/** The opening handshake of a WebSocket client, with extra headers (`Origin: …`). */
export function upgradeRequest(extra: Record<string, string> = {}): string {
  const lines = [
    "GET / HTTP/1.1",
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/**
 * A WebSocket peer: sends the upgrade, and resolves once the server has answered it (101, or a
 * refusal in `got.httpAnswer`). Server messages are parsed as they come: binary ones decoded as
 * our frames, a close frame kept in `got.wsClose`.
 */
export async function rawWs(
  port: number,
  o: ConnectOptions & { headers?: Record<string, string> } = {},
): Promise<{ socket: Socket; got: Received; upgraded: boolean }> {
  const socket = await open(port, o);
  const got: Received = { frames: [], closed: false };
  socket.on("error", () => {});
  socket.on("close", () => {
    got.closed = true;
  });
  let buf: Buffer = Buffer.alloc(0);
  let upgraded: boolean | undefined;
  const answered = new Promise<boolean>((resolve) => {
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (upgraded === undefined) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        upgraded = head.startsWith("HTTP/1.1 101");
        if (!upgraded) {
          got.httpAnswer = buf.toString("utf8");
          socket.on("data", (more: Buffer) => {
            got.httpAnswer += more.toString("utf8");
          });
          socket.off("data", onData);
          resolve(false);
          return;
        }
        buf = buf.subarray(end + 4);
        resolve(true);
      }
      buf = parseServerFrames(buf, got);
    };
    socket.on("data", onData);
    socket.once("close", () => resolve(upgraded === true));
  });
  socket.write(upgradeRequest(o.headers));
  return { socket, got, upgraded: await answered };
}

/** Parses whole unmasked server frames off the front of `buf`; returns what is left. */
function parseServerFrames(buf: Buffer, got: Received): Buffer {
  let b = buf;
  for (;;) {
    if (b.length < 2) return b;
    const opcode = b[0]! & 0x0f;
    let len = b[1]! & 0x7f;
    let at = 2;
    if (len === 126) {
      if (b.length < 4) return b;
      len = b.readUInt16BE(2);
      at = 4;
    } else if (len === 127) {
      if (b.length < 10) return b;
      len = Number(b.readBigUInt64BE(2));
      at = 10;
    }
    if (b.length < at + len) return b;
    const payload = b.subarray(at, at + len);
    if (opcode === 0x2) got.frames.push(decodeFrame(payload));
    else if (opcode === 0x8)
      got.wsClose = {
        status: len >= 2 ? payload.readUInt16BE(0) : 1005,
        reason: payload.subarray(2).toString(),
      };
    b = b.subarray(at + len);
  }
}

/**
 * One client frame: masked (with a zero mask, so the payload goes as it is), `fin` unless told,
 * binary unless told. `announce` puts another length in the header than the payload sent.
 */
export function wsFrame(
  payload: Uint8Array,
  o: { fin?: boolean; opcode?: number; announce?: number } = {},
): Buffer {
  const len = o.announce ?? payload.length;
  const first = ((o.fin ?? true) ? 0x80 : 0) | (o.opcode ?? 0x2);
  let head: Buffer;
  if (len < 126) head = Buffer.from([first, 0x80 | len]);
  else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = first;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = first;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}
