// Runs coordinated by a server over its fleet (in-process network): the operator submits, the
// agents boot and run, the operator's own instance takes part, stats come back merged; files
// cross once; who may submit; a lost agent; the server's list of runs.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { connectOperator, type MusterOperator } from "../src/operator/create-operator.js";
import { fileRefsOf, newRunId } from "../src/run/coordinator.js";
import type { LoadedStage } from "../src/run/engine/types.js";
import type { RunEvent } from "../src/run/events.js";
import type { RunContext } from "../src/run/generic/handler-stage.js";
import { type SubmitRequest, submittedStage } from "../src/run/submit.js";
import { type Fleet, fleet, until } from "./support/fleet.js";

function stage(o: {
  instances: number;
  iterations?: number;
  runtimeMs?: number;
  disableLocal?: boolean;
  kind?: "handler" | "exec";
}): LoadedStage {
  const kind = o.kind ?? "handler";
  return {
    name: "st",
    file: "st.yaml",
    instances: o.instances,
    disableLocal: o.disableLocal ?? false,
    ...(o.runtimeMs !== undefined && { runtimeMs: o.runtimeMs }),
    stats: { disable: false, freqMs: 100, report: {} },
    kind,
    files: new Map([["lib/data.txt", new TextEncoder().encode("x".repeat(300_000))]]),
    spec:
      kind === "handler"
        ? {
            kind,
            name: "st",
            method: "step",
            clients: 2,
            ...(o.iterations !== undefined && { iterations: o.iterations }),
            ...(o.runtimeMs !== undefined && { runtimeMs: o.runtimeMs }),
          }
        : { kind, name: "st", command: ["true"] },
  };
}

async function submit(op: MusterOperator, stages: LoadedStage[], extra: Partial<SubmitRequest> = {}) {
  const files = stages.flatMap((s) => fileRefsOf(s).map((r) => ({ ...r, bytes: s.files.get(r.path)! })));
  const request: SubmitRequest = {
    run: newRunId(),
    select: "role=bench",
    local: stages.some((s) => !s.disableLocal),
    bootTimeoutMs: 5000,
    onLoss: "abort",
    stages: stages.map((s) => submittedStage(s, fileRefsOf(s))),
    ...extra,
  };
  const events: RunEvent[] = [];
  const stream = await op.submitRun(request, files);
  for await (const e of stream) events.push(e);
  return { events, result: stream.result as { ok: boolean }, id: request.run };
}

const writes = (events: RunEvent[]): number =>
  events.reduce((n, e) => n + (e.t === "interval" ? (e.merged.combined.total.n[3] ?? 0) : 0), 0);

describe("runs coordinated by a server", () => {
  let f: Fleet;
  const calls = new Map<string, number>();
  const step = async (_req: unknown, ctx: RunContext) => {
    calls.set(ctx.instance, (calls.get(ctx.instance) ?? 0) + 1);
    await new Promise((r) => setImmediate(r));
  };
  const ops: MusterOperator[] = [];
  after(async () => {
    for (const op of ops) await op.close();
    await f?.close();
  });

  it("three agents and the operator's own instance: every call merged once, the file sent once per agent", async () => {
    f = await fleet();
    for (const name of ["a1", "a2", "a3"])
      await f.addAgent(name, { labels: { role: "bench" }, runs: { kinds: ["handler"], handlers: { step } } });
    await f.addAgent("other", { labels: { role: "web" }, runs: { kinds: ["handler"], handlers: { step } } });
    const op = await connectOperator({
      server: "memory://server",
      memory: f.net,
      runs: { kinds: ["handler"], handlers: { step } },
    });
    ops.push(op);
    const { events, result } = await submit(op, [stage({ instances: 4, iterations: 25 })]);
    assert.equal(result.ok, true, JSON.stringify(events.filter((e) => e.t === "stage-done")));
    const started = events.find((e) => e.t === "started");
    assert.deepEqual(started?.t === "started" && started.instances.sort(), ["a1", "a2", "a3", "local"]);
    assert.equal(writes(events), 4 * 2 * 25, "4 instances × 2 clients × 25 iterations");
    assert.equal(calls.get("other"), undefined, "an agent not selected took no part");
    // The same stage again: no file crosses a second time (agents keep them by sha256).
    const again = await submit(op, [stage({ instances: 4, iterations: 1 })]);
    assert.equal(again.result.ok, true);
    const runs = await op.runs();
    assert.equal(runs.length, 2);
    assert.ok(runs.every((r) => r.state === "done"));
  });

  it("an agent that lacks the method fails its boot; its slot goes to another agent", async () => {
    const op = ops[0]!;
    // Tried first (agents are taken in name order), and without the method.
    await f.addAgent("a0", { labels: { role: "bench" }, runs: { kinds: ["handler"], handlers: {} } });
    const { events, result } = await submit(op, [stage({ instances: 3, iterations: 2, disableLocal: true })]);
    assert.equal(result.ok, true);
    const failed = events.filter((e) => e.t === "boot-failed");
    assert.equal(failed.length, 1);
    assert.match(failed[0]!.t === "boot-failed" ? failed[0]!.error.message : "", /no handler step/);
    const started = events.find((e) => e.t === "started");
    assert.deepEqual(started?.t === "started" && started.instances.sort(), ["a1", "a2", "a3"]);
    assert.equal(writes(events), 3 * 2 * 2);
  });

  it("an agent without runs refuses; an exec stage is refused by agents that did not enable exec", async () => {
    const op = ops[0]!;
    await f.addAgent("plain", { labels: { role: "plain" } });
    const r1 = await submit(op, [stage({ instances: 1, iterations: 1, disableLocal: true })], {
      select: "role=plain",
      bootTimeoutMs: 500,
    });
    assert.equal(r1.result.ok, false);
    const failed = r1.events.find((e) => e.t === "boot-failed");
    assert.match(
      failed?.t === "boot-failed" ? failed.error.message : "",
      /no handler for method "muster.run/,
    );
    const r2 = await submit(op, [stage({ instances: 1, disableLocal: true, kind: "exec" })], {
      bootTimeoutMs: 500,
    });
    assert.equal(r2.result.ok, false);
    assert.ok(
      r2.events.some((e) => e.t === "boot-failed" && /cannot run exec stages/.test(e.error.message)),
      "the agents said why",
    );
  });

  it("the operator's local instance boots only the stages it submitted", async () => {
    const op = ops[0]!;
    // A second operator submits a stage naming the first's session? It cannot: the local
    // instance is always the submitter's own. Here the submitter refuses a spec it did not load.
    const picky = await connectOperator({
      server: "memory://server",
      memory: f.net,
      runs: { kinds: ["handler"], handlers: { step }, accept: () => false },
    });
    ops.push(picky);
    const r = await submit(picky, [stage({ instances: 1, iterations: 1 })]);
    assert.equal(r.result.ok, false);
    assert.ok(
      r.events.some((e) => e.t === "boot-failed" && /not one this instance accepts/.test(e.error.message)),
    );
    assert.ok(op, "the first operator is still connected");
  });

  it("an agent lost mid-run: reported, the run fails with on-loss abort, and the server lists it failed", async () => {
    const op = ops[0]!;
    const slow = async (_req: unknown, ctx: RunContext) => {
      await new Promise((r) => setTimeout(r, 5));
      if (ctx.signal.aborted) return;
    };
    const victim = await f.addAgent("v1", {
      labels: { role: "victim" },
      runs: { kinds: ["handler"], handlers: { step: slow } },
    });
    const done = submit(op, [stage({ instances: 1, runtimeMs: 60_000, disableLocal: true })], {
      select: "role=victim",
    });
    await until(
      () =>
        op !== undefined &&
        (f.server as unknown as { runs: { list(): Array<{ state: string }> } }).runs
          .list()
          .some((r) => r.state === "running"),
      5000,
      "the run to start",
    );
    await victim.close();
    const { events, result } = await done;
    assert.equal(result.ok, false);
    assert.ok(
      events.some((e) => e.t === "lost" && e.instance === "v1"),
      "the loss was reported",
    );
    const runs = await op.runs();
    assert.equal(runs[0]?.state, "failed");
  });

  it("stopping a run the server does not have: NOT_FOUND", async () => {
    await assert.rejects(ops[0]!.stopRun("no-such-run"), (e: MusterError) => e.code === ErrorCode.NOT_FOUND);
  });
});
