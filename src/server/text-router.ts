import type { TextCallResult } from "../agent/text.js";
import type { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { FanOut } from "../rpc/fan-out.js";
import type { CallOptions } from "../rpc/types.js";
import { type Message, parseMessage } from "../text/message.js";
import { type TextContext, type TextRouter, textServiceName } from "../text/service.js";

/** The text service name of the server itself: `muster/HELP` asks the server, not an agent. */
export const SERVER_TEXT_SERVICE = "muster";

/** What the router needs of the server. */
export interface TextRouterHost {
  callAgent<T>(name: string, method: string, request?: unknown, options?: CallOptions): Promise<T>;
  call<T>(target: string, method: string, request?: unknown, options?: CallOptions): FanOut<T>;
  agents(): ReadonlyArray<{ name: string; state: string }>;
}

export interface TextRouterOptions {
  /** The server's name (`--name`); messages for another server get SERVICE_UNAVAILABLE. */
  serverName: string;
  /** Deadline of each delivery to an agent. */
  timeoutMs: number;
  logger: Logger;
}

/**
 * Routes text messages that reach the server: no service, `.`-server-only forms and
 * `muster/…` go to the server's own handlers; `agent/COMMAND` is delivered to that agent over
 * its muster session (as a `muster.text` call) and `*`, `.` or `?` as the service to every
 * connected agent. The agents' replies come back on the connection the message came on,
 * marked `<server:agent`. An agent that is not connected, or a server other than this one,
 * gets `SERVICE_UNAVAILABLE command=…;service=…;message=…`.
 */
export function createTextRouter(host: TextRouterHost, o: TextRouterOptions): TextRouter {
  // The server name as a text name (`my-host` → `my_host`): messages name it so, and it marks
  // the replies relayed from agents.
  const fromServer = textServiceName(o.serverName);
  /** Answers SERVICE_UNAVAILABLE; true, so that a router can `return unavailable(…)`. */
  const unavailable = (m: Message, ctx: TextContext, params: Record<string, string>): true => {
    o.logger.debug({ peer: ctx.peer, command: m.command, ...params }, "text message not delivered");
    ctx.send(m.reply("SERVICE_UNAVAILABLE", { command: m.command, ...params }));
    return true;
  };
  const relay = (agent: string, result: TextCallResult | undefined, ctx: TextContext): void => {
    for (const line of Array.isArray(result?.replies) ? result.replies : []) {
      let reply: Message;
      try {
        reply = parseMessage(String(line));
      } catch (err) {
        o.logger.warn(
          { agent, error: (err as MusterError).message },
          "an agent sent back a malformed text line",
        );
        continue;
      }
      if (reply.sentFromService === "")
        reply = reply.with({ sentFromServer: fromServer, sentFromService: textServiceName(agent) });
      ctx.send(reply);
    }
  };
  /** The connected agents whose text name is `service` (more than one: the name is ambiguous). */
  const agentsNamed = (service: string): string[] => {
    const exact = host.agents().find((a) => a.name === service);
    if (exact !== undefined) return [exact.name];
    return host
      .agents()
      .filter((a) => textServiceName(a.name) === service)
      .map((a) => a.name);
  };
  return async (m, ctx) => {
    const server = m.server;
    if (server === "?")
      return unavailable(m, ctx, { server, message: "no remote servers: this server is alone" });
    if (server !== "" && server !== "." && server !== "*" && server !== fromServer)
      return unavailable(m, ctx, { server, message: `no server named ${server}` });
    const service = m.service;
    if (service === "" || service === SERVER_TEXT_SERVICE) return false;
    const line = m.with({ server: "", service: "" }).toString();
    const options = { timeoutMs: o.timeoutMs };
    if (service === "*" || service === "." || service === "?") {
      const fan = host.call<TextCallResult>("all", "muster.text", { line }, options);
      for await (const outcome of fan) {
        if (outcome.status === "ok") relay(outcome.agent, outcome.value, ctx);
        else
          unavailable(m, ctx, {
            service: textServiceName(outcome.agent),
            message: outcome.error?.message ?? outcome.status,
          });
      }
      return true;
    }
    const names = agentsNamed(service);
    if (names.length > 1)
      return unavailable(m, ctx, {
        service,
        message: `ambiguous: agents ${names.join(", ")} share this text name`,
      });
    const agent = names[0] ?? service;
    try {
      relay(agent, await host.callAgent<TextCallResult>(agent, "muster.text", { line }, options), ctx);
    } catch (err) {
      const e = err as MusterError;
      unavailable(m, ctx, { service, message: e.rawMessage ?? e.message });
    }
    return true;
  };
}
