import type { TextGuard } from "./service.js";

/**
 * The guard of a text service that cannot check credentials (an agent holds no key): it takes
 * messages from this machine only — loopback addresses and Unix sockets — and UDP datagrams
 * that carried the endpoint's `secret_code`. Anything else is answered
 * `INVALID code=PERMISSION_DENIED` and handled no further. Messages delivered over a muster
 * session (the server's routing) do not pass through guards: the server judged them.
 */
export function localOnlyGuard(): TextGuard {
  const why =
    "this service takes text messages from its own machine only (loopback, Unix socket) or UDP with its secret: send them through the server";
  return (message, ctx) =>
    ctx.local === true || ctx.secretVerified === true
      ? { ok: true, message }
      : {
          ok: false,
          why,
          reply: message.reply("INVALID", {
            code: "PERMISSION_DENIED",
            command: message.command,
            message: why,
          }),
        };
}
