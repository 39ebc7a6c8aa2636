/**
 * The contract every system under benchmark implements (muster over each transport, and the
 * peers: raw TCP, raw ws, Socket.IO, gRPC). The scenarios are written once against it, so all
 * systems run the same workload with the same payloads.
 *
 * A payload is a JSON value `{ i, data }`: `i` identifies the request, `data` is an ASCII
 * string of the scenario's size (64 B or 4 KiB). Every reply is checked against what was sent.
 */
export interface BenchPayload {
  i: number;
  data: string;
}

/** The server side of a system, running in its own process. */
export interface BenchServer {
  /** The TCP port clients dial. */
  readonly port: number;
  /**
   * Clients that the server can call now (connected, and where the system needs it, their
   * server → client channel open).
   */
  connected(): number;
  /**
   * Calls `echo` on every connected client with `payload` and resolves with every reply, in
   * any order (one per client). Rejects when the replies are not all in within `timeoutMs`.
   */
  fanout(payload: BenchPayload, timeoutMs: number): Promise<unknown[]>;
  close(): Promise<void>;
}

/**
 * One client connection (an agent), running in the client process. On connecting, it answers
 * the server's `echo` calls with the payload it received, unchanged.
 */
export interface BenchClient {
  /** Calls the server's `echo` with `payload`; resolves with the reply. */
  call(payload: BenchPayload): Promise<unknown>;
  /**
   * Asks the server to stream `count` items `{ i, data }` (i = 0 … count-1, data `size` bytes)
   * to this client, and resolves once the stream has ended, with what arrived. The writer
   * respects back-pressure. `onItem` sees every item, in order of arrival.
   */
  stream(count: number, size: number, onItem: (item: BenchPayload) => void): Promise<void>;
  close(): Promise<void>;
}

export interface BenchServerOptions {
  host: string;
  /** 0 for any free port. */
  port: number;
  /**
   * More addresses to listen on, on the same port (fanout-100k: one address pair has only about
   * 28,000 ephemeral ports). A system that cannot, throws.
   */
  extraHosts?: readonly string[];
}

export interface BenchClientOptions {
  host: string;
  port: number;
  /** 0 … N-1 within the client process: unique per connection (muster uses it for agent names). */
  index: number;
}

/** A system under benchmark. */
export interface BenchSystem {
  /** Shown in the results, e.g. `muster/tcp`, `socket.io`. */
  readonly name: string;
  startServer(options: BenchServerOptions): Promise<BenchServer>;
  /**
   * Opens one client connection. Resolves once it is ready both ways: it can call the server,
   * and the server counts it in `connected()` (or will, as soon as its registration lands).
   */
  connect(options: BenchClientOptions): Promise<BenchClient>;
}
