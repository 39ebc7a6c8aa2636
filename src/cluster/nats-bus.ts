/**
 * The `ClusterBus` over a real nats-server: core NATS for subjects and request/reply, JetStream
 * key-value for buckets. Only what is NATS-specific lives here (connection, error mapping, the
 * KV calls, one watch feed); checks, fail-fast while down, deadlines and watch re-creation are
 * in `BusCore` and `ResumableWatch`, shared with the in-memory bus.
 *
 * Targets nats-server 2.9 (what Debian ships): one key or wildcard per watch, no per-key TTL,
 * bucket max age expires entries without telling watchers.
 *
 * Facts of nats.js 3.4 this relies on (read in its sources):
 * - a KV watch is an ordered push consumer that nats.js re-creates only after two missed idle
 *   heartbeats of 30 s; a consumer lost with a restarted server is not noticed for a minute. So
 *   every watch re-opens its feed itself on "reconnect", from the last revision it saw.
 * - `isUpdate` of a watch entry is computed from the consumer's pending count, and is already
 *   true on the last initial value; with an empty bucket no entry ever says "initial values
 *   done". Readiness is instead the stream's last sequence, read once the watch exists.
 * - KV `create`/`update`/`delete` with a revision fail with JetStream error 10071 (wrong last
 *   sequence) on a conflict; that is mapped to `undefined` / `false`, as the interface says.
 */
import { type JetStreamApiError, jetstream } from "@nats-io/jetstream";
import { type KV, Kvm, type KvEntry as NatsKvEntry } from "@nats-io/kv";
import { connect, errors, type Msg, type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock } from "../internal/clock.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import type { ClusterBus, KvEntry } from "./bus.js";
import { type BucketDriver, BusCore, type BusDriver, type RawMessage } from "./bus-core.js";
import { CLUSTER_DEFAULTS } from "./defaults.js";
import type { Feed, FeedSink } from "./resumable-watch.js";

export interface NatsBusOptions {
  /** Client name shown by the server's monitoring (`connz`). */
  name?: string;
  /** @default silentLogger */
  logger?: Logger;
  /** Timers of request deadlines and watch retries. @default systemClock */
  clock?: Clock;
  /** Delay between reconnect attempts to one server. @default 1000 */
  reconnectTimeWaitMs?: number;
  /** Client PING interval; two unanswered PINGs drop the link. @default 10000 */
  pingIntervalMs?: number;
  /** How long the first connection may take. @default 5000 */
  connectTimeoutMs?: number;
  /** How long a key-value operation waits for JetStream. @default 5000 */
  jetStreamTimeoutMs?: number;
}

const WRONG_LAST_SEQUENCE = new Set([10071, 10164]);

/**
 * Connects to nats-server at `servers` (tried in order; reconnects forever after the first
 * success). Rejects with UNAVAILABLE when no server can be reached at first.
 */
export async function connectNatsBus(
  servers: string | string[],
  options: NatsBusOptions = {},
): Promise<ClusterBus> {
  const log = options.logger ?? silentLogger;
  const nc = await connect({
    servers,
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectTimeWaitMs ?? CLUSTER_DEFAULTS.natsReconnectTimeWaitMs,
    pingInterval: options.pingIntervalMs ?? CLUSTER_DEFAULTS.natsPingIntervalMs,
    maxPingOut: 2,
    timeout: options.connectTimeoutMs ?? CLUSTER_DEFAULTS.natsConnectTimeoutMs,
  }).catch((err: unknown) => {
    throw new MusterError(
      ErrorCode.UNAVAILABLE,
      `cannot connect to NATS at ${String(servers)}: ${message(err)}`,
      {
        cause: err,
      },
    );
  });
  const jsTimeoutMs = options.jetStreamTimeoutMs ?? CLUSTER_DEFAULTS.natsJetStreamTimeoutMs;
  const kvm = new Kvm(jetstream(nc, { timeout: jsTimeoutMs }));
  let linkUp = true;

  const driver: BusDriver = {
    get maxPayload() {
      return nc.info?.max_payload ?? CLUSTER_DEFAULTS.memoryMaxPayload;
    },
    publish: (subject, data, headers) => {
      try {
        nc.publish(subject, data, headers ? { headers: toNats(headers) } : {});
      } catch (err) {
        throw mapError(err, subject);
      }
    },
    request: async (subject, data, headers, timeoutMs) => {
      try {
        const m = await nc.request(subject, data, {
          timeout: timeoutMs,
          ...(headers && { headers: toNats(headers) }),
        });
        return toRaw(m);
      } catch (err) {
        throw mapError(err, subject);
      }
    },
    subscribe: (subject, handler) => {
      const sub = nc.subscribe(subject, {
        callback: (err, m) => {
          if (err) log.warn({ err, subject }, "NATS subscription error");
          else handler(toRaw(m));
        },
      });
      return { unsubscribe: () => sub.unsubscribe() };
    },
    bucket: async (name, maxAgeMs) => {
      const kv = await kvm
        .create(name, { history: 1, ...(maxAgeMs > 0 && { ttl: maxAgeMs }) })
        .catch((err: unknown) => {
          throw mapError(err, `bucket ${name}`);
        });
      return bucketDriver(kv, name);
    },
    close: async () => {
      if (nc.isClosed()) return;
      // Drain sends what is buffered (a last "bye", say), but never waits on a silent server.
      if (linkUp) await Promise.race([nc.drain().catch(() => undefined), delay(jsTimeoutMs)]);
      if (!nc.isClosed()) await nc.close();
    },
  };

  const core = new BusCore(driver, { logger: log, clock: options.clock });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        linkUp = false;
        core.setStatus("disconnected");
      } else if (s.type === "reconnect") {
        linkUp = true;
        core.setStatus("connected");
      } else if (s.type === "error") log.warn({ err: s.error }, "NATS server error");
      else if (s.type === "ldm") log.warn({ server: s.server }, "NATS server entering lame duck mode");
    }
  })();
  void nc.closed().then(() => core.setStatus("closed"));
  return core;
}

function bucketDriver(kv: KV, name: string): BucketDriver {
  const cas = async <T>(what: string, run: () => Promise<T>, conflict: T): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      if (WRONG_LAST_SEQUENCE.has((err as JetStreamApiError).code)) return conflict;
      throw mapError(err, `${what} in bucket ${name}`);
    }
  };
  return {
    get: (key) => cas(`get ${key}`, async () => toEntry(await kv.get(key)), undefined),
    create: (key, value) => cas<number | undefined>(`create ${key}`, () => kv.create(key, value), undefined),
    update: (key, value, rev) =>
      cas<number | undefined>(`update ${key}`, () => kv.update(key, value, rev), undefined),
    put: (key, value) => cas(`put ${key}`, () => kv.put(key, value), 0),
    delete: (key, rev) =>
      cas(
        `delete ${key}`,
        async () => {
          await kv.delete(key, rev === undefined ? undefined : { previousSeq: rev });
          return true;
        },
        false,
      ),
    keys: () =>
      cas("list keys", async () => {
        const out: string[] = [];
        for await (const k of await kv.keys()) out.push(k);
        return out;
      }, []),
    open: (from, sink) => openFeed(kv, from, sink),
  };
}

/**
 * One KV watch over the whole bucket. Ready once the entry at the stream's last sequence (read
 * after the consumer exists, so that it is delivered by it) has gone through.
 */
async function openFeed(kv: KV, from: number, sink: FeedSink): Promise<Feed> {
  const iter = await kv.watch(from > 0 ? { resumeFromRevision: from } : {});
  let stopped = false;
  let seen = 0;
  let readyAt: number | undefined;
  const checkReady = (): void => {
    if (readyAt !== undefined && seen >= readyAt) {
      readyAt = undefined;
      sink.ready();
    }
  };
  const end = (err?: unknown): void => {
    if (stopped) return;
    stopped = true;
    iter.stop();
    sink.ended(err);
  };
  void (async () => {
    try {
      for await (const e of iter) {
        if (stopped) break;
        seen = e.revision;
        sink.entry(toEntry(e, true)!);
        checkReady();
      }
      end();
    } catch (err) {
      end(err);
    }
  })();
  kv.status().then((st) => {
    const { messages, last_seq } = st.streamInfo.state;
    readyAt = messages === 0 || last_seq < from ? 0 : last_seq;
    checkReady();
  }, end);
  return {
    stop: () => {
      stopped = true;
      iter.stop();
    },
  };
}

function toEntry(e: NatsKvEntry | null, deletions = false): KvEntry | undefined {
  if (e === null || (!deletions && e.operation !== "PUT")) return undefined;
  return {
    key: e.key,
    value: e.value,
    revision: e.revision,
    operation: e.operation,
    created: e.created.getTime(),
  };
}

function toNats(headers: Record<string, string>): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(headers)) h.set(k, v);
  return h;
}

function toRaw(m: Msg): RawMessage {
  const headers = new Map<string, string>();
  if (m.headers) for (const k of m.headers.keys()) headers.set(k, m.headers.get(k));
  const raw: RawMessage = { subject: m.subject, data: m.data, headers };
  if (m.reply) {
    raw.reply = (data, h) => {
      try {
        return m.respond(data, h ? { headers: toNats(h) } : undefined);
      } catch {
        return false; // the connection closed meanwhile
      }
    };
  }
  return raw;
}

/** nats.js errors as MusterError; `what` names the subject or operation. */
function mapError(err: unknown, what: string): MusterError {
  if (err instanceof MusterError) return err;
  if (
    err instanceof errors.NoRespondersError ||
    (err instanceof errors.RequestError && err.isNoResponders())
  ) {
    return new MusterError(ErrorCode.UNAVAILABLE, `no responders on ${what}`, { cause: err });
  }
  if (err instanceof errors.TimeoutError) {
    return new MusterError(ErrorCode.DEADLINE_EXCEEDED, `no answer in time: ${what}`, { cause: err });
  }
  if (err instanceof errors.ClosedConnectionError) {
    return new MusterError(ErrorCode.CLOSED, `${what}: the NATS connection is closed`, { cause: err });
  }
  if (err instanceof errors.InvalidArgumentError && /max_payload/.test(message(err))) {
    return new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `${what}: ${message(err)}`, { cause: err });
  }
  return new MusterError(ErrorCode.UNAVAILABLE, `${what}: ${message(err)}`, { cause: err });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
