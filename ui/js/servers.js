// The Servers page: the cluster's servers (or the one), this server's health and key figures,
// and its runtime flags, all live.

import { html, useEffect, useState } from "../vendor/preact-htm.js";
import { AdminPanel, FlagValue } from "./admin-actions.js";
import { badge, bytes } from "./format.js";
import { openLive } from "./live.js";

export function ServersPage({ who }) {
  const admin = who.role === "admin";
  const [notice, setNotice] = useState("");
  const [state, setState] = useState(undefined);
  const [status, setStatus] = useState({ state: "connecting", message: "connecting" });
  useEffect(() => {
    let current;
    const live = openLive("/api/live/servers", {
      onSnapshot: (s) => {
        current = s;
        setState(s);
      },
      onEvents: (events) => {
        if (current === undefined) return;
        let next = current;
        for (const e of events) {
          if (e.type === "servers")
            next = { ...next, servers: e.servers, readiness: e.readiness, health: e.health };
          else if (e.type === "flag")
            next = {
              ...next,
              flags: next.flags.map((f) =>
                f.name === e.data.flag ? { ...f, value: e.data.to, by: e.data.by } : f,
              ),
            };
        }
        current = next;
        setState(next);
      },
      onStatus: setStatus,
    });
    return () => live.close();
  }, []);
  if (state === undefined) return html`<p role="status">${status.message}</p>`;
  const h = state.health;
  return html`<section class="page servers">
    <div class="toolbar">
      <span class=${`status st-${status.state}`} role="status">${status.message}</span>
      ${notice && html`<span class="notice" role="alert">${notice}</span>`}
    </div>
    <div class="cards">
      <div class="card"><div class="k">Readiness</div><div class="v">${badge(state.readiness)}</div></div>
      <div class="card"><div class="k">Uptime</div><div class="v">${h.uptimeS} s</div></div>
      <div class="card"><div class="k">Event loop busy</div><div class="v">${Math.round(h.eventLoopUtilization * 100)} %</div></div>
      <div class="card"><div class="k">Memory (RSS)</div><div class="v">${bytes(h.rssBytes)}</div></div>
      <div class="card"><div class="k">Connections</div><div class="v">${h.connections}</div></div>
      <div class="card"><div class="k">Live streams</div><div class="v">${h.liveStreams}</div></div>
    </div>
    <h2>Servers</h2>
    <table class="plain" aria-label="servers">
      <thead><tr><th>Name</th><th>State</th><th>URLs</th><th>Agents</th><th>Lag</th><th>Version</th><th>Last heartbeat</th></tr></thead>
      <tbody>
        ${state.servers.map(
          (s) => html`<tr key=${s.name}>
            <td>${s.name}</td><td>${badge(s.state)}</td><td>${s.urls.join(" ")}</td><td>${s.agents}</td>
            <td>${s.lagMs} ms</td><td>${s.version}</td><td>${s.lastHeartbeatMs} ms ago</td>
          </tr>`,
        )}
      </tbody>
    </table>
    <h2>Runtime flags</h2>
    <table class="plain" aria-label="flags">
      <thead><tr><th>Flag</th><th>Value</th><th>Source</th><th>Scope</th><th>What</th></tr></thead>
      <tbody>
        ${state.flags.map(
          (f) => html`<tr key=${f.name}>
            <td><code>${f.name}</code></td><td><${FlagValue} flag=${f} admin=${admin} onNotice=${setNotice} /></td>
            <td>${f.source}${f.by ? ` (${f.by})` : ""}</td><td>${f.scope}</td><td>${f.description}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${admin && html`<${AdminPanel} onNotice=${setNotice} />`}
  </section>`;
}
