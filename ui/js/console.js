// The call console: a method called on a target, one cell per expected agent, filled as the
// outcomes arrive (the answer of POST /api/calls, read as it streams).

import { html, useRef, useState } from "../vendor/preact-htm.js";
import { ApiError, answer, authHeaders, ndjson } from "./api.js";
import { short } from "./format.js";

const HISTORY_KEY = "muster.calls";
const HISTORY_MAX = 20;

function history() {
  try {
    return JSON.parse(sessionStorage.getItem(HISTORY_KEY) ?? "[]");
  } catch {
    return [];
  }
}

export function ConsolePage() {
  const [form, setForm] = useState({ target: "all", method: "", request: "", timeoutMs: "10000" });
  const [cells, setCells] = useState(new Map());
  const [order, setOrder] = useState([]);
  const [summary, setSummary] = useState(undefined);
  const [error, setError] = useState("");
  const [running, setRunning] = useState(false);
  const [chosen, setChosen] = useState(undefined);
  const [past, setPast] = useState(history());
  const call = useRef(undefined);

  const set = (key) => (e) => setForm({ ...form, [key]: e.target.value });
  const send = async (e) => {
    e.preventDefault();
    setError("");
    let args;
    if (form.request.trim() !== "") {
      try {
        args = JSON.parse(form.request);
      } catch (err) {
        setError(`The request is not JSON: ${err.message}`);
        return;
      }
    }
    const body = { target: form.target.trim(), method: form.method.trim() };
    if (args !== undefined) body.args = args;
    if (form.timeoutMs.trim() !== "") body.timeoutMs = Number(form.timeoutMs);
    const controller = new AbortController();
    call.current = controller;
    setRunning(true);
    setSummary(undefined);
    setChosen(undefined);
    const grid = new Map();
    setCells(grid);
    setOrder([]);
    let frame = 0;
    const paint = () => {
      frame = 0;
      setCells(new Map(grid));
    };
    try {
      const res = await fetch("/api/calls", {
        method: "POST",
        headers: authHeaders({ "content-type": "application/json" }),
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!res.ok) await answer(res);
      for await (const item of ndjson(res)) {
        if (item.type === "expected") {
          for (const name of item.agents) grid.set(name, { status: "running" });
          setOrder(item.agents);
        } else if (item.type === "outcome") {
          grid.set(item.agent, item);
        } else if (item.type === "done") {
          setSummary({ ...item.summary, ms: item.ms });
          const entry = { ...form, at: Date.now(), summary: item.summary };
          const next = [entry, ...history()].slice(0, HISTORY_MAX);
          sessionStorage.setItem(HISTORY_KEY, JSON.stringify(next));
          setPast(next);
        }
        if (frame === 0) frame = requestAnimationFrame(paint);
      }
    } catch (err) {
      if (err.name === "AbortError") setError("Cancelled: the calls still running were cancelled");
      else setError(err instanceof ApiError ? `Refused: ${err.message}` : `Failed: ${err.message}`);
    } finally {
      cancelAnimationFrame(frame);
      setCells(new Map(grid));
      setRunning(false);
      call.current = undefined;
    }
  };
  const chosenCell = chosen === undefined ? undefined : cells.get(chosen);
  return html`<section class="page console">
    <form class="callform" onSubmit=${send}>
      <label>Target <input name="target" value=${form.target} onInput=${set("target")} placeholder="all, web-*, role=web" /></label>
      <label>Method <input name="method" value=${form.method} onInput=${set("method")} placeholder="svc.method" required /></label>
      <label>Timeout (ms) <input name="timeoutMs" value=${form.timeoutMs} onInput=${set("timeoutMs")} inputmode="numeric" /></label>
      <label class="wide">Request (JSON) <textarea name="request" rows="3" value=${form.request} onInput=${set("request")} placeholder='{"key": "value"}'></textarea></label>
      <div class="buttons">
        <button type="submit" disabled=${running}>Call</button>
        <button type="button" disabled=${!running} onClick=${() => call.current?.abort()}>Cancel</button>
      </div>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${
      summary &&
      html`<p class="summary" role="status">
      ${summary.ok} ok · ${summary.error} error · ${summary.timeout} timeout · ${summary.notConnected} not connected — ${summary.ms} ms
    </p>`
    }
    <div class="grid" aria-label="outcomes">
      ${order.map((name) => {
        const c = cells.get(name) ?? { status: "running" };
        return html`<button
          class=${`cell o-${c.status} ${chosen === name ? "chosen" : ""}`}
          key=${name}
          data-agent=${name}
          data-status=${c.status}
          title=${`${name}: ${c.status}`}
          onClick=${() => setChosen(name)}
        >${name}</button>`;
      })}
    </div>
    ${
      chosenCell &&
      html`<aside class="details" aria-label="outcome">
      <h2>${chosen} — ${chosenCell.status.replace("_", " ")}</h2>
      ${chosenCell.durationMs !== undefined && html`<p>${chosenCell.durationMs} ms</p>`}
      <pre>${JSON.stringify(chosenCell.status === "ok" ? chosenCell.value : chosenCell.error, null, 2) ?? ""}</pre>
    </aside>`
    }
    ${
      past.length > 0 &&
      html`<div class="history">
      <h2>Last calls</h2>
      <ul>
        ${past.map(
          (p) => html`<li>
            <button class="link" onClick=${() => setForm({ target: p.target, method: p.method, request: p.request, timeoutMs: p.timeoutMs })}>
              ${p.method} on ${p.target}
            </button>
            <span class="muted"> ${short(p.summary)}</span>
          </li>`,
        )}
      </ul>
    </div>`
    }
  </section>`;
}
