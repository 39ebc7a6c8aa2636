// The dashboard's shell: sign-in, the navigation between pages, who is signed in.

import { html, render, useEffect, useState } from "../vendor/preact-htm.js";
import { api, setToken, token } from "./api.js";
import { ConsolePage } from "./console.js";
import { EventsPage } from "./events.js";
import { FleetPage } from "./fleet.js";
import { RunsPage } from "./runs.js";
import { ServersPage } from "./servers.js";

const PAGES = [
  { id: "fleet", title: "Fleet", view: FleetPage },
  { id: "console", title: "Call console", view: ConsolePage },
  { id: "events", title: "Events", view: EventsPage },
  { id: "runs", title: "Runs", view: RunsPage },
  { id: "servers", title: "Servers", view: ServersPage },
];

function currentPage() {
  const id = location.hash.replace(/^#\/?/, "");
  return PAGES.find((p) => p.id === id) ?? PAGES[0];
}

function SignIn({ onIn, error }) {
  const [value, setValue] = useState("");
  const [message, setMessage] = useState(error ?? "");
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setToken(value.trim());
    try {
      onIn(await api("/api/whoami"));
    } catch (err) {
      setToken("");
      setMessage(`Refused: ${err.message}`);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>muster</h1>
    <form onSubmit=${submit}>
      <label for="token">Token (operator or admin)</label>
      <input id="token" type="password" autocomplete="off" value=${value} onInput=${(e) => setValue(e.target.value)} />
      <button type="submit" disabled=${busy || value.trim() === ""}>Sign in</button>
      ${message && html`<p class="error" role="alert">${message}</p>`}
      <p class="hint">Make one with <code>muster token create --role operator --subject you</code>. It is kept in this tab only.</p>
    </form>
  </main>`;
}

function App() {
  const [who, setWho] = useState(undefined);
  const [error, setError] = useState("");
  const [page, setPage] = useState(currentPage());
  useEffect(() => {
    const onHash = () => setPage(currentPage());
    addEventListener("hashchange", onHash);
    api("/api/whoami")
      .then(setWho)
      .catch((err) => {
        if (token()) setError(`Refused: ${err.message}`);
        setToken("");
        setWho(null);
      });
    return () => removeEventListener("hashchange", onHash);
  }, []);
  if (who === undefined) return html`<p class="boot">Connecting…</p>`;
  if (who === null) return html`<${SignIn} onIn=${setWho} error=${error} />`;
  const View = page.view;
  const signOut = () => {
    setToken("");
    setError("");
    setWho(null);
  };
  return html`<div class="shell">
    <header>
      <span class="brand">muster</span>
      <nav>
        ${PAGES.map(
          (p) =>
            html`<a href=${`#${p.id}`} class=${p.id === page.id ? "active" : ""} aria-current=${p.id === page.id ? "page" : undefined}>${p.title}</a>`,
        )}
      </nav>
      <span class="who" title=${`on ${who.server}`}>${who.standalone ? "standalone: no authentication" : `${who.subject} · ${who.role}`}</span>
      ${who.standalone ? "" : html`<button class="link" onClick=${signOut}>Sign out</button>`}
    </header>
    <main><${View} key=${page.id} who=${who} /></main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("app"));
