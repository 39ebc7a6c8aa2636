// The coordinator of runs over in-process instances: boot (with replacement of failed boots
// and a boot timeout), the start, merging, instances lost mid-run (abort or continue), stops,
// and the refusals of stages that cannot run. Handler stages make every count exact.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../src/errors/codes.js";
import { MusterError } from "../src/errors/muster-error.js";
import { coordinateRun } from "../src/run/coordinator.js";
import type { LoadedStage, PreparedStage } from "../src/run/engine/types.js";
import type { RunEvent } from "../src/run/events.js";
import { handlerPreparer, type RunHandler } from "../src/run/generic/handler-stage.js";
import { InstanceHost, type Preparer } from "../src/run/instance-host.js";
import { type InstancePort, localPort } from "../src/run/instance-port.js";
import type { RunFleet } from "../src/run/stage-boot.js";

function handlerStage(o: {
  instances: number;
  iterations?: number;
  runtimeMs?: number;
  freqMs?: number;
  disableLocal?: boolean;
  clients?: number;
}): LoadedStage {
  return {
    name: "hs",
    file: "hs.yaml",
    instances: o.instances,
    disableLocal: o.disableLocal ?? false,
    ...(o.runtimeMs !== undefined && { runtimeMs: o.runtimeMs }),
    stats: { disable: false, freqMs: o.freqMs ?? 0, report: {} },
    kind: "handler",
    files: new Map([["data/x.txt", new TextEncoder().encode("hello")]]),
    spec: {
      kind: "handler",
      name: "hs",
      method: "work",
      clients: o.clients ?? 2,
      ...(o.iterations !== undefined && { iterations: o.iterations }),
      ...(o.runtimeMs !== undefined && { runtimeMs: o.runtimeMs }),
    },
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** An instance whose `work` method counts its calls; `prepare` may be replaced to fail. */
function instance(name: string, work: RunHandler = async () => tick(), wrap?: (p: Preparer) => Preparer) {
  const base = handlerPreparer((m) => (m === "work" ? work : undefined));
  const host = new InstanceHost({ preparers: { handler: wrap ? wrap(base) : base } });
  return { host, port: localPort(host, name) };
}

function fleetOf(ports: InstancePort[], selector = "role=bench"): RunFleet {
  return {
    selector,
    candidates: () => ports.map((p) => p.name),
    port: (name) => ports.find((p) => p.name === name)!,
  };
}

function collect(): {
  events: RunEvent[];
  emit: (e: RunEvent) => void;
  of<T extends RunEvent["t"]>(t: T): Array<Extract<RunEvent, { t: T }>>;
} {
  const events: RunEvent[] = [];
  return {
    events,
    emit: (e) => events.push(e),
    of: (t) => events.filter((e) => e.t === t) as never,
  };
}

/** Total events (kind total) merged over a stage. */
function mergedTotal(c: ReturnType<typeof collect>): number {
  return c.of("interval").reduce((n, e) => n + (e.merged.combined.total.n[3] ?? 0), 0);
}

describe("coordinated runs, in-process", () => {
  it("local only: every call of every client is merged once, and the events come in order", async () => {
    const local = instance("local");
    const c = collect();
    const out = await coordinateRun({
      stages: [handlerStage({ instances: 1, iterations: 50, clients: 3 })],
      local: local.port,
      emit: c.emit,
    });
    assert.equal(out.ok, true, out.error?.message);
    assert.deepEqual(
      c.events.map((e) => e.t).filter((t) => t !== "interval"),
      ["stage", "booting", "booted", "started", "instance-done", "stage-done", "run-done"],
    );
    assert.equal(mergedTotal(c), 150, "3 clients × 50 iterations");
    assert.equal(c.of("interval").at(-1)?.merged.final, true);
    assert.equal(local.host.stages, 0, "the stage was forgotten on the instance");
  });

  it("a stage that takes more instances than this one, with no fleet: refused, saying to give --server", async () => {
    const local = instance("local");
    const c = collect();
    const out = await coordinateRun({
      stages: [handlerStage({ instances: 3, iterations: 1 })],
      local: local.port,
      emit: c.emit,
    });
    assert.equal(out.ok, false);
    assert.equal(out.error?.code, ErrorCode.INVALID_ARGUMENT);
    assert.match(out.error!.message, /takes 3 instances \(this one and 2 agents\): give --server/);
  });

  it("four instances (local + 3 agents): merged counts are the sum of the instances', a failed boot is replaced", async () => {
    const local = instance("local");
    const failing = instance("a0", undefined, () => async () => {
      throw new MusterError(ErrorCode.UNAVAILABLE, "cannot connect to MySQL: access denied");
    });
    const agents = [failing, instance("a1"), instance("a2"), instance("a3")];
    const c = collect();
    const out = await coordinateRun({
      stages: [handlerStage({ instances: 4, iterations: 20, clients: 2 })],
      local: local.port,
      fleet: fleetOf(agents.map((a) => a.port)),
      emit: c.emit,
    });
    assert.equal(out.ok, true, out.error?.message);
    const failed = c.of("boot-failed");
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.instance, "a0");
    assert.match(failed[0]!.error.message, /access denied/);
    assert.deepEqual(c.of("started")[0]!.instances.sort(), ["a1", "a2", "a3", "local"]);
    assert.equal(mergedTotal(c), 4 * 2 * 20);
    const last = c.of("interval").at(-1)!.merged;
    assert.equal(last.combined.clients, 8, "clients summed over instances");
  });

  it("not enough agents: the boot times out naming what it waited for and every failure", async () => {
    const c = collect();
    const bad = instance("b1", undefined, () => async () => {
      throw new MusterError(ErrorCode.UNAVAILABLE, "no route to database");
    });
    const out = await coordinateRun({
      stages: [handlerStage({ instances: 3, iterations: 1, disableLocal: true })],
      fleet: fleetOf([bad.port, instance("b2").port]),
      bootTimeoutMs: 600,
      emit: c.emit,
    });
    assert.equal(out.ok, false);
    assert.equal(out.error?.code, ErrorCode.DEADLINE_EXCEEDED);
    assert.match(out.error!.message, /1 of 3 instances booted/);
    assert.match(out.error!.message, /2 more agents matching role=bench were needed/);
    assert.match(out.error!.message, /b1: .*no route to database/);
    assert.ok(c.of("waiting").length >= 1, "the wait was reported");
  });

  it("an instance lost mid-run with on-loss abort: reported, the others stopped, their stats still merged", async () => {
    const local = instance("local");
    const lossy = instance("l1", undefined, (p) => async (spec, files, o) => {
      const prepared = await p(spec, files, o);
      const wrapped: PreparedStage = {
        ...prepared,
        trx: prepared.trx,
        clients: prepared.clients,
        run: async () => {
          await new Promise((r) => setTimeout(r, 50));
          throw new MusterError(ErrorCode.UNAVAILABLE, "link to the agent lost");
        },
        close: prepared.close,
      };
      return wrapped;
    });
    const c = collect();
    const out = await coordinateRun({
      stages: [handlerStage({ instances: 2, runtimeMs: 60_000, clients: 1 })],
      local: local.port,
      fleet: fleetOf([lossy.port]),
      emit: c.emit,
    });
    assert.equal(out.ok, false);
    const lost = c.of("lost");
    assert.equal(lost.length, 1);
    assert.equal(lost[0]!.instance, "l1");
    assert.equal(lost[0]!.onLoss, "abort");
    assert.match(out.error!.message, /instance l1 was lost/);
    assert.ok(mergedTotal(c) > 0, "what local did before the stop was merged");
    assert.equal(c.of("stopping").length, 1);
  });

  it("on-loss continue: the stage completes without the lost instance", async () => {
    const local = instance("local");
    const lossy = instance("l1", undefined, (p) => async (spec, files, o) => {
      const prepared = await p(spec, files, o);
      return {
        ...prepared,
        trx: prepared.trx,
        clients: prepared.clients,
        close: prepared.close,
        run: async () => {
          throw new MusterError(ErrorCode.UNAVAILABLE, "gone");
        },
      };
    });
    const c = collect();
    const out = await coordinateRun({
      stages: [handlerStage({ instances: 2, iterations: 10, clients: 1 })],
      local: local.port,
      fleet: fleetOf([lossy.port]),
      onLoss: "continue",
      emit: c.emit,
    });
    assert.equal(out.ok, true, out.error?.message);
    assert.equal(c.of("lost").length, 1);
    assert.equal(mergedTotal(c), 10, "local's 10 calls");
  });

  it("a stop ends every instance within the grace time, the stats gathered so far reported", async () => {
    const local = instance("local");
    const a1 = instance("a1");
    const stop = new AbortController();
    const c = collect();
    const running = coordinateRun({
      stages: [
        handlerStage({ instances: 2, runtimeMs: 600_000, clients: 2 }),
        handlerStage({ instances: 1, iterations: 1 }),
      ],
      local: local.port,
      fleet: fleetOf([a1.port]),
      signal: stop.signal,
      emit: (e) => {
        c.emit(e);
        if (e.t === "started")
          setTimeout(() => stop.abort(new MusterError(ErrorCode.CANCELLED, "interrupted (Ctrl-C)")), 100);
      },
    });
    const out = await running;
    assert.equal(out.ok, false);
    assert.equal(out.error?.code, ErrorCode.CANCELLED);
    assert.ok(mergedTotal(c) > 0, "the stats of the stopped stage were merged");
    assert.equal(c.of("stage").length, 1, "no stage starts after a stop");
    assert.equal(local.host.stages + a1.host.stages, 0, "both instances forgot the stage");
  });

  it("stages run in sequence on the same instances, each booted afresh", async () => {
    const local = instance("local");
    const a1 = instance("a1");
    const c = collect();
    const out = await coordinateRun({
      stages: [
        handlerStage({ instances: 2, iterations: 3, clients: 1 }),
        handlerStage({ instances: 2, iterations: 4, clients: 1 }),
      ],
      local: local.port,
      fleet: fleetOf([a1.port]),
      emit: c.emit,
    });
    assert.equal(out.ok, true, out.error?.message);
    const byStage = [0, 1].map((s) =>
      c
        .of("interval")
        .filter((e) => e.stage === s)
        .reduce((n, e) => n + (e.merged.combined.total.n[3] ?? 0), 0),
    );
    assert.deepEqual(byStage, [6, 8]);
    assert.equal(c.of("run-done")[0]!.stages, 2);
  });
});
