/**
 * The raw-WebSocket peer: the ceiling for a WebSocket transport. `ws` with JSON text frames, one message
 * per frame, no compression.
 *
 *   requests      {"id":n,"m":"echo","p":payload}   {"id":n,"m":"stream","count":c,"size":s}
 *   replies       {"id":n,"r":payload}
 *   stream items  {"id":n,"item":payload} … then {"id":n,"end":true}
 *
 * Ids count per connection and per direction: a message with `m` is a request from the other end,
 * anything else answers one of ours.
 */
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
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

/** Bytes a stream may leave queued in `ws` and its socket before the writer waits. */
const HIGH_WATER_MARK = 1 << 20;

/** One end of a connection: outgoing requests matched to replies by id, incoming requests. */
class Conn {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private error: Error | undefined;
  /** Settles once the connection has closed. */
  readonly done: Promise<void>;

  constructor(
    readonly ws: WebSocket,
    onRequest: (conn: Conn, msg: Message) => void,
  ) {
    this.done = new Promise((resolve) => ws.once("close", () => resolve()));
    ws.on("message", (data) => {
      try {
        const msg = JSON.parse(data.toString()) as Message;
        if (msg.m !== undefined) onRequest(this, msg);
        else this.settle(msg);
      } catch (err) {
        this.error = err as Error;
        ws.terminate();
      }
    });
    // 'close' always follows 'error'; it fails whatever is still pending.
    ws.on("error", (err) => {
      this.error = err;
    });
    ws.on("close", () => {
      const reason = this.error ? `: ${this.error.message}` : "";
      const err = new Error(`raw-ws: connection closed${reason}`);
      for (const pending of this.pending.values()) pending.reject(err);
      this.pending.clear();
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one text frame; `cb` runs once it has been written out, or with an error if it never will. */
  send(msg: Message, cb?: (err?: Error) => void): void {
    this.ws.send(JSON.stringify(msg), cb);
  }

  request(msg: Omit<Message, "id">, onItem?: (item: BenchPayload) => void): Promise<unknown> {
    if (!this.open) return Promise.reject(new Error("raw-ws: connection not open"));
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

/**
 * `ws` has no 'drain' event, so the writer watches `bufferedAmount` (bytes queued in `ws` and in the
 * socket, not yet handed to the kernel). Over the mark, it sends the next item with a callback and waits
 * for it: `ws` calls it once that frame is written out, and since writes complete in order, everything
 * queued before it has gone too. The wait is event-driven (no polling), and cannot hang: the callback
 * also runs, with an error, if the connection closes first.
 */
async function streamTo(conn: Conn, id: number, count: number, size: number): Promise<void> {
  const data = "x".repeat(size);
  for (let i = 0; i < count && conn.open; i++) {
    const msg: Message = { id, item: { i, data } };
    if (conn.ws.bufferedAmount < HIGH_WATER_MARK) conn.send(msg);
    else await new Promise<void>((resolve) => conn.send(msg, () => resolve()));
  }
  if (conn.open) conn.send({ id, end: true });
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

/** A WebSocket server on `host:port`, listening. */
async function listen(host: string, port: number): Promise<WebSocketServer> {
  const wss = new WebSocketServer({ host, port, backlog: 4096, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    wss.once("error", reject);
    wss.once("listening", () => {
      wss.off("error", reject);
      resolve();
    });
  });
  wss.on("error", (err) => console.error("raw-ws server:", err.message));
  return wss;
}

const startServer: BenchSystem["startServer"] = async ({ host, port, extraHosts = [] }) => {
  const conns = new Set<Conn>();
  // One listener per address, all on the first one's port.
  const servers = [await listen(host, port)];
  const bound = (servers[0]!.address() as AddressInfo).port;
  for (const extra of extraHosts) servers.push(await listen(extra, bound));
  for (const wss of servers)
    wss.on("connection", (ws) => {
      const conn = new Conn(ws, serveRequest);
      conns.add(conn);
      ws.on("close", () => conns.delete(conn));
    });
  return {
    port: bound,
    connected: () => conns.size,
    fanout: (payload, timeoutMs) => {
      const replies = Promise.all([...conns].map((c) => c.request({ m: "echo", p: payload })));
      return withTimeout(replies, timeoutMs, "fanout");
    },
    close: async () => {
      // Drop the connections outright (no closing handshake each), and wait for the listener and for them.
      const listeners = servers.map((wss) => new Promise<void>((resolve) => wss.close(() => resolve())));
      const sockets = [...conns].map((conn) => conn.done);
      for (const conn of conns) conn.ws.terminate();
      await Promise.all([...listeners, ...sockets]);
    },
  };
};

const connect: BenchSystem["connect"] = async ({ host, port }) => {
  const hostname = host.includes(":") ? `[${host}]` : host;
  const ws = new WebSocket(`ws://${hostname}:${port}`, { perMessageDeflate: false });
  // Listen before 'open': the server may send right after the handshake.
  const conn = new Conn(ws, answerEcho);
  await new Promise<void>((resolve, reject) => {
    ws.once("error", reject);
    ws.once("open", () => {
      ws.off("error", reject);
      resolve();
    });
  });
  return {
    call: (payload) => conn.request({ m: "echo", p: payload }),
    stream: async (count, size, onItem) => {
      await conn.request({ m: "stream", count, size }, onItem);
    },
    close: async () => {
      ws.close(); // a no-op once closing or closed
      await conn.done;
    },
  };
};

export const systems: BenchSystem[] = [{ name: "raw-ws", startServer, connect }];
