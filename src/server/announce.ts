import type { Logger } from "../internal/logger.js";
import { readWelcomeServers } from "../wire/codec.js";
import type { WelcomeServers } from "../wire/frame.js";

/** The last reason each hook failed for: said once, not on every WELCOME of a storm. */
const lastFailure = new WeakMap<() => unknown, string>();

/**
 * The `servers` field of a WELCOME, to spread into its body: what `announce` (the server's
 * `ServerOptions.announce`) returns, checked as dialers check it, so that a server never sends
 * a list its peers would drop. No hook, or `undefined` from it: no field. A hook that throws or
 * returns a list beyond the limits costs the WELCOME its `servers`, never the session; the
 * warning is written once per hook and reason, until the hook succeeds again.
 */
export function welcomeServers(
  announce: (() => WelcomeServers | undefined) | undefined,
  logger: Logger,
): { servers?: WelcomeServers } {
  if (announce === undefined) return {};
  let problem: string;
  try {
    const list = announce();
    if (list === undefined) return {};
    const read = readWelcomeServers(list);
    if ("servers" in read) {
      lastFailure.delete(announce);
      return { servers: read.servers };
    }
    problem = `the announced list is ignored: ${read.error}`;
  } catch (err) {
    problem = `announce() threw: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (lastFailure.get(announce) !== problem) {
    lastFailure.set(announce, problem);
    logger.warn({ reason: problem }, "WELCOME sent without servers");
  }
  return {};
}
