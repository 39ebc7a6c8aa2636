// A run's chart (uPlot): QPS on the left axis, latency percentiles (ms) on the right, one point
// per merged interval; combined, or the QPS and p99 of each instance.

import { html, useEffect, useRef } from "../vendor/preact-htm.js";
import uPlot from "../vendor/uplot.js";

const COLORS = ["#2b5fd9", "#1f8a4c", "#b7791f", "#c53030", "#6b46c1", "#2c7a7b", "#b83280", "#4a5568"];

function shape(intervals, perInstance) {
  // x: seconds since the run's first interval began, over every stage.
  const xs = [];
  let t = 0;
  for (const i of intervals) {
    t += i.seconds;
    xs.push(Math.round(t * 10) / 10);
  }
  if (!perInstance) {
    const series = [
      { label: "QPS", stroke: COLORS[0], scale: "qps", width: 2 },
      { label: "p50 ms", stroke: COLORS[1], scale: "ms" },
      { label: "p95 ms", stroke: COLORS[2], scale: "ms" },
      { label: "p99 ms", stroke: COLORS[3], scale: "ms" },
    ];
    const data = [
      xs,
      intervals.map((i) => i.combined.qps),
      intervals.map((i) => i.combined.p50Us / 1000),
      intervals.map((i) => i.combined.p95Us / 1000),
      intervals.map((i) => i.combined.p99Us / 1000),
    ];
    return { series, data, key: "combined" };
  }
  // Each instance: its QPS (solid) and its p99 (dashed), in the same colour.
  const names = [...new Set(intervals.flatMap((i) => i.instances.map((x) => x.instance)))].sort();
  const of = (n, i) => i.instances.find((x) => x.instance === n);
  const series = names.flatMap((n, k) => [
    { label: `${n} QPS`, stroke: COLORS[k % COLORS.length], scale: "qps" },
    { label: `${n} p99 ms`, stroke: COLORS[k % COLORS.length], scale: "ms", dash: [4, 4] },
  ]);
  const data = [
    xs,
    ...names.flatMap((n) => [
      intervals.map((i) => of(n, i)?.qps ?? null),
      intervals.map((i) => {
        const x = of(n, i);
        return x === undefined ? null : x.p99Us / 1000;
      }),
    ]),
  ];
  return { series, data, key: `each:${names.join(",")}` };
}

export function RunChart({ intervals, perInstance }) {
  const box = useRef(null);
  const plot = useRef(undefined);
  const { series, data, key } = shape(intervals, perInstance);
  useEffect(() => {
    const el = box.current;
    const width = Math.max(320, el.clientWidth);
    plot.current?.destroy();
    plot.current = new uPlot(
      {
        width,
        height: 260,
        series: [{ label: "s" }, ...series],
        scales: { x: { time: false } },
        axes: [
          { label: "seconds" },
          { scale: "qps", label: "QPS" },
          { scale: "ms", side: 1, label: "ms", grid: { show: false } },
        ],
      },
      data,
      el,
    );
    return () => {
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, [key]);
  useEffect(() => {
    plot.current?.setData(data);
  });
  return html`<div class="chart" ref=${box} aria-label="run chart" data-points=${intervals.length}></div>`;
}
