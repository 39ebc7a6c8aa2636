// What updates cost: each page records the time from a batch of deltas to the page on screen,
// readable as `window.musterPerf` (the browser tests report it).

const KEEP = 2000;

export function perf(page, ms, rows) {
  if (globalThis.musterPerf === undefined) globalThis.musterPerf = {};
  const all = globalThis.musterPerf;
  if (all[page] === undefined) all[page] = [];
  const list = all[page];
  list.push({ ms, rows });
  if (list.length > KEEP) list.splice(0, list.length - KEEP);
}
