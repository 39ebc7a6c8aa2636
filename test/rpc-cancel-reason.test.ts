// What a handler's ctx.signal says when its call ends early: DEADLINE_EXCEEDED when the
// caller's deadline passed, CANCELLED when the caller cancelled.
import assert from "node:assert/strict";
import { after, it } from "node:test";
import type { MusterError } from "../src/errors/muster-error.js";
import type { CallContext } from "../src/rpc/types.js";
import { type Fleet, fleet, until } from "./support/fleet.js";

let f: Fleet | undefined;
after(async () => {
  await f?.close();
});

it("a timed-out call's signal says DEADLINE_EXCEEDED; a cancelled one's CANCELLED", async () => {
  f = await fleet();
  const agent = await f.addAgent("web-1");
  const reasons: string[] = [];
  agent.handle("wait", (_req: unknown, ctx: CallContext) => {
    return new Promise((_resolve, reject) => {
      ctx.signal.addEventListener("abort", () => {
        reasons.push((ctx.signal.reason as MusterError).code);
        reject(ctx.signal.reason);
      });
    });
  });
  await assert.rejects(f.server.callAgent("web-1", "wait", {}, { timeoutMs: 300 }), /DEADLINE_EXCEEDED/);
  await until(() => reasons.length === 1, 5000, "the handler to see its deadline");
  assert.equal(reasons[0], "DEADLINE_EXCEEDED");
  const abort = new AbortController();
  const call = f.server.callAgent("web-1", "wait", {}, { timeoutMs: 10_000, signal: abort.signal });
  setTimeout(() => abort.abort(), 100);
  await assert.rejects(call, /CANCELLED/);
  await until(() => reasons.length === 2, 5000, "the handler to see the cancel");
  assert.equal(reasons[1], "CANCELLED");
});
