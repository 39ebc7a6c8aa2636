/**
 * The raw-TCP peer: the ceiling for a TCP transport. Every message is a 4-byte big-endian length
 * followed by a UTF-8 JSON body, written with one `socket.write` of one Buffer, Nagle off.
 *
 *   requests      {"id":n,"m":"echo","p":payload}   {"id":n,"m":"stream","count":c,"size":s}
 *   replies       {"id":n,"r":payload}
 *   stream items  {"id":n,"item":payload} … then {"id":n,"end":true}
 *
 * Ids count per connection and per direction: a message with `m` is a request from the other end,
 * anything else answers one of ours.
 */
import { type AddressInfo, createServer, connect as netConnect, type Server, type Socket } from "node:net";
import type { BenchPayload, BenchSystem } from "../../src/bench/types.js";

interface Message {
  id: number;
  m?: "echo" | "stream";
  p?: BenchPayload;
  count?: number;
  size?: number;
  r?: unknown;
  item?: BenchPayload;
  end?: boolean;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  onItem: ((item: BenchPayload) => void) | undefined;
}

/**
 * Splits a byte stream into frames. Whole frames are decoded straight from the chunk they arrived in;
 * only an incomplete tail is copied, into a buffer that grows by doubling and is reused, so no byte is
 * copied more than once. The buffer is allocated on first need: most connections never need one.
 */
class FrameReader {
  private buf = Buffer.alloc(0);
  private start = 0;
  private end = 0;

  constructor(private readonly onFrame: (body: string) => void) {}

  push(chunk: Buffer): void {
    if (this.start === this.end) {
      const used = this.parse(chunk, 0, chunk.length);
      if (used < chunk.length) this.append(chunk.subarray(used));
      return;
    }
    this.append(chunk);
    this.start = this.parse(this.buf, this.start, this.end);
    if (this.start === this.end) this.start = this.end = 0;
  }

  /** Emits every complete frame in `buf[pos, end)`; returns where the first incomplete one starts. */
  private parse(buf: Buffer, pos: number, end: number): number {
    while (end - pos >= 4) {
      const length = buf.readUInt32BE(pos);
      if (end - pos - 4 < length) break;
      this.onFrame(buf.toString("utf8", pos + 4, pos + 4 + length));
      pos += 4 + length;
    }
    return pos;
  }

  private append(chunk: Buffer): void {
    if (this.end + chunk.length > this.buf.length) {
      const pending = this.end - this.start;
      const needed = pending + chunk.length;
      const target =
        needed > this.buf.length ? Buffer.allocUnsafe(Math.max(needed, 2 * this.buf.length, 4096)) : this.buf;
      this.buf.copy(target, 0, this.start, this.end);
      this.buf = target;
      this.start = 0;
      this.end = pending;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
  }
}

/** One end of a connection: framing, outgoing requests matched to replies by id, incoming requests. */
class Conn {
  /** Settles once the socket has closed. */
  readonly done: Promise<void>;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private error: Error | undefined;

  constructor(
    readonly socket: Socket,
    onRequest: (conn: Conn, msg: Message) => void,
  ) {
    socket.setNoDelay(true);
    this.done = new Promise((resolve) => socket.once("close", () => resolve()));
    const reader = new FrameReader((body) => {
      const msg = JSON.parse(body) as Message;
      if (msg.m !== undefined) onRequest(this, msg);
      else this.settle(msg);
    });
    socket.on("data", (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    // 'close' always follows 'error'; it fails whatever is still pending.
    socket.on("error", (err) => {
      this.error = err;
    });
    socket.on("close", () => {
      const reason = this.error ? `: ${this.error.message}` : "";
      const err = new Error(`raw-tcp: connection closed${reason}`);
      for (const pending of this.pending.values()) pending.reject(err);
      this.pending.clear();
    });
  }

  /** Writes one message; returns false when the socket's buffer is over its high-water mark. */
  send(msg: Message): boolean {
    const json = JSON.stringify(msg);
    const length = Buffer.byteLength(json);
    const frame = Buffer.allocUnsafe(4 + length);
    frame.writeUInt32BE(length, 0);
    frame.write(json, 4);
    return this.socket.write(frame);
  }

  request(msg: Omit<Message, "id">, onItem?: (item: BenchPayload) => void): Promise<unknown> {
    if (this.socket.destroyed) return Promise.reject(new Error("raw-tcp: connection closed"));
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onItem });
      this.send({ id, ...msg });
    });
  }

  private settle(msg: Message): void {
    const pending = this.pending.get(msg.id);
    if (!pending) return;
    if (msg.item !== undefined) {
      pending.onItem?.(msg.item);
    } else {
      this.pending.delete(msg.id);
      pending.resolve(msg.r);
    }
  }
}

function answerEcho(conn: Conn, msg: Message): void {
  if (msg.m === "echo") conn.send({ id: msg.id, r: msg.p });
}

function serveRequest(conn: Conn, msg: Message): void {
  if (msg.m === "stream") void streamTo(conn, msg.id, msg.count ?? 0, msg.size ?? 0);
  else answerEcho(conn, msg);
}

async function streamTo(conn: Conn, id: number, count: number, size: number): Promise<void> {
  const data = "x".repeat(size);
  for (let i = 0; i < count; i++) {
    if (!conn.send({ id, item: { i, data } })) await drained(conn.socket);
    if (conn.socket.destroyed) return;
  }
  conn.send({ id, end: true });
}

/** Resolves on 'drain', or on 'close' (after which no 'drain' comes). */
function drained(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Listens on `host:port`; resolves with the bound port. */
function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

const startServer: BenchSystem["startServer"] = async ({ host, port, extraHosts = [] }) => {
  const conns = new Set<Conn>();
  const accept = (socket: Socket): void => {
    const conn = new Conn(socket, serveRequest);
    conns.add(conn);
    socket.on("close", () => conns.delete(conn));
  };
  // One listener per address, all on the first one's port.
  const servers = [createServer(accept)];
  const bound = await listen(servers[0]!, host, port);
  for (const extra of extraHosts) {
    const s = createServer(accept);
    servers.push(s);
    await listen(s, extra, bound);
  }
  for (const s of servers) s.on("error", (err) => console.error("raw-tcp server:", err.message));
  return {
    port: bound,
    connected: () => conns.size,
    fanout: (payload, timeoutMs) => {
      const replies = Promise.all([...conns].map((c) => c.request({ m: "echo", p: payload })));
      return withTimeout(replies, timeoutMs, "fanout");
    },
    close: async () => {
      // The listeners report closed before their sockets do: wait for both.
      const listeners = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      const sockets = [...conns].map((conn) => conn.done);
      for (const conn of conns) conn.socket.destroy();
      await Promise.all([...listeners, ...sockets]);
    },
  };
};

const connect: BenchSystem["connect"] = async ({ host, port }) => {
  const socket = netConnect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve();
    });
  });
  const conn = new Conn(socket, answerEcho);
  return {
    call: (payload) => conn.request({ m: "echo", p: payload }),
    stream: async (count, size, onItem) => {
      await conn.request({ m: "stream", count, size }, onItem);
    },
    close: async () => {
      if (!socket.destroyed) socket.end();
      await conn.done;
    },
  };
};

export const systems: BenchSystem[] = [{ name: "raw-tcp", startServer, connect }];
