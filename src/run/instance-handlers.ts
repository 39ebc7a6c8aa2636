import type { StreamContext, StreamHandler } from "../rpc/stream.js";
import type { CallContext, Handler } from "../rpc/types.js";
import type { InstanceHost } from "./instance-host.js";
import {
  RUN_METHODS,
  readBootRequest,
  readFilesRequest,
  readPutRequest,
  readStageRef,
  type StartItem,
} from "./protocol.js";

/**
 * The run protocol's methods over an instance host, as an agent (or the operator of `muster
 * run --server`, for its local instance) registers them. Every request is checked before the
 * host sees it.
 */
export function instanceHandlers(host: InstanceHost): {
  handlers: Map<string, Handler>;
  streams: Map<string, StreamHandler>;
} {
  const handlers = new Map<string, Handler>();
  handlers.set(RUN_METHODS.FILES, (req) => host.files(readFilesRequest(req)));
  handlers.set(RUN_METHODS.PUT, (req) => {
    host.put(readPutRequest(req));
    return null;
  });
  handlers.set(RUN_METHODS.BOOT, (req, ctx: CallContext) => host.boot(readBootRequest(req), ctx.signal));
  handlers.set(RUN_METHODS.STOP, (req) => ({ stopped: host.stop(readStageRef(req)) }));
  handlers.set(RUN_METHODS.RELEASE, async (req) => {
    await host.release(readStageRef({ ...(req as object), stage: 0 }).run);
    return null;
  });
  const streams = new Map<string, StreamHandler>();
  streams.set(RUN_METHODS.START, async function* (req: unknown, ctx: StreamContext) {
    const gen = host.start(readStageRef(req), ctx.signal);
    for (;;) {
      const r = await gen.next();
      if (r.done) return r.value;
      yield r.value as StartItem;
    }
  });
  return { handlers, streams };
}
