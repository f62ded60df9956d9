// Charts as inline SVG, drawn from plain data by pure functions: each returns a new <svg>
// element (no global state, no network), so tests can draw them from any data.
// Colours are SVG presentation attributes, allowed by the console's CSP (no style attributes).

import { s } from "./dom.js";

export const PALETTE = [
  "#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed",
  "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569",
];
export const LAG_BUCKETS = [
  ["le_100", "≤ 100 ms"],
  ["le_1000", "≤ 1 s"],
  ["le_10000", "≤ 10 s"],
  ["le_60000", "≤ 60 s"],
  ["over", "> 60 s"],
];

const WIDTH = 640;
const MARGIN = { top: 16, right: 16, bottom: 56, left: 56 };
let chartCount = 0;

/** A round axis maximum at or above value, and its tick step (4 or 5 ticks). */
export function niceScale(value) {
  if (!(value > 0)) return { max: 1, step: 0.25 };
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    const step = (factor * magnitude) / 4;
    if (step * 4 >= value) return { max: step * 4, step };
  }
  return { max: 10 * magnitude, step: 2.5 * magnitude };
}

/** A short number: 1234 -> "1.2k". */
export function shortNumber(value) {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return `${+value.toFixed(2)}`;
}

/** An <svg role="img"> with a <title> (and aria-label) naming it. */
function frame(title, height) {
  const id = `chart-title-${++chartCount}`;
  return s(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${height}`,
      role: "img",
      "aria-labelledby": id,
      "aria-label": title,
      class: "chart",
      preserveAspectRatio: "xMinYMin meet",
    },
    s("title", { id }, title),
  );
}

/** The chart of nothing: its title and a "No data" message. */
export function emptyChart(title, message = "No data for this period") {
  const svg = frame(title, 120);
  svg.classList.add("chart-empty");
  svg.append(
    s("text", { x: WIDTH / 2, y: 64, "text-anchor": "middle", class: "chart-empty-text", fill: "#64748b" }, message),
  );
  return svg;
}

function legend(svg, names, y) {
  let x = MARGIN.left;
  const group = s("g", { class: "chart-legend" });
  names.forEach((name, index) => {
    group.append(
      s("rect", { x, y: y - 10, width: 12, height: 12, fill: PALETTE[index % PALETTE.length] }),
      s("text", { x: x + 16, y, "font-size": 12, fill: "#334155" }, name),
    );
    x += 28 + 7 * String(name).length;
  });
  svg.append(group);
}

/**
 * Vertical stacked bars: one bar per category, one stack segment per series.
 * value(category, series) -> number (>= 0). Returns an <svg>; an empty chart without data.
 */
export function stackedBars({ title, categories, series, value, yLabel = "" }) {
  const totals = categories.map((category) =>
    series.reduce((sum, name) => sum + Math.max(0, value(category, name) || 0), 0),
  );
  if (!categories.length || !series.length || totals.every((total) => total === 0)) {
    return emptyChart(title);
  }
  const height = 300;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const { max, step } = niceScale(Math.max(...totals));
  const y = (v) => MARGIN.top + plotHeight - (v / max) * plotHeight;
  const svg = frame(title, height + 24);
  const axes = s("g", { class: "chart-axes", "font-size": 11, fill: "#475569" });
  for (let tick = 0; tick <= max + step / 2; tick += step) {
    axes.append(
      s("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(tick), y2: y(tick), stroke: "#e2e8f0" }),
      s("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, shortNumber(tick)),
    );
  }
  axes.append(
    s("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: y(0), stroke: "#94a3b8" }),
    s("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(0), y2: y(0), stroke: "#94a3b8" }),
  );
  if (yLabel) {
    axes.append(
      s("text", { x: 12, y: MARGIN.top + plotHeight / 2, "text-anchor": "middle",
        transform: `rotate(-90 12 ${MARGIN.top + plotHeight / 2})` }, yLabel),
    );
  }
  svg.append(axes);
  const band = plotWidth / categories.length;
  const barWidth = Math.max(2, Math.min(48, band * 0.7));
  // At most about 12 category labels, whatever the number of bars.
  const labelEvery = Math.ceil(categories.length / 12);
  const bars = s("g", { class: "chart-bars" });
  categories.forEach((category, index) => {
    const x = MARGIN.left + band * index + (band - barWidth) / 2;
    let base = 0;
    series.forEach((name, seriesIndex) => {
      const v = Math.max(0, value(category, name) || 0);
      if (v === 0) return;
      bars.append(
        s("rect", {
          x, y: y(base + v), width: barWidth, height: y(base) - y(base + v),
          fill: PALETTE[seriesIndex % PALETTE.length], "data-series": name, "data-category": category,
        }, s("title", {}, `${category} · ${name}: ${v}`)),
      );
      base += v;
    });
    if (index % labelEvery === 0) {
      bars.append(
        s("text", { x: x + barWidth / 2, y: y(0) + 16, "text-anchor": "middle", "font-size": 11, fill: "#475569",
          class: "chart-category" }, category),
      );
    }
  });
  svg.append(bars);
  legend(svg, series, height + 12);
  return svg;
}

/**
 * Horizontal bars, one per row: rows [{label, value}], negative values drawn left of zero.
 */
export function horizontalBars({ title, rows }) {
  if (!rows.length || rows.every((row) => !row.value)) return emptyChart(title);
  const rowHeight = 26;
  const left = 140;
  const height = MARGIN.top + rows.length * rowHeight + 36;
  const plotWidth = WIDTH - left - MARGIN.right;
  const low = Math.min(0, ...rows.map((row) => row.value));
  const high = Math.max(0, ...rows.map((row) => row.value));
  const { max } = niceScale(Math.max(high, -low));
  const negative = low < 0;
  const span = negative ? 2 * max : max;
  const x = (v) => left + ((v + (negative ? max : 0)) / span) * plotWidth;
  const svg = frame(title, height);
  const axis = s("g", { class: "chart-axes", "font-size": 11, fill: "#475569" });
  const bottom = MARGIN.top + rows.length * rowHeight;
  const ticks = negative ? [-max, -max / 2, 0, max / 2, max] : [0, max / 4, max / 2, (3 * max) / 4, max];
  for (const tick of ticks) {
    axis.append(
      s("line", { x1: x(tick), x2: x(tick), y1: MARGIN.top, y2: bottom, stroke: tick === 0 ? "#94a3b8" : "#e2e8f0" }),
      s("text", { x: x(tick), y: bottom + 16, "text-anchor": "middle" }, shortNumber(tick)),
    );
  }
  svg.append(axis);
  const bars = s("g", { class: "chart-bars" });
  rows.forEach((row, index) => {
    const top = MARGIN.top + index * rowHeight + 4;
    const from = x(Math.min(0, row.value));
    const width = Math.abs(x(row.value) - x(0));
    bars.append(
      s("text", { x: left - 8, y: top + 13, "text-anchor": "end", "font-size": 12, fill: "#334155",
        class: "chart-category" }, row.label),
      s("rect", { x: from, y: top, width: Math.max(width, 1), height: rowHeight - 8,
        fill: row.value < 0 ? PALETTE[3] : PALETTE[0], "data-category": row.label },
        s("title", {}, `${row.label}: ${row.value}`)),
      s("text", { x: x(row.value) + (row.value < 0 ? -4 : 4), y: top + 13, "font-size": 11, fill: "#334155",
        "text-anchor": row.value < 0 ? "end" : "start" }, String(row.value)),
    );
  });
  svg.append(bars);
  return svg;
}

/** A horizontal gauge of a ratio in [0, 1]; null (no reads yet) is an empty chart. */
export function ratioGauge({ title, ratio, detail = "" }) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) {
    return emptyChart(title, "No cache reads yet");
  }
  const clamped = Math.min(1, Math.max(0, ratio));
  const svg = frame(title, 84);
  const left = MARGIN.left;
  const width = WIDTH - left - MARGIN.right;
  svg.append(
    s("rect", { x: left, y: 16, width, height: 24, rx: 4, fill: "#e2e8f0" }),
    s("rect", { x: left, y: 16, width: width * clamped, height: 24, rx: 4, fill: PALETTE[1], class: "gauge-fill" }),
    s("text", { x: left, y: 60, "font-size": 12, fill: "#475569" }, "0%"),
    s("text", { x: left + width, y: 60, "font-size": 12, fill: "#475569", "text-anchor": "end" }, "100%"),
    s("text", { x: left + width / 2, y: 60, "font-size": 13, "font-weight": 600, fill: "#0f172a",
      "text-anchor": "middle", class: "gauge-value" }, `${(clamped * 100).toFixed(1)}%${detail ? ` (${detail})` : ""}`),
  );
  return svg;
}

/**
 * Every day from the first to the last of days (YYYY-MM-DD, sorted): a day without changes
 * has no row in the API's answer but must still take its place on the axis.
 */
export function dayRange(days) {
  const sorted = [...new Set(days)].sort();
  if (sorted.length < 2) return sorted;
  const range = [];
  const last = new Date(`${sorted[sorted.length - 1]}T00:00:00Z`);
  // At most about two years of days: more would not be readable as bars anyway.
  for (let day = new Date(`${sorted[0]}T00:00:00Z`); day <= last && range.length < 800;
    day = new Date(day.getTime() + 86_400_000)) {
    range.push(day.toISOString().slice(0, 10));
  }
  return range;
}

/** Volume per day, stacked by status: the rows of GET /v1/analytics/volume. */
export function volumeChart(days, metric = "created") {
  const categories = dayRange(days.map((row) => row.day));
  const series = [...new Set(days.map((row) => row.status))].sort();
  const cells = new Map(days.map((row) => [`${row.day}\u0000${row.status}`, row[metric] || 0]));
  return stackedBars({
    title: `Documents ${metric} per day, by status`,
    categories,
    series,
    value: (day, status) => cells.get(`${day}\u0000${status}`) || 0,
    yLabel: metric,
  });
}

/** One bar per key of GET /v1/analytics/breakdown, for metric (net may be negative). */
export function breakdownChart(by, rows, metric = "net") {
  return horizontalBars({
    title: `${metric} by ${by}`,
    rows: rows.map((row) => ({ label: row.key, value: row[metric] || 0 })),
  });
}

/** Sync lag per day, stacked by latency bucket: the days of GET /v1/analytics/sync-lag. */
export function syncLagChart(days) {
  const byDay = new Map(days.map((row) => [row.day, row.buckets || {}]));
  const labels = new Map(LAG_BUCKETS.map(([name, label]) => [label, name]));
  return stackedBars({
    title: "Sync lag per day, by latency bucket",
    categories: dayRange([...byDay.keys()]),
    series: LAG_BUCKETS.map(([, label]) => label),
    value: (day, label) => (byDay.get(day) || {})[labels.get(label)] || 0,
    yLabel: "changes",
  });
}
