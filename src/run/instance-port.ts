import type { RpcEndpoint } from "../rpc/endpoint.js";
import type { RunSummary } from "./engine/types.js";
import type { InstanceHost } from "./instance-host.js";
import {
  type BootReply,
  type BootRequest,
  type FilesReply,
  type FilesRequest,
  type PutRequest,
  RUN_METHODS,
  type StageRef,
  type StartItem,
} from "./protocol.js";

/** A started stage as the coordinator reads it: its items, then (once they end) its summary. */
export interface StartedStage extends AsyncIterable<StartItem> {
  /** The instance's summary, once the iteration has ended without an error. */
  readonly result: RunSummary | undefined;
}

/**
 * One instance as the coordinator reaches it: an agent through the server, or the local
 * instance in-process (or through the operator's link). The coordinator's logic is written once
 * over this.
 */
export interface InstancePort {
  readonly name: string;
  files(req: FilesRequest, o: { signal: AbortSignal }): Promise<FilesReply>;
  put(req: PutRequest, o: { signal: AbortSignal }): Promise<void>;
  boot(req: BootRequest, o: { timeoutMs: number; signal: AbortSignal }): Promise<BootReply>;
  /** Errors (the instance lost, the stage failed there) come through the iteration. */
  start(ref: StageRef, o: { signal: AbortSignal }): StartedStage;
  stop(ref: StageRef): Promise<void>;
  release(run: string): Promise<void>;
}

/** The local instance, in this process. */
export function localPort(host: InstanceHost, name = "local"): InstancePort {
  return {
    name,
    files: async (req) => host.files(req),
    put: async (req) => host.put(req),
    boot: (req, o) => host.boot(req, o.signal),
    start(ref, o) {
      const gen = host.start(ref, o.signal);
      let result: RunSummary | undefined;
      return {
        get result() {
          return result;
        },
        async *[Symbol.asyncIterator]() {
          for (;;) {
            const r = await gen.next();
            if (r.done) {
              result = r.value;
              return;
            }
            yield r.value;
          }
        },
      };
    },
    stop: async (ref) => {
      host.stop(ref);
    },
    release: (run) => host.release(run),
  };
}

/** What an RPC port needs: a call and a stream to one peer (an agent, or an operator's link). */
export interface PeerCaller {
  call(method: string, request: unknown, o: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown>;
  openStream(
    name: string,
    request: unknown,
    o: { signal: AbortSignal },
  ): AsyncIterable<unknown> & { readonly result: unknown };
}

/** A peer reached through its RPC endpoint (an agent's or operator's session). */
export function endpointCaller(rpc: RpcEndpoint): PeerCaller {
  return {
    call: (method, request, o) => rpc.call(method, request, o),
    openStream: (name, request, o) => rpc.openStream(name, request, o),
  };
}

/** Calls of the protocol's short steps (files, put, stop, release): long enough for a slow link. */
const STEP_TIMEOUT_MS = 30_000;

/** An instance reached over muster calls (the agent's built-ins). */
export function rpcPort(name: string, peer: PeerCaller): InstancePort {
  return {
    name,
    files: async (req, o) =>
      (await peer.call(RUN_METHODS.FILES, req, {
        timeoutMs: STEP_TIMEOUT_MS,
        signal: o.signal,
      })) as FilesReply,
    put: async (req, o) => {
      await peer.call(RUN_METHODS.PUT, req, { timeoutMs: STEP_TIMEOUT_MS, signal: o.signal });
    },
    boot: async (req, o) => (await peer.call(RUN_METHODS.BOOT, req, o)) as BootReply,
    start(ref, o) {
      const s = peer.openStream(RUN_METHODS.START, ref, { signal: o.signal });
      return {
        get result() {
          return s.result as RunSummary | undefined;
        },
        [Symbol.asyncIterator]: () => (s as AsyncIterable<StartItem>)[Symbol.asyncIterator](),
      };
    },
    stop: async (ref) => {
      await peer.call(RUN_METHODS.STOP, ref, { timeoutMs: STEP_TIMEOUT_MS });
    },
    release: async (run) => {
      await peer.call(RUN_METHODS.RELEASE, { run }, { timeoutMs: STEP_TIMEOUT_MS });
    },
  };
}
