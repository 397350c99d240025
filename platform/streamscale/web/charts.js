// Line charts drawn by hand as inline SVG from the analytics series
// (GET /api/streams/{id}/analytics): no chart library and no build step, and nothing that
// the page's CSP (no inline script or style) would refuse: elements are made with
// createElementNS and coloured by classes in dashboard.css, never by style attributes.
//
// Accessible: each chart is role="img" with a <title> and a <desc> saying the range and
// the latest and highest values, and the caller gets the same summary as text for a
// visible caption, so a screen reader (or a test) need not read the drawing.

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 200;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

let chartCount = 0;

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** A "nice" upper bound for the y axis (1, 2, 2.5 or 5 times a power of ten). */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

export function formatNumber(value, digits = 1) {
  if (!Number.isFinite(value)) return "–";
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en");
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

function formatTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/**
 * Points {t: epoch ms, v: number} from a series of objects with an ISO `at` and a field.
 */
export function series(items, field) {
  return items
    .map((p) => ({ t: Date.parse(p.at), v: Number(p[field]) }))
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v))
    .sort((a, b) => a.t - b.t);
}

/** The text summary of a series: what <desc> and the caption say. */
export function describe(points, { label, unit }) {
  if (points.length === 0) return `${label}: no data yet.`;
  const last = points[points.length - 1].v;
  const max = Math.max(...points.map((p) => p.v));
  const from = formatTime(points[0].t);
  const to = formatTime(points[points.length - 1].t);
  const count = `${points.length} ${points.length === 1 ? "point" : "points"}`;
  return `${label} from ${from} to ${to}: latest ${formatNumber(last)}, ` +
    `highest ${formatNumber(max)} (${unit}; ${count}).`;
}

/**
 * Draw a line chart into `container` (replacing what was there) and return its summary.
 * options: label (chart name), unit (y unit, words), kind ("line" or "bars").
 */
export function drawChart(container, points, { label, unit, kind = "line" }) {
  // drawn at the width it is shown at, so the labels keep their size on a phone
  const WIDTH = Math.round(Math.min(960, Math.max(280, container.clientWidth || 640)));
  chartCount += 1;
  const id = `chart-${chartCount}`;
  const summary = describe(points, { label, unit });
  const svg = el("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart",
    "aria-labelledby": `${id}-title ${id}-desc`,
  });
  svg.append(el("title", { id: `${id}-title` }, label));
  svg.append(el("desc", { id: `${id}-desc` }, summary));

  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const maxV = niceMax(Math.max(0, ...points.map((p) => p.v)));
  const t0 = points.length ? points[0].t : 0;
  const t1 = points.length ? points[points.length - 1].t : 1;
  const span = Math.max(t1 - t0, 1);
  const x = (t) => PAD.left + ((t - t0) / span) * plotW;
  const y = (v) => PAD.top + plotH - (v / maxV) * plotH;

  // y grid and labels: 0, half, max
  for (const v of [0, maxV / 2, maxV]) {
    svg.append(el("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v),
                            class: "chart-grid" }));
    svg.append(el("text", { x: PAD.left - 6, y: y(v) + 4, class: "chart-label",
                            "text-anchor": "end" }, formatNumber(v)));
  }
  svg.append(el("text", { x: PAD.left, y: HEIGHT - 8, class: "chart-label",
                          "text-anchor": "start" }, points.length ? formatTime(t0) : ""));
  svg.append(el("text", { x: WIDTH - PAD.right, y: HEIGHT - 8, class: "chart-label",
                          "text-anchor": "end" }, points.length > 1 ? formatTime(t1) : ""));

  if (points.length === 0) {
    svg.append(el("text", { x: WIDTH / 2, y: HEIGHT / 2, class: "chart-empty",
                            "text-anchor": "middle" }, "No data yet"));
  } else if (kind === "bars") {
    const barW = Math.max(2, Math.min(24, plotW / Math.max(points.length, 1) - 2));
    for (const p of points) {
      const left = points.length === 1 ? PAD.left + plotW / 2 - barW / 2 : x(p.t) - barW / 2;
      svg.append(el("rect", { x: Math.max(PAD.left, left), y: y(p.v), width: barW,
                              height: Math.max(0, y(0) - y(p.v)), class: "chart-bar" }));
    }
  } else {
    const coords = points.length === 1
      ? [[PAD.left, y(points[0].v)], [WIDTH - PAD.right, y(points[0].v)]]
      : points.map((p) => [x(p.t), y(p.v)]);
    const d = coords.map(([a, b], i) => `${i ? "L" : "M"}${a.toFixed(1)},${b.toFixed(1)}`)
      .join(" ");
    const area = `${d} L${coords[coords.length - 1][0].toFixed(1)},${y(0)} ` +
      `L${coords[0][0].toFixed(1)},${y(0)} Z`;
    svg.append(el("path", { d: area, class: "chart-area" }));
    svg.append(el("path", { d, class: "chart-line" }));
  }
  container.replaceChildren(svg);
  return summary;
}
