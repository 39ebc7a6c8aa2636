import { MusterError } from "../errors/muster-error.js";
import { truncateForLog } from "../internal/log-safe.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import type { PeerCertificate } from "../transport/types.js";
import {
  createDispatcher,
  type DispatchContext,
  type Dispatcher,
  type DispatchResult,
  type Handler,
  type MatchOptions,
  type ParamDef,
  Priority,
} from "./dispatcher.js";
import { PeerLogLimiter, type PeerLogLimits } from "./log-limiter.js";
import { MESSAGE_LIMITS, Message, parseMessage } from "./message.js";
import { formatTimespec, timespecFromMs } from "./param-types.js";

/** How a text message reached a service. */
export type TextTransport = "tcp" | "tls" | "udp" | "unix" | "muster" | "local";

/** What a handler of a text service is given with each message. */
export interface TextContext extends DispatchContext {
  /** Sends a message back on the connection this one came on (dropped where there is none: UDP). */
  send(message: Message): void;
  readonly transport: TextTransport;
  /** Who sent it, for logs: `127.0.0.1:50112`, a socket path, an agent name. */
  readonly peer: string;
  /** Closes the connection this message came on (nothing for UDP). */
  close(): void;
  /** The peer's IP address (TCP, TLS, UDP). */
  readonly remoteAddress?: string;
  /** The peer is on this machine: a loopback address, or a Unix socket. */
  readonly local?: boolean;
  /** `tls://` endpoints that ask for one: the client certificate the peer presented. */
  readonly certificate?: TextPeerCertificate;
  /** UDP: the endpoint requires a `secret_code` and this datagram carried the right one. */
  readonly secretVerified?: boolean;
}

/** The client certificate of a `tls://` text connection, as transports read it. */
export type TextPeerCertificate = PeerCertificate;

/**
 * Whether a message that came from an endpoint may be handled: `ok` with the message to handle
 * (the guard may take parameters out of it, such as a credential), or a refusal with the reply
 * to send and why (for the log).
 */
export type TextGuardVerdict =
  | { readonly ok: true; readonly message: Message }
  | { readonly ok: false; readonly reply: Message; readonly why: string };

/**
 * Judges every message that comes from an endpoint (not those delivered over a muster session,
 * which the server has judged), before it is logged, routed or dispatched.
 */
export type TextGuard = (message: Message, ctx: TextContext) => TextGuardVerdict | Promise<TextGuardVerdict>;

/**
 * What the built-in commands do beyond replying. Each default only logs, as upstream's:
 * an application (or the muster CLI) sets what stopping, restarting or reopening logs means.
 */
export interface TextHooks {
  /** `STOP` (quitting false: only this service) and `QUITTING` (true: the whole system). */
  stop?(quitting: boolean, message: Message): void | Promise<void>;
  /** `READY`: the hub has registered this service. */
  ready?(message: Message): void | Promise<void>;
  /** `RESTART` (parameter `reason`, such as `upgrade` or `config`). */
  restart?(message: Message): void | Promise<void>;
  /** `LOG_ROTATE`: reopen log files at their paths. */
  logRotate?(): void | Promise<void>;
  /** `SERVICE_UNAVAILABLE`: a message we sent could not be delivered. */
  serviceUnavailable?(message: Message): void | Promise<void>;
}

/**
 * Decides whether a message is for another service; when it takes the message (returns
 * true) the dispatcher does not see it. The server uses this to forward `agent/COMMAND`.
 */
export type TextRouter = (message: Message, ctx: TextContext) => boolean | Promise<boolean>;

export interface TextServiceOptions {
  logger?: Logger;
  hooks?: TextHooks;
  /** Parameter definitions by command, checked before handlers (with an INVALID reply). */
  definitions?: Readonly<Record<string, readonly ParamDef[]>>;
  /** Adds the built-in commands and the `UNKNOWN command=X` catch-all. @default true */
  builtins?: boolean;
  router?: TextRouter;
  /** Judges messages from endpoints first; none: every message is handled. */
  guard?: TextGuard;
  /** How much is logged about peers (refused lines, errors they report). */
  logLimits?: PeerLogLimits;
}

/** The commands every muster text service understands, in `HELP` order. */
export const BUILTIN_COMMANDS = [
  "ALIVE",
  "HELP",
  "INVALID",
  "LOG_ROTATE",
  "QUITTING",
  "READY",
  "RESTART",
  "SERVICE_UNAVAILABLE",
  "STOP",
  "UNKNOWN",
] as const;

const BUILTIN_DEFINITIONS: Readonly<Record<string, readonly ParamDef[]>> = {
  ALIVE: [
    { name: "serial", flags: ["empty"] },
    { name: "timestamp", flags: ["empty"] },
  ],
  READY: [{ name: "my_address", type: "address", flags: ["optional"] }],
};

/**
 * A text service: a dispatcher with muster's built-in commands, fed lines or messages from
 * any number of endpoints (TCP, TLS, UDP, Unix sockets, muster sessions). Handlers added with
 * `on` run before the built-ins, so an application can take over any of them.
 */
export class TextService {
  readonly dispatcher: Dispatcher<TextContext>;
  /** What the built-ins do; may be replaced at any time. */
  hooks: TextHooks;
  readonly #logger: Logger;
  readonly #peerLog: PeerLogLimiter;
  #router: TextRouter | undefined;
  #guard: TextGuard | undefined;
  #received = 0;

  constructor(options: TextServiceOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
    this.hooks = options.hooks ?? {};
    this.#router = options.router;
    this.#guard = options.guard;
    this.#peerLog = new PeerLogLimiter(this.#logger, options.logLimits);
    this.dispatcher = createDispatcher<TextContext>(
      options.definitions === undefined ? {} : { definitions: options.definitions },
    );
    if (options.builtins !== false) this.#addBuiltins();
  }

  /** Messages received so far (lines that parsed). */
  get received(): number {
    return this.#received;
  }

  /** Handles `command` (before the built-ins unless `priority` says otherwise). */
  on(command: string, handler: Handler<TextContext>, options?: MatchOptions): this {
    this.dispatcher.on(command, handler, options);
    return this;
  }

  /** Sets (or removes) the router that takes messages meant for other services. */
  setRouter(router: TextRouter | undefined): void {
    this.#router = router;
  }

  /** Sets (or removes) the guard that judges messages from endpoints. */
  setGuard(guard: TextGuard | undefined): void {
    this.#guard = guard;
  }

  /** Whether a guard judges messages from endpoints. */
  get guarded(): boolean {
    return this.#guard !== undefined;
  }

  /**
   * Logs something a peer caused, at most a few lines a second per peer (the rest counted);
   * string values are cut to 200 characters. For handlers that log what peers send.
   */
  logPeer(
    level: "info" | "warn" | "error",
    ctx: TextContext,
    fields: Record<string, unknown>,
    msg: string,
  ): void {
    this.#peerLog.log(level, ctx.peer, { transport: ctx.transport, peer: ctx.peer, ...fields }, msg);
  }

  /**
   * Parses one line and handles it. A line that does not parse is answered with
   * `INVALID message=…` (and `command=` when the command could be read) and logged; the
   * connection stays usable. Resolves when every handler has finished.
   */
  async receiveLine(line: string, ctx: TextContext): Promise<void> {
    let message: Message;
    try {
      message = parseMessage(line);
    } catch (err) {
      const why = err instanceof MusterError ? err.rawMessage : String(err);
      this.logPeer("warn", ctx, { error: why }, "text message refused");
      // The reason quotes the line; a peer gets back at most a page of it.
      const params: Record<string, string> = { message: truncateForLog(why, 1000) };
      const command = /^\s*(?:<\S+\s+)?(?:\S*\/)?([A-Z][A-Z0-9_]*)(?:\s|$)/.exec(line.slice(0, 256))?.[1];
      if (command !== undefined) params.command = command;
      ctx.send(new Message({ command: "INVALID", params }));
      return;
    }
    await this.receive(message, ctx);
  }

  /**
   * Routes or dispatches one message; a handler that throws is logged, not rethrown. A message
   * from an endpoint goes through the guard first: a refused one is answered and logged
   * (`{ status: "invalid" }`), never routed or dispatched.
   */
  async receive(received: Message, ctx: TextContext): Promise<DispatchResult | undefined> {
    this.#received++;
    let message = received;
    if (this.#guard !== undefined && ctx.transport !== "muster" && ctx.transport !== "local") {
      let verdict: TextGuardVerdict;
      try {
        verdict = await this.#guard(message, ctx);
      } catch (err) {
        const why = `the message could not be judged: ${(err as Error).message}`;
        verdict = {
          ok: false,
          why,
          reply: message.reply("INVALID", { command: message.command, message: why }),
        };
      }
      if (!verdict.ok) {
        this.logPeer("warn", ctx, { command: message.command, why: verdict.why }, "text command refused");
        ctx.send(verdict.reply);
        return { status: "invalid", problems: [verdict.why] };
      }
      message = verdict.message;
    }
    if (this.#logger.isLevelEnabled("trace"))
      this.#logger.trace(
        { transport: ctx.transport, peer: ctx.peer, message: truncateForLog(message.toString(), 1000) },
        "text message received",
      );
    try {
      if (this.#router !== undefined && (await this.#router(message, ctx))) return { status: "handled" };
      return await this.dispatcher.dispatch(message, ctx);
    } catch (err) {
      this.logPeer(
        "error",
        ctx,
        { command: message.command, error: (err as Error).message },
        "text handler failed",
      );
      return undefined;
    }
  }

  #addBuiltins(): void {
    const d = this.dispatcher;
    const log = this.#logger;
    const system = { priority: Priority.SYSTEM };
    for (const [command, params] of Object.entries(BUILTIN_DEFINITIONS))
      if (d.definition(command) === undefined) d.define(command, params);
    d.on(
      "ALIVE",
      (m, ctx) => {
        const params: Record<string, string> = {
          reply_timestamp: formatTimespec(timespecFromMs(Date.now())),
        };
        for (const name of ["serial", "timestamp"]) {
          const v = m.get(name);
          if (v !== undefined) params[name] = v;
        }
        ctx.send(m.reply("ABSOLUTELY", params));
      },
      system,
    );
    d.on("HELP", (m, ctx) => ctx.send(m.reply("COMMANDS", { list: d.commands().join(",") })), system);
    d.on(
      "INVALID",
      (m, ctx) =>
        this.logPeer(
          "error",
          ctx,
          { command: m.get("command"), message: m.get("message") },
          "a peer replied INVALID to a message we sent",
        ),
      system,
    );
    d.on(
      "UNKNOWN",
      (m, ctx) =>
        this.logPeer(
          "error",
          ctx,
          { command: m.get("command") },
          "a peer did not understand a message we sent",
        ),
      system,
    );
    d.on(
      "LOG_ROTATE",
      async (_m, ctx) => {
        const hook = this.hooks.logRotate;
        if (hook === undefined) {
          this.logPeer("warn", ctx, {}, "LOG_ROTATE received, but no log file is open");
          return;
        }
        this.logPeer("info", ctx, {}, "LOG_ROTATE received: reopening log files");
        await hook();
        log.info("log files reopened");
      },
      system,
    );
    const stop = (quitting: boolean) => async (m: Message, ctx: TextContext) => {
      const hook = this.hooks.stop;
      if (hook === undefined) {
        this.logPeer("warn", ctx, { command: m.command }, "stop asked, but this service has no stop hook");
        return;
      }
      this.logPeer("info", ctx, { command: m.command }, quitting ? "the system is quitting" : "stop asked");
      await hook(quitting, m);
    };
    d.on("STOP", stop(false), system);
    d.on("QUITTING", stop(true), system);
    const simple = (command: string, hook: keyof TextHooks, what: string) =>
      d.on(
        command,
        async (m, ctx) => {
          const fn = this.hooks[hook] as ((m: Message) => void | Promise<void>) | undefined;
          if (fn === undefined) {
            this.logPeer(
              "warn",
              ctx,
              { command, reason: m.get("reason") },
              `${what}, but nothing handles it`,
            );
            return;
          }
          await fn(m);
        },
        system,
      );
    simple("READY", "ready", "READY received");
    simple("RESTART", "restart", "restart asked");
    d.on(
      "SERVICE_UNAVAILABLE",
      async (m, ctx) => {
        if (log.isLevelEnabled("debug"))
          log.debug(
            {
              peer: ctx.peer,
              command: truncateForLog(m.get("command") ?? ""),
              service: truncateForLog(m.get("service") ?? ""),
            },
            "service unavailable",
          );
        await this.hooks.serviceUnavailable?.(m);
      },
      system,
    );
    d.catchAll((m, ctx) => {
      if (log.isLevelEnabled("debug"))
        log.debug({ peer: ctx.peer, command: truncateForLog(m.command) }, "text command not understood");
      ctx.send(m.reply("UNKNOWN", { command: m.command }));
    });
  }
}

/** The largest line a text endpoint accepts by default (1 MiB). */
export const DEFAULT_MAX_LINE_BYTES = MESSAGE_LIMITS.maxLineBytes;

/**
 * The text service name of a muster agent: agent names may hold `.`, `-`, `:` and `@`, which
 * text names may not, so each such character becomes `_`, and a leading digit gets a `_`
 * before it (`web-1` → `web_1`, `10.0.0.7` → `_10_0_0_7`).
 */
export function textServiceName(agentName: string): string {
  const name = agentName.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[0-9]/.test(name) ? `_${name}` : name;
}
