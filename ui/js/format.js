// Small helpers shared by the pages.

import { html } from "../vendor/preact-htm.js";

export function ago(ms) {
  if (!ms) return "–";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export function bytes(n) {
  if (n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function badge(state) {
  return html`<span class=${`badge s-${state}`}>${state}</span>`;
}

export function labels(obj) {
  const entries = Object.entries(obj ?? {});
  if (entries.length === 0) return "";
  return entries.map(([k, v]) => `${k}=${v}`).join(", ");
}

/** Compares names as `muster agents` sorts them. */
export function byName(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A JSON value shown short (one line, clipped). */
export function short(value, max = 80) {
  const text = value === undefined ? "" : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
