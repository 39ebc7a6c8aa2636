/**
 * gRPC (@grpc/grpc-js) as a benchmark peer, with the service in bench.proto loaded at runtime.
 * Client → server calls are the unary `Echo`; a stream is the server-streaming `Stream`. gRPC has
 * no server → client calls, so each client opens a bidirectional `Connect` stream on connect: the
 * server writes `{ id, payload }` envelopes on it and the client writes them back unchanged.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientUnaryCall,
  credentials,
  loadPackageDefinition,
  type requestCallback,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceClientConstructor,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
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

interface Envelope {
  id: number;
  payload: BenchPayload | null;
}

interface BenchStub {
  Echo(payload: BenchPayload, callback: requestCallback<BenchPayload>): ClientUnaryCall;
  Stream(request: StreamRequest): ClientReadableStream<BenchPayload>;
  Connect(): ClientDuplexStream<Envelope, Envelope>;
  close(): void;
}

type ConnectCall = ServerDuplexStream<Envelope, Envelope>;

/** A fan-out in flight: takes each stream's reply, and settles once all are in. */
interface Round {
  reply(from: ConnectCall, payload: unknown): void;
  fail(error: Error): void;
}

/** Next to the module when run from source; compiled modules find it in the source tree. */
const protoPath = [
  new URL("bench.proto", import.meta.url),
  new URL("../../../bench/systems/bench.proto", import.meta.url),
]
  .map((url) => fileURLToPath(url))
  .find((path) => existsSync(path));
if (!protoPath) throw new Error("bench.proto not found");

// `defaults` so that zero values (i = 0, an empty string) come back as such rather than missing.
const definition = loadSync(protoPath, { keepCase: true, defaults: true });
const Bench = (loadPackageDefinition(definition) as { bench: { Bench: ServiceClientConstructor } }).bench
  .Bench;

/** `host:port`, with IPv6 hosts in brackets. */
function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

async function writeStream(call: ServerWritableStream<StreamRequest, BenchPayload>): Promise<void> {
  const { count, size } = call.request;
  const data = "x".repeat(size);
  for (let i = 0; i < count && !call.cancelled; i++) {
    if (!call.write({ i, data })) {
      await new Promise<void>((resolve) => {
        const done = () => {
          call.off("drain", done);
          call.off("close", done);
          resolve();
        };
        call.on("drain", done);
        call.on("close", done);
      });
    }
  }
  if (!call.cancelled) call.end();
}

async function startServer({ host, port, extraHosts = [] }: BenchServerOptions): Promise<BenchServer> {
  if (extraHosts.length > 0) throw new Error("grpc: one listening address only in this benchmark");
  const server = new Server();
  /** Open Connect streams: the clients the server can call. */
  const connections = new Set<ConnectCall>();
  /** Fan-outs in flight by envelope id. */
  const rounds = new Map<number, Round>();
  let nextId = 1;

  server.addService(Bench.service, {
    Echo: (call: ServerUnaryCall<BenchPayload, BenchPayload>, callback: sendUnaryData<BenchPayload>) =>
      callback(null, call.request),
    Stream: (call: ServerWritableStream<StreamRequest, BenchPayload>) => {
      writeStream(call).catch((error: Error) => call.destroy(error));
    },
    Connect: (call: ConnectCall) => {
      connections.add(call);
      call.on("data", (envelope: Envelope) => rounds.get(envelope.id)?.reply(call, envelope.payload));
      call.on("end", () => call.end());
      call.on("close", () => connections.delete(call));
      // Id 0 tells the client it is registered.
      call.write({ id: 0, payload: null });
    },
  });

  const boundPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(hostPort(host, port), ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );

  return {
    port: boundPort,
    connected: () => connections.size,
    fanout(payload, timeoutMs) {
      const id = nextId;
      nextId = (nextId % 0xffffffff) + 1;
      return new Promise<unknown[]>((resolve, reject) => {
        const waiting = new Set(connections);
        const replies: unknown[] = [];
        const finish = (error?: Error) => {
          clearTimeout(timer);
          rounds.delete(id);
          if (error) reject(error);
          else resolve(replies);
        };
        const timer = setTimeout(
          () => finish(new Error(`fanout: ${waiting.size} replies missing after ${timeoutMs} ms`)),
          timeoutMs,
        );
        rounds.set(id, {
          reply(from, reply) {
            if (!waiting.delete(from)) return;
            replies.push(reply);
            if (waiting.size === 0) finish();
          },
          fail: finish,
        });
        if (waiting.size === 0) finish();
        for (const call of waiting) call.write({ id, payload });
      });
    },
    async close() {
      for (const round of rounds.values()) round.fail(new Error("server closed"));
      server.forceShutdown();
    },
  };
}

async function connect({ host, port }: BenchClientOptions): Promise<BenchClient> {
  // A channel option of its own gives every client its own subchannel pool, hence its own HTTP/2
  // connection; by default grpc-js shares one connection between channels to the same address.
  const client = new Bench(hostPort(host, port), credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  }) as unknown as BenchStub;
  /** Calls in flight, cancelled (so rejected) by `close()`. */
  const calls = new Set<{ cancel(): void }>();

  const connection = client.Connect();
  try {
    await new Promise<void>((resolve, reject) => {
      connection.on("data", (envelope: Envelope) => {
        if (envelope.id === 0) resolve();
        else connection.write(envelope);
      });
      // Also keeps a later error (the server going away, `close()`) from being unhandled.
      connection.on("error", reject);
      connection.on("end", () => reject(new Error("Connect stream ended")));
    });
  } catch (error) {
    client.close();
    throw error;
  }

  return {
    call(payload) {
      return new Promise((resolve, reject) => {
        const call = client.Echo(payload, (error, reply) => {
          calls.delete(call);
          if (error) reject(error);
          else resolve(reply);
        });
        calls.add(call);
      });
    },
    stream(count, size, onItem) {
      return new Promise<void>((resolve, reject) => {
        const call = client.Stream({ count, size });
        calls.add(call);
        call.on("data", (item: BenchPayload) => onItem(item));
        call.on("error", (error) => {
          calls.delete(call);
          reject(error);
        });
        call.on("end", () => {
          calls.delete(call);
          resolve();
        });
      });
    },
    async close() {
      for (const call of calls) call.cancel();
      connection.cancel();
      client.close();
    },
  };
}

export const systems: BenchSystem[] = [{ name: "grpc", startServer, connect }];
