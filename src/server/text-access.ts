import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import type { Logger } from "../internal/logger.js";
import type { TextEndpointOptions } from "../text/endpoint.js";
import type { Message } from "../text/message.js";
import type {
  TextContext,
  TextGuard,
  TextGuardVerdict,
  TextPeerCertificate,
  TextService,
} from "../text/service.js";
import type { Identity } from "./auth-gate.js";
import type { ServerOptions } from "./options.js";
import { SERVER_TEXT_SERVICE } from "./text-router.js";

/**
 * The parameter a text message carries its credential in. The guard takes it out before the
 * message is logged, routed or handled: it never reaches an agent, a handler or a log line.
 */
export const TEXT_TOKEN_PARAM = "token";

/** The agent method a routed text message is, for an operator token's grants. */
export const TEXT_ROUTE_METHOD = "muster.text";

/** Commands of the server's own that only an admin may send: they stop or restart it. */
export const TEXT_ADMIN_COMMANDS: ReadonlySet<string> = new Set(["STOP", "QUITTING", "RESTART"]);

/** What the guard needs of the server's authentication (its AuthGate): tokens and certificates checked as everywhere else. */
export interface TextCredentials {
  /** No authentication: text messages are taken from this machine only. */
  readonly standalone: boolean;
  /** Verifies a token (failures counted against `remote`); operator and admin tokens only. */
  checkTextToken(token: string, remote: string): Promise<Identity>;
  /** The identity of a trusted operator or admin client certificate; throws otherwise. */
  checkTextCertificate(cert: TextPeerCertificate): Identity;
  /** Whether an identity's grants allow `method` (for an operator: on agents). */
  allows(identity: Identity, method: string): boolean;
}

/** Who may send a message: anyone on this machine (`open`), an operator, or an admin only. */
export type TextNeed = "open" | "operator" | "admin";

/**
 * What a message needs. Anything routed to agents (`web_1/…`, `*\/…`, another server) needs an
 * operator whose grants cover `muster.text`; the server's STOP, QUITTING and RESTART need an
 * admin; its `open` commands (ALIVE, HELP) nobody on this machine; everything else an operator.
 */
export function textNeed(m: Message, open: ReadonlySet<string>): { need: TextNeed; routed: boolean } {
  const routed = m.service !== "" && m.service !== SERVER_TEXT_SERVICE;
  if (routed) return { need: "operator", routed };
  if (TEXT_ADMIN_COMMANDS.has(m.command)) return { need: "admin", routed };
  return { need: open.has(m.command) ? "open" : "operator", routed };
}

/** Who sent a message, however it was established. */
type Sender = Pick<Identity, "role" | "subject" | "methods"> & { via: Identity["via"] | "secret" };

function refuse(m: Message, code: ErrorCode, why: string): TextGuardVerdict {
  return { ok: false, why, reply: m.reply("INVALID", { code, command: m.command, message: why }) };
}

/**
 * The guard of the server's text endpoints (docs/auth.md, "Text endpoints"). The credential is,
 * first found: `token=` (verified by the server's gate), the client certificate of a `tls://`
 * connection, or the secret of a UDP endpoint (which stands for an admin). A standalone server
 * has no credentials: it takes messages from this machine only.
 */
export function createTextGuard(
  credentials: TextCredentials,
  o: { openCommands?: readonly string[] | undefined; logger: Logger },
): TextGuard {
  const open: ReadonlySet<string> = new Set(o.openCommands ?? DEFAULTS.textOpenCommands);
  return async (received, ctx) => {
    let message = received;
    const token = received.get(TEXT_TOKEN_PARAM);
    if (token !== undefined) {
      const params = new Map(received.params);
      params.delete(TEXT_TOKEN_PARAM);
      message = received.with({ params });
    }
    if (credentials.standalone) {
      if (ctx.local === true || ctx.secretVerified === true) return { ok: true, message };
      return refuse(
        message,
        ErrorCode.PERMISSION_DENIED,
        "this server runs --standalone (no authentication) and takes text messages from this machine only",
      );
    }
    const { need, routed } = textNeed(message, open);
    if (need === "open" && ctx.local === true) return { ok: true, message };
    let sender: Sender | undefined;
    try {
      sender = await identify(credentials, token, ctx);
    } catch (err) {
      const e = MusterError.from(err, ErrorCode.UNAUTHENTICATED);
      return refuse(message, e.code, e.rawMessage);
    }
    const command = message.command;
    if (sender === undefined)
      return refuse(
        message,
        ErrorCode.UNAUTHENTICATED,
        `${command} needs a credential: add token=<an ${need === "admin" ? "admin" : "operator or admin"} token> (muster token create --name NAME --role ${need === "admin" ? "admin" : "operator"})`,
      );
    if (need === "admin" && sender.role !== "admin")
      return refuse(
        message,
        ErrorCode.PERMISSION_DENIED,
        `${sender.subject} (${sender.role}) may not ${command} this server: that needs an admin token`,
      );
    if (routed && sender.via !== "secret" && !credentials.allows(sender as Identity, TEXT_ROUTE_METHOD))
      return refuse(
        message,
        ErrorCode.PERMISSION_DENIED,
        `${sender.subject} may not send text messages to agents: its token grants ${sender.methods?.join(",")}, not ${TEXT_ROUTE_METHOD}`,
      );
    if (need === "admin")
      o.logger.info(
        { who: sender.subject, role: sender.role, via: sender.via, command, peer: ctx.peer },
        "text command accepted",
      );
    return { ok: true, message };
  };
}

async function identify(
  credentials: TextCredentials,
  token: string | undefined,
  ctx: TextContext,
): Promise<Sender | undefined> {
  if (token !== undefined) return credentials.checkTextToken(token, ctx.remoteAddress ?? "local");
  if (ctx.certificate !== undefined) return credentials.checkTextCertificate(ctx.certificate);
  if (ctx.secretVerified === true)
    return { role: "admin", subject: `the UDP secret (${ctx.peer})`, via: "secret" };
  return undefined;
}

/** The options of the server's text endpoints, from its own. */
export function serverTextEndpoints(
  o: ServerOptions,
  service: TextService,
  logger: Logger,
): TextEndpointOptions {
  const text = o.text ?? {};
  const out: TextEndpointOptions = { service, logger };
  if (o.tls !== undefined) {
    out.tls = { cert: o.tls.cert, key: o.tls.key };
    if (o.tls.ca !== undefined) out.tls.ca = o.tls.ca;
  }
  if (text.secretCode !== undefined) out.secretCode = text.secretCode;
  if (text.maxConnections !== undefined) out.maxConnections = text.maxConnections;
  if (text.idleTimeoutMs !== undefined) out.idleTimeoutMs = text.idleTimeoutMs;
  if (text.maxQueuedBytes !== undefined) out.maxQueuedBytes = text.maxQueuedBytes;
  if (text.maxEndpointQueuedBytes !== undefined) out.maxEndpointQueuedBytes = text.maxEndpointQueuedBytes;
  return out;
}
