// A table that renders only the rows in view (and a few around): 10,000 rows cost what 40 do.

import { html, useEffect, useRef, useState } from "../vendor/preact-htm.js";

const OVERSCAN = 8;

/**
 * columns: [{ key, title, width (CSS grid track), render(row) }]; rows: the whole list;
 * rowKey(row); onRow(row) when a row is clicked; rowClass(row) for extra classes.
 */
export function VirtualTable({ columns, rows, rowKey, rowHeight = 28, onRow, rowClass, label }) {
  const box = useRef(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    let frame = 0;
    const measure = () => {
      frame = 0;
      setView({ top: el.scrollTop, height: el.clientHeight });
    };
    const onScroll = () => {
      if (frame === 0) frame = requestAnimationFrame(measure);
    };
    measure();
    el.addEventListener("scroll", onScroll, { passive: true });
    const ro = new ResizeObserver(onScroll);
    ro.observe(el);
    return () => {
      el.removeEventListener("scroll", onScroll);
      ro.disconnect();
      if (frame !== 0) cancelAnimationFrame(frame);
    };
  }, []);
  const template = { gridTemplateColumns: columns.map((c) => c.width ?? "1fr").join(" ") };
  const first = Math.max(0, Math.floor(view.top / rowHeight) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((view.top + view.height) / rowHeight) + OVERSCAN);
  const shown = [];
  for (let i = first; i < last; i++) {
    const row = rows[i];
    shown.push(html`<div
      class=${`vrow ${rowClass ? rowClass(row) : ""} ${onRow ? "clickable" : ""}`}
      role="row"
      key=${rowKey(row)}
      data-key=${rowKey(row)}
      style=${{ ...template, transform: `translateY(${i * rowHeight}px)`, height: `${rowHeight}px` }}
      onClick=${onRow ? () => onRow(row) : undefined}
    >
      ${columns.map((c) => html`<div class="vcell" role="cell">${c.render(row)}</div>`)}
    </div>`);
  }
  return html`<div class="vtable" role="table" aria-label=${label} aria-rowcount=${rows.length}>
    <div class="vhead" role="row" style=${template}>
      ${columns.map((c) => html`<div class="vcell" role="columnheader">${c.title}</div>`)}
    </div>
    <div class="vbody" ref=${box}>
      <div class="vspace" style=${{ height: `${rows.length * rowHeight}px` }}>${shown}</div>
    </div>
  </div>`;
}
