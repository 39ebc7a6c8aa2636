// The Events page: the server's live event log (presence, calls, runs, the server's own),
// filtered by topic and text, pausable.

import { html, useEffect, useRef, useState } from "../vendor/preact-htm.js";
import { clock, short } from "./format.js";
import { openLive } from "./live.js";
import { VirtualTable } from "./vtable.js";

const TOPICS = ["fleet", "calls", "runs", "server"];
const KEEP = 5000;

/** One line saying what an event is. */
export function describe(e) {
  const d = e.data;
  if (e.topic === "fleet") {
    if (e.type === "gone") return `${d.name} is no longer listed (was ${d.was})`;
    const a = d.agent;
    return d.was === undefined ? `${a.name} listed: ${a.state}` : `${a.name}: ${d.was} → ${a.state}`;
  }
  if (e.type === "call-start") return `${d.method} on ${d.target} by ${d.by}: ${d.expected} expected`;
  if (e.type === "call-done") {
    const s = d.summary;
    return `${d.method} on ${d.target}: ${s.ok} ok, ${s.error} error, ${s.timeout} timeout, ${s.notConnected} not connected in ${d.ms} ms`;
  }
  if (e.topic === "runs") {
    if (d.t === "interval")
      return `run ${d.run}: interval ${d.interval}, ${d.combined.qps} QPS, p99 ${(d.combined.p99Us / 1000).toFixed(2)} ms, ${d.combined.errors} errors`;
    if (d.t === "stage")
      return `run ${d.run}: stage ${d.stage + 1} ${d.name} (${d.kind}), ${d.instances} instances`;
    if (d.t === "run-done") return `run ${d.run}: ${d.ok ? "done" : `failed: ${d.error?.message}`}`;
    if (d.t === "stage-done")
      return `run ${d.run}: stage ${d.stage + 1} ${d.ok ? "done" : `failed: ${d.error?.message}`} in ${d.seconds.toFixed(1)} s`;
    if (d.t === "instance-done") {
      const exit = d.summary?.exit;
      return `run ${d.run}: ${d.instance} done${exit ? ` (exit ${exit.code ?? exit.signal})` : ""}`;
    }
    if (d.t === "started") return `run ${d.run}: stage ${d.stage + 1} started on ${d.instances.join(", ")}`;
    const { run, t, ...rest } = d;
    return `run ${run}: ${t} ${short(rest)}`;
  }
  if (e.type === "ready") return `server ${d.server} is ready`;
  if (e.type === "draining") return `server ${d.server} is draining`;
  if (e.type === "flag") return `flag ${d.flag}: ${short(d.from)} → ${short(d.to)} by ${d.by}`;
  return `${e.type} ${short(d)}`;
}

const COLUMNS = [
  { key: "at", title: "Time", width: "7em", render: (e) => clock(e.at) },
  {
    key: "topic",
    title: "Topic",
    width: "5.5em",
    render: (e) => html`<span class=${`topic t-${e.topic}`}>${e.topic}</span>`,
  },
  { key: "what", title: "What", width: "1fr", render: (e) => describe(e) },
];

export function EventsPage() {
  const events = useRef([]);
  const held = useRef([]);
  const [, setVersion] = useState(0);
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  const [topics, setTopics] = useState(new Set(TOPICS));
  const [text, setText] = useState("");
  const [status, setStatus] = useState({ state: "connecting", message: "connecting" });

  useEffect(() => {
    const add = (list) => {
      if (pausedRef.current) {
        held.current.push(...list);
        if (held.current.length > KEEP) held.current.splice(0, held.current.length - KEEP);
      } else {
        events.current = [...list.reverse(), ...events.current].slice(0, KEEP);
      }
      setVersion((v) => v + 1);
    };
    const live = openLive("/api/live/events", {
      onSnapshot: (s) => {
        events.current = [];
        held.current = [];
        add(s.events);
      },
      onEvents: add,
      onStatus: setStatus,
    });
    return () => live.close();
  }, []);

  const togglePause = () => {
    pausedRef.current = !paused;
    if (paused) {
      events.current = [...held.current.reverse(), ...events.current].slice(0, KEEP);
      held.current = [];
    }
    setPaused(!paused);
  };
  const toggle = (t) => {
    const next = new Set(topics);
    if (next.has(t)) next.delete(t);
    else next.add(t);
    setTopics(next);
  };
  const needle = text.trim().toLowerCase();
  const shown = events.current.filter(
    (e) => topics.has(e.topic) && (needle === "" || describe(e).toLowerCase().includes(needle)),
  );
  return html`<section class="page events">
    <div class="toolbar">
      ${TOPICS.map(
        (t) =>
          html`<label class="check"><input type="checkbox" checked=${topics.has(t)} onChange=${() => toggle(t)} /> ${t}</label>`,
      )}
      <input class="search" aria-label="filter events" placeholder="filter" value=${text} onInput=${(e) => setText(e.target.value)} />
      <button onClick=${togglePause}>${paused ? `Resume (${held.current.length} new)` : "Pause"}</button>
      <span class=${`status st-${status.state}`} role="status">${status.message}</span>
    </div>
    <${VirtualTable} label="events" columns=${COLUMNS} rows=${shown} rowKey=${(e) => e.id} />
  </section>`;
}
