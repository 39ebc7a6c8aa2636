// One live stream per page: server-sent events read with fetch (so that the token goes in a
// header), a snapshot first and then deltas. On a cut it reconnects with the last event id it
// saw: the server replays what was missed, or sends a new snapshot. Deltas are handed over once
// per animation frame, however many arrive in between.

import { authHeaders, pieces } from "./api.js";

/**
 * Opens the stream of `path`. `onSnapshot(message)` for each snapshot, `onEvents(events)` with
 * the deltas of a frame, `onStatus({ state, message })` as the link goes up and down
 * (`live`, `reconnecting`, `refused`). Returns { close }.
 */
export function openLive(path, { onSnapshot, onEvents, onStatus = () => {} }) {
  let lastId;
  let stopped = false;
  let controller;
  let pending = [];
  let frame = 0;
  let attempt = 0;
  let holdUntil = 0;
  const stats = { path, snapshots: 0, reconnects: 0, events: 0 };

  const deliver = () => {
    frame = 0;
    const batch = pending;
    pending = [];
    if (batch.length > 0 && !stopped) onEvents(batch);
  };

  const onMessage = (data, id) => {
    if (id !== undefined) lastId = id;
    const message = JSON.parse(data);
    if (message.type === "skip") return;
    if (message.type === "snapshot") {
      // Deltas before a snapshot are replaced by it.
      stats.snapshots++;
      pending = [];
      onSnapshot(message);
      return;
    }
    stats.events++;
    pending.push(message);
    // Hidden tabs get no animation frames: deliver on a timer there.
    if (frame === 0) frame = document.hidden ? setTimeout(deliver, 250) : requestAnimationFrame(deliver);
  };

  const run = async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const headers = authHeaders({ accept: "text/event-stream" });
        if (lastId !== undefined) headers["last-event-id"] = lastId;
        const res = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
        if (res.status === 401 || res.status === 403 || res.status === 400 || res.status === 404) {
          const body = await res.json().catch(() => ({}));
          onStatus({ state: "refused", message: body.message ?? `HTTP ${res.status}`, status: res.status });
          return;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        attempt = 0;
        onStatus({ state: "live", message: "live" });
        await readEvents(res, onMessage);
        if (!stopped) onStatus({ state: "reconnecting", message: "the stream ended; reconnecting" });
      } catch (err) {
        if (stopped) return;
        onStatus({ state: "reconnecting", message: `the stream was cut (${err.message}); reconnecting` });
      }
      attempt++;
      stats.reconnects++;
      const delay = Math.min(5000, 250 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
      await new Promise((r) => setTimeout(r, Math.max(delay, holdUntil - Date.now())));
    }
  };
  run();
  const live = {
    stats,
    close() {
      stopped = true;
      controller?.abort();
      if (globalThis.musterLive === live) globalThis.musterLive = undefined;
    },
    /** Cuts the connection, which comes back after `holdMs` at the least (tests of the replay). */
    cut(holdMs = 0) {
      holdUntil = Date.now() + holdMs;
      controller?.abort();
    },
  };
  // The page's stream, for the browser tests and for a look from the developer tools.
  globalThis.musterLive = live;
  return live;
}

/** Parses the text/event-stream of `res`, calling `handle(data, id)` for each message. */
async function readEvents(res, handle) {
  // A message cut off by the end of the response is dropped: the reconnect replays it.
  for await (const block of pieces(res, "\n\n")) {
    let data = "";
    let id;
    for (const line of block.split("\n")) {
      if (line.startsWith("data: ")) data += line.slice(6);
      else if (line.startsWith("id: ")) id = line.slice(4);
    }
    if (data !== "") handle(data, id);
  }
}
