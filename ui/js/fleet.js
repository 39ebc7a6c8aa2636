// The Fleet page: every agent, live, filtered by a target as `muster call` takes it, with the
// counts by state and the enrolment requests waiting.

import { html, useEffect, useLayoutEffect, useRef, useState } from "../vendor/preact-htm.js";
import { api } from "./api.js";
import { ago, badge, byName, labels } from "./format.js";
import { openLive } from "./live.js";
import { perf } from "./perf.js";
import { VirtualTable } from "./vtable.js";

const STATES = ["connected", "suspect", "resuming", "pending", "offline"];

const COLUMNS = [
  {
    key: "name",
    title: "Name",
    width: "minmax(9em, 1.2fr)",
    render: (a) => html`<span class="name">${a.name}</span>`,
  },
  { key: "state", title: "State", width: "7.5em", render: (a) => badge(a.state) },
  { key: "labels", title: "Labels", width: "minmax(8em, 1.5fr)", render: (a) => labels(a.labels) },
  { key: "server", title: "Server", width: "minmax(6em, 0.8fr)", render: (a) => a.server ?? "this one" },
  {
    key: "rtt",
    title: "RTT",
    width: "5.5em",
    render: (a) => (a.rttMs >= 0 ? `${a.rttMs.toFixed(1)} ms` : "–"),
  },
  { key: "version", title: "Version", width: "6em", render: (a) => a.version },
  { key: "since", title: "Connected since", width: "8em", render: (a) => ago(a.connectedSince) },
  // A connected agent was heard from within the suspect threshold: "live" says so without a
  // row update per frame it sends.
  {
    key: "seen",
    title: "Last seen",
    width: "8em",
    render: (a) => (a.state === "connected" ? "live" : ago(a.lastSeen)),
  },
];

export function FleetPage({ who }) {
  const rows = useRef(new Map());
  const sorted = useRef([]);
  const started = useRef(0);
  const [, setVersion] = useState(0);
  const [status, setStatus] = useState({ state: "connecting", message: "connecting" });
  const [filter, setFilter] = useState("");
  const [target, setTarget] = useState("");
  const [enrolments, setEnrolments] = useState([]);
  const [selected, setSelected] = useState(undefined);
  const [total, setTotal] = useState(0);
  const [notice, setNotice] = useState("");

  useEffect(() => {
    let refetch = 0;
    const loadEnrolments = () => {
      clearTimeout(refetch);
      refetch = setTimeout(
        () =>
          api("/api/enrolments")
            .then((r) => setEnrolments(r.enrolments))
            .catch(() => {}),
        100,
      );
    };
    const resort = () => {
      sorted.current = [...rows.current.values()].sort((a, b) => byName(a.name, b.name));
    };
    const path = `/api/live/fleet${target ? `?target=${encodeURIComponent(target)}` : ""}`;
    const live = openLive(path, {
      onSnapshot: (s) => {
        started.current = performance.now();
        rows.current = new Map(s.agents.map((a) => [a.name, a]));
        setTotal(s.total);
        setEnrolments(s.enrolments);
        resort();
        setVersion((v) => v + 1);
      },
      onEvents: (events) => {
        started.current = performance.now();
        let membership = false;
        let pending = false;
        for (const e of events) {
          if (e.topic !== "fleet") continue;
          if (e.type === "agent") {
            const a = e.data.agent;
            if (!rows.current.has(a.name)) membership = true;
            rows.current.set(a.name, a);
            if (a.state === "pending" || e.data.was === "pending") pending = true;
          } else if (e.type === "gone") {
            if (rows.current.delete(e.data.name)) membership = true;
            if (e.data.was === "pending") pending = true;
          }
        }
        if (membership) resort();
        else sorted.current = sorted.current.map((a) => rows.current.get(a.name) ?? a);
        if (pending) loadEnrolments();
        setVersion((v) => v + 1);
      },
      onStatus: setStatus,
    });
    const tick = setInterval(() => setVersion((v) => v + 1), 5000);
    return () => {
      live.close();
      clearInterval(tick);
      clearTimeout(refetch);
    };
  }, [target]);

  // Time from the deltas' arrival to the table on screen, for each update.
  useLayoutEffect(() => {
    if (started.current > 0) perf("fleet", performance.now() - started.current, sorted.current.length);
    started.current = 0;
  });

  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const a of sorted.current) counts[a.state] = (counts[a.state] ?? 0) + 1;
  const decide = async (e, action) => {
    try {
      await api(`/api/enrolments/${encodeURIComponent(e.name)}`, {
        method: "POST",
        body: { action, fingerprint: e.fingerprint },
      });
      setNotice(`${action === "accept" ? "Accepted" : "Rejected"} ${e.name}`);
    } catch (err) {
      setNotice(`${action} ${e.name}: ${err.message}`);
    }
  };
  return html`<section class="page fleet">
    <div class="toolbar">
      <form onSubmit=${(e) => {
        e.preventDefault();
        setTarget(filter.trim());
      }}>
        <input class="target" aria-label="target" placeholder="filter: all, web-*, role=web,zone!=eu" value=${filter} onInput=${(e) => setFilter(e.target.value)} />
        <button type="submit">Filter</button>
      </form>
      <span class=${`status st-${status.state}`} role="status">${status.message}</span>
    </div>
    <div class="counts" aria-label="counts by state">
      <span class="count">${sorted.current.length} shown${target ? ` of ${total}` : ""}</span>
      ${STATES.map((s) => html`<span class=${`count c-${s}`} data-state=${s}>${badge(s)} ${counts[s]}</span>`)}
    </div>
    ${
      enrolments.length > 0 &&
      html`<div class="enrolments">
      <h2>Enrolment requests waiting</h2>
      ${notice && html`<p class="notice" role="alert">${notice}</p>`}
      <table>
        <thead><tr><th>Name</th><th>Fingerprint</th><th>Address</th><th>Server</th><th></th></tr></thead>
        <tbody>
          ${enrolments.map(
            (e) => html`<tr key=${e.fingerprint}>
              <td>${e.name}</td><td><code>${e.fingerprint}</code></td><td>${e.address}</td><td>${e.server ?? ""}</td>
              <td>${who.role === "admin" ? html`<button onClick=${() => decide(e, "accept")}>Accept</button> <button onClick=${() => decide(e, "reject")}>Reject</button>` : "admin decides"}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>`
    }
    <${VirtualTable}
      label="agents"
      columns=${COLUMNS}
      rows=${sorted.current}
      rowKey=${(a) => a.name}
      rowClass=${(a) => `s-${a.state}`}
      onRow=${(a) => api(`/api/agents/${encodeURIComponent(a.name)}`).then(setSelected, (err) => setSelected({ name: a.name, error: err.message }))}
    />
    ${
      selected &&
      html`<aside class="details" aria-label="agent details">
      <button class="link close" onClick=${() => setSelected(undefined)}>close</button>
      <h2>${selected.name}</h2>
      <pre>${JSON.stringify(selected, null, 2)}</pre>
    </aside>`
    }
  </section>`;
}
