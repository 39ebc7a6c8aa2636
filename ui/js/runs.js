// The Runs page: each run's stages, instances and their states, a live chart of its QPS and
// latency percentiles per interval (combined, or the QPS and p99 of each instance), its errors and its final
// report. Fed by the runs stream: the recent run events, then each new one.

import { html, useEffect, useRef, useState } from "../vendor/preact-htm.js";
import { badge, short } from "./format.js";
import { openLive } from "./live.js";
import { RunChart } from "./run-chart.js";

/** A run as the page knows it, built from its events. */
function newRun(id, status) {
  return {
    id,
    state: status?.state ?? "booting",
    submittedBy: status?.submittedBy,
    stageNames: status?.stages ?? [],
    stages: [],
    stage: status?.stage ?? 0,
    instances: new Map((status?.instances ?? []).map((i) => [i, "running"])),
    intervals: [],
    errors: 0,
    notes: [],
    summaries: new Map(),
    done: undefined,
  };
}

const INSTANCE_STATE = {
  booting: "booting",
  booted: "booted",
  "boot-failed": "boot failed",
  unreachable: "unreachable",
  reachable: "running",
  lost: "lost",
  "instance-done": "done",
};

/** Applies one run event (the log's `data`, with its `t`) to the run. */
function apply(run, d, at) {
  const note = (text) => run.notes.push({ at, text });
  switch (d.t) {
    case "stage":
      run.stages[d.stage] = { name: d.name, kind: d.kind, instances: d.instances };
      run.stageNames[d.stage] = d.name;
      run.stage = d.stage;
      run.state = "booting";
      run.instances = new Map();
      note(`stage ${d.stage + 1} ${d.name} (${d.kind}): ${d.instances} instances`);
      break;
    case "waiting":
      note(`waiting: ${d.have} of ${d.need} agents match ${d.selector}`);
      break;
    case "started":
      run.state = "running";
      for (const i of d.instances) run.instances.set(i, "running");
      note(`started on ${d.instances.join(", ")} (clocks ${d.skewMs} ms apart)`);
      break;
    case "interval":
      run.intervals.push(d);
      run.errors += d.combined.errors;
      break;
    case "stopping":
      run.state = "stopping";
      note(`stopping: ${d.why}`);
      break;
    case "stage-done":
      note(
        `stage ${d.stage + 1} ${d.ok ? "done" : `failed: ${d.error?.message}`} in ${d.seconds.toFixed(1)} s`,
      );
      break;
    case "run-done":
      run.state = d.ok ? "done" : "failed";
      run.done = d;
      note(d.ok ? "run done" : `run failed: ${d.error?.message}`);
      break;
    case "resubmitting":
      note(`submitted again from stage ${d.from + 1}: ${d.why}`);
      break;
    default:
      if (INSTANCE_STATE[d.t] !== undefined && d.instance !== undefined) {
        run.instances.set(d.instance, INSTANCE_STATE[d.t]);
        if (d.t === "instance-done") run.summaries.set(d.instance, d.summary);
        if (d.t === "lost" || d.t === "boot-failed")
          note(`${d.instance} ${INSTANCE_STATE[d.t]}: ${d.error?.message}`);
        if (d.t === "unreachable") note(`${d.instance} unreachable: ${d.reason}`);
        if (d.t === "reachable") note(`${d.instance} back after ${d.downtimeMs} ms`);
      }
  }
}

export function RunsPage() {
  const runs = useRef(new Map());
  const [, setVersion] = useState(0);
  const [chosen, setChosen] = useState(undefined);
  const [perInstance, setPerInstance] = useState(false);
  const [status, setStatus] = useState({ state: "connecting", message: "connecting" });

  useEffect(() => {
    const runOf = (id) => {
      let r = runs.current.get(id);
      if (r === undefined) {
        r = newRun(id);
        runs.current.set(id, r);
      }
      return r;
    };
    const live = openLive("/api/live/runs", {
      onSnapshot: (s) => {
        runs.current = new Map(s.runs.map((r) => [r.id, newRun(r.id, r)]));
        for (const e of s.events) apply(runOf(e.data.run), e.data, e.at);
        setVersion((v) => v + 1);
      },
      onEvents: (events) => {
        for (const e of events) if (e.topic === "runs") apply(runOf(e.data.run), e.data, e.at);
        setVersion((v) => v + 1);
      },
      onStatus: setStatus,
    });
    return () => live.close();
  }, []);

  const list = [...runs.current.values()].reverse();
  const run = runs.current.get(chosen) ?? list[0];
  return html`<section class="page runs">
    <div class="toolbar"><span class=${`status st-${status.state}`} role="status">${status.message}</span></div>
    ${list.length === 0 && html`<p class="muted">No run yet on this server. Submit one with <code>muster run --server …</code>.</p>`}
    <div class="runs-layout">
      <ul class="runlist" aria-label="runs">
        ${list.map(
          (r) => html`<li key=${r.id}>
            <button class=${`link ${r === run ? "chosen" : ""}`} data-run=${r.id} onClick=${() => setChosen(r.id)}>${r.id}</button>
            ${" "}${badge(r.state)}
          </li>`,
        )}
      </ul>
      ${run && html`<${RunView} run=${run} perInstance=${perInstance} setPerInstance=${setPerInstance} />`}
    </div>
  </section>`;
}

function RunView({ run, perInstance, setPerInstance }) {
  const last = run.intervals.at(-1);
  return html`<div class="run" data-run=${run.id}>
    <h2>${run.id} ${badge(run.state)}</h2>
    <p class="muted">
      ${run.submittedBy ? `by ${run.submittedBy} · ` : ""}stage ${run.stage + 1} of ${Math.max(run.stageNames.length, run.stages.length)}:
      ${run.stageNames[run.stage] ?? ""}
    </p>
    <div class="cards">
      <div class="card"><div class="k">QPS (last interval)</div><div class="v" data-figure="qps">${last ? last.combined.qps : "–"}</div></div>
      <div class="card"><div class="k">p99 (last interval)</div><div class="v">${last ? `${(last.combined.p99Us / 1000).toFixed(2)} ms` : "–"}</div></div>
      <div class="card"><div class="k">Intervals</div><div class="v" data-figure="intervals">${run.intervals.length}</div></div>
      <div class="card"><div class="k">Errors</div><div class="v" data-figure="errors">${run.errors}</div></div>
    </div>
    <label class="check"><input type="checkbox" checked=${perInstance} onChange=${() => setPerInstance(!perInstance)} /> Each instance (QPS and p99)</label>
    <${RunChart} intervals=${run.intervals} perInstance=${perInstance} />
    <h2>Instances</h2>
    <table class="plain" aria-label="instances">
      <thead><tr><th>Instance</th><th>State</th><th>Report</th></tr></thead>
      <tbody>
        ${[...run.instances].map(
          ([name, state]) => html`<tr key=${name}>
            <td>${name}</td><td>${badge(state)}</td><td>${run.summaries.has(name) ? short(run.summaries.get(name), 120) : ""}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    <h2>What happened</h2>
    <ul class="notes">
      ${run.notes.map((n, i) => html`<li key=${i}>${new Date(n.at).toLocaleTimeString([], { hour12: false })} ${n.text}</li>`)}
    </ul>
  </div>`;
}
