// What an admin may change from the Servers page: a runtime flag, the caches, a shutdown.
// Each is one request to the admin API; the page shows the server's answer.

import { html, useEffect, useState } from "../vendor/preact-htm.js";
import { api } from "./api.js";

/** A flag's value, editable by an admin: Set sends it as typed (a number, or text such as 2s). */
export function FlagValue({ flag, admin, onNotice }) {
  const shown = typeof flag.value === "string" ? flag.value : JSON.stringify(flag.value);
  const [value, setValue] = useState(shown);
  useEffect(() => setValue(shown), [shown]);
  if (!admin) return html`${shown}${flag.unit ? ` ${flag.unit}` : ""}`;
  const set = async (e) => {
    e.preventDefault();
    let v = value.trim();
    if (/^-?\d+(\.\d+)?$/.test(v) || v === "true" || v === "false") v = JSON.parse(v);
    try {
      await api("/api/flags", { method: "PUT", body: { [flag.name]: v } });
      onNotice(`${flag.name} set to ${value.trim()}`);
    } catch (err) {
      onNotice(`${flag.name}: ${err.message}`);
    }
  };
  return html`<form class="inline" onSubmit=${set}>
    <input aria-label=${`value of ${flag.name}`} value=${value} onInput=${(e) => setValue(e.target.value)} size="8" />
    ${flag.unit ? html`<span class="muted"> ${flag.unit} </span>` : " "}
    <button type="submit" disabled=${value === shown}>Set</button>
  </form>`;
}

/** The caches, with Clear, and the Shutdown button (which asks first). */
export function AdminPanel({ onNotice }) {
  const [caches, setCaches] = useState([]);
  const [confirming, setConfirming] = useState(false);
  const load = () =>
    api("/api/caches").then(
      (r) => setCaches(r.caches),
      () => {},
    );
  useEffect(() => {
    load();
  }, []);
  const clear = async (name) => {
    try {
      const r = await api(`/api/caches/${encodeURIComponent(name)}`, { method: "DELETE" });
      onNotice(`cleared ${r.cleared.map((c) => `${c.cleared} from ${c.name}`).join(", ")}`);
      load();
    } catch (err) {
      onNotice(`clear ${name}: ${err.message}`);
    }
  };
  const shutdown = async () => {
    setConfirming(false);
    try {
      const r = await api("/api/shutdown", { method: "POST" });
      onNotice(`the server is draining (up to ${r.drainTimeoutMs} ms), then it stops`);
    } catch (err) {
      onNotice(`shutdown: ${err.message}`);
    }
  };
  return html`<div class="admin">
    <h2>Caches</h2>
    <table class="plain" aria-label="caches">
      <thead><tr><th>Cache</th><th>Entries</th><th>What</th><th></th></tr></thead>
      <tbody>
        ${caches.map(
          (c) => html`<tr key=${c.name}>
            <td><code>${c.name}</code></td><td>${c.entries}</td><td>${c.description}</td>
            <td><button onClick=${() => clear(c.name)}>Clear</button></td>
          </tr>`,
        )}
      </tbody>
    </table>
    <h2>Shutdown</h2>
    ${
      confirming
        ? html`<p>Drain this server and stop it? Agents move to other servers of the cluster, or reconnect when it is back.
          <button class="danger" onClick=${shutdown}>Yes, shut down</button> <button onClick=${() => setConfirming(false)}>No</button></p>`
        : html`<button class="danger" onClick=${() => setConfirming(true)}>Shut down this server…</button>`
    }
  </div>`;
}
