/**
 * Socket.IO 4 as a benchmark peer. Client → server calls are `emitWithAck("echo")`, the fan-out is
 * a broadcast with acks (`io.timeout(t).emitWithAck`), and a stream is a run of `item` events
 * closed by `end`. Clients use the WebSocket transport only, so the runs measure steady-state
 * messaging rather than the long-polling upgrade.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server, type Socket } from "socket.io";
import { io as connectSocket } from "socket.io-client";
import type {
  BenchClient,
  BenchClientOptions,
  BenchPayload,
  BenchServer,
  BenchServerOptions,
  BenchSystem,
} from "../../src/bench/types.js";

interface StreamRequest {
  count: number;
  size: number;
}

type Ack<T> = (reply: T) => void;

/** Packets the stream writer queues on a connection before it waits for the queue to drain. */
const STREAM_HIGH_WATER = 64;

/** `host:port`, with IPv6 hosts in brackets. */
function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Writes `count` items to `socket`, then `end`.
 *
 * Socket.IO has no public back-pressure API: `emit` never refuses a packet. What engine.io does
 * offer is its "drain" event: `emit` appends the packet to the connection's write buffer, which is
 * handed to the WebSocket only when the transport is writable again, i.e. once the previous batch
 * has been written out to the OS; "drain" fires each time the buffer has been handed over. So the
 * writer counts the packets it queued since the last "drain" and, past STREAM_HIGH_WATER, waits for
 * the next one. A slow reader then holds at most about two batches in memory instead of the whole
 * stream.
 */
async function writeStream(socket: Socket, { count, size }: StreamRequest): Promise<void> {
  const conn = socket.conn;
  const data = "x".repeat(size);
  let queued = 0;
  const onDrain = () => {
    queued = 0;
  };
  conn.on("drain", onDrain);
  try {
    for (let i = 0; i < count && socket.connected; i++) {
      socket.emit("item", { i, data });
      if (++queued >= STREAM_HIGH_WATER) {
        await new Promise<void>((resolve) => {
          const done = () => {
            conn.off("drain", done);
            conn.off("close", done);
            resolve();
          };
          conn.on("drain", done);
          conn.on("close", done);
        });
      }
    }
    if (socket.connected) socket.emit("end");
  } finally {
    conn.off("drain", onDrain);
  }
}

async function startServer({ host, port, extraHosts = [] }: BenchServerOptions): Promise<BenchServer> {
  if (extraHosts.length > 0) throw new Error("socket.io: one listening address only in this benchmark");
  const httpServer = createServer();
  const io = new Server(httpServer, { perMessageDeflate: false, serveClient: false });

  io.on("connection", (socket) => {
    socket.on("echo", (payload: BenchPayload, ack: Ack<BenchPayload>) => ack(payload));
    socket.on("stream", (request: StreamRequest, ack: Ack<string | null>) => {
      if (!Number.isInteger(request?.count) || !Number.isInteger(request?.size)) {
        ack("stream: count and size must be integers");
        return;
      }
      ack(null);
      writeStream(socket, request).catch(() => socket.disconnect(true));
    });
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen({ host, port, backlog: 4096 }, () => {
      httpServer.off("error", reject);
      resolve();
    });
  });

  // Broadcasts still waiting for acks; `close()` rejects them rather than leaving them to time out.
  const pending = new Set<(error: Error) => void>();

  return {
    port: (httpServer.address() as AddressInfo).port,
    connected: () => io.of("/").sockets.size,
    fanout(payload, timeoutMs) {
      return new Promise<unknown[]>((resolve, reject) => {
        pending.add(reject);
        io.timeout(timeoutMs)
          .emitWithAck("echo", payload)
          .then(resolve, reject)
          .finally(() => pending.delete(reject));
      });
    },
    async close() {
      for (const reject of pending) reject(new Error("server closed"));
      pending.clear();
      await new Promise<void>((resolve) => io.close(() => resolve()));
    },
  };
}

async function connect({ host, port }: BenchClientOptions): Promise<BenchClient> {
  const socket = connectSocket(`http://${hostPort(host, port)}`, {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
  });
  socket.on("echo", (payload: BenchPayload, ack: Ack<BenchPayload>) => ack(payload));

  await new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
      if (error) {
        socket.close();
        reject(error);
      } else {
        resolve();
      }
    };
    const onConnect = () => settle();
    const onError = (error: Error) => settle(error);
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });

  let streaming = false;

  return {
    call: (payload) => socket.emitWithAck("echo", payload),
    stream(count, size, onItem) {
      // Items carry no stream id, so a connection runs one stream at a time.
      if (streaming) return Promise.reject(new Error("a stream is already running on this connection"));
      streaming = true;
      return new Promise<void>((resolve, reject) => {
        const onData = (item: BenchPayload) => onItem(item);
        const finish = (error?: Error) => {
          socket.off("item", onData);
          socket.off("end", onEnd);
          socket.off("disconnect", onDisconnect);
          streaming = false;
          if (error) reject(error);
          else resolve();
        };
        const onEnd = () => finish();
        const onDisconnect = (reason: string) => finish(new Error(`disconnected: ${reason}`));
        socket.on("item", onData);
        socket.on("end", onEnd);
        socket.on("disconnect", onDisconnect);
        socket.emit("stream", { count, size }, (error: string | null) => {
          if (error) finish(new Error(error));
        });
      });
    },
    async close() {
      // Rejects the calls still waiting for an ack and, with `forceNew`, closes the connection.
      socket.disconnect();
    },
  };
}

export const systems: BenchSystem[] = [{ name: "socket.io", startServer, connect }];
