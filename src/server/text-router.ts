import type { TextCallResult } from "../agent/text.js";
import type { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { ServerFanOut } from "../rpc/fan-out.js";
import type { Target } from "../rpc/target.js";
import type { CallOptions } from "../rpc/types.js";
import { type Message, parseMessage } from "../text/message.js";
import { type TextContext, type TextRouter, textServiceName } from "../text/service.js";

/** The text service name of the server itself: `muster/HELP` asks the server, not an agent. */
export const SERVER_TEXT_SERVICE = "muster";

/** What the router needs of the server. */
export interface TextRouterHost {
  callAgent<T>(name: string, method: string, request?: unknown, options?: CallOptions): Promise<T>;
  call<T>(target: string | Target, method: string, request?: unknown, options?: CallOptions): ServerFanOut<T>;
  /** Every agent reachable, with the server holding it in a cluster. */
  agents(): ReadonlyArray<{ name: string; state: string; server?: string }>;
  /** The servers of the cluster (this one first, state `self`), or this one alone. */
  servers(): ReadonlyArray<{ name: string; state: string }>;
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
 * marked `<server:agent`. In a cluster, a server's name (or `?`, the other servers) limits the
 * message to the agents held there. An agent that is not connected, or a server that is not
 * of the cluster, gets `SERVICE_UNAVAILABLE command=…;service=…;message=…`.
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
  /**
   * The agents (of the servers `on`, or all) whose text name is `service` (more than one: the
   * name is ambiguous).
   */
  const agentsNamed = (service: string, on?: Set<string>): string[] => {
    const agents = host
      .agents()
      .filter((a) => on === undefined || (a.server !== undefined && on.has(a.server)));
    const exact = agents.find((a) => a.name === service);
    if (exact !== undefined) return [exact.name];
    return agents.filter((a) => textServiceName(a.name) === service).map((a) => a.name);
  };
  /**
   * Which servers' agents a message's `server` addresses: undefined for all (no server, `.`,
   * `*`, this server: agents are reached wherever they are), a set of server names for another
   * server of the cluster or `?` (the others), or why it addresses none.
   */
  const serversAddressed = (server: string): Set<string> | undefined | string => {
    if (server === "" || server === "." || server === "*" || server === fromServer) return undefined;
    const live = host.servers().filter((s) => s.state === "ready" || s.state === "draining");
    if (server === "?") {
      if (live.length === 0) return "no remote servers: this server is alone";
      return new Set(live.map((s) => s.name));
    }
    const named = live.find((s) => textServiceName(s.name) === server);
    return named === undefined ? `no server named ${server}` : new Set([named.name]);
  };
  return async (m, ctx) => {
    const server = m.server;
    const on = serversAddressed(server);
    if (typeof on === "string") return unavailable(m, ctx, { server, message: on });
    const service = m.service;
    if (service === "" || service === SERVER_TEXT_SERVICE) return false;
    const line = m.with({ server: "", service: "" }).toString();
    // The agent's text handlers see who sent the line (`ctx.peer`), not the server that routed it.
    const options = {
      timeoutMs: o.timeoutMs,
      origin: { role: "text", name: ctx.peer, server: fromServer },
    };
    if (service === "*" || service === "." || service === "?") {
      const target: Target | "all" =
        on === undefined
          ? "all"
          : {
              names: host
                .agents()
                .filter((a) => a.server !== undefined && on.has(a.server))
                .map((a) => a.name),
            };
      if (target !== "all" && target.names.length === 0) return true;
      const fan = host.call<TextCallResult>(target, "muster.text", { line }, options);
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
    const names = agentsNamed(service, on);
    if (names.length === 0 && on !== undefined)
      return unavailable(m, ctx, { service, message: `no agent ${service} on server ${server}` });
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
