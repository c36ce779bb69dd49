// A line chart on a <canvas>, no library: series of [x, y] points on shared axes with
// "nice" ticks, a legend, and optional exponential smoothing (the raw line kept faint).
"use strict";
const CHART_COLOURS = ["#3a5bd9", "#d9583a", "#2b9a4a", "#9a2b8f", "#c79a12", "#1a9aa8", "#555", "#e0457b"];

function niceTicks(lo, hi, n) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) || 10 * mag;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}
function ema(points, a) {
  let s = null;
  return points.map(([x, y]) => { s = s === null ? y : a * s + (1 - a) * y; return [x, s]; });
}

// series: [{name, points: [[x, y], ...]}]
function drawChart(canvas, series, opts) {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth || canvas.width, H = canvas.clientHeight || canvas.height;
  canvas.width = W * dpr; canvas.height = H * dpr;
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  g.font = "11px system-ui, sans-serif";
  const L = 56, R = 12, T = 12, B = 40;
  const all = series.flatMap(s => s.points);
  if (all.length === 0) {
    g.fillStyle = "#6b6b76"; g.fillText("no metrics yet", L, T + 20); return;
  }
  let x0 = Math.min(...all.map(p => p[0])), x1 = Math.max(...all.map(p => p[0]));
  let y0 = Math.min(...all.map(p => p[1])), y1 = Math.max(...all.map(p => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R), Y = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  g.strokeStyle = "#e3e3ea"; g.fillStyle = "#6b6b76"; g.lineWidth = 1;
  for (const t of niceTicks(y0, y1, 6)) {
    g.beginPath(); g.moveTo(L, Y(t)); g.lineTo(W - R, Y(t)); g.stroke();
    g.textAlign = "right"; g.fillText(String(t), L - 6, Y(t) + 4);
  }
  for (const t of niceTicks(x0, x1, 8)) {
    g.beginPath(); g.moveTo(X(t), T); g.lineTo(X(t), H - B); g.stroke();
    g.textAlign = "center"; g.fillText(String(t), X(t), H - B + 14);
  }
  g.textAlign = "center"; g.fillText("step", L + (W - L - R) / 2, H - 6);
  const line = (pts, colour, width, alpha) => {
    g.globalAlpha = alpha; g.strokeStyle = colour; g.lineWidth = width; g.beginPath();
    pts.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
    g.stroke(); g.globalAlpha = 1;
  };
  let lx = L + 8;
  series.forEach((s, i) => {
    const c = CHART_COLOURS[i % CHART_COLOURS.length];
    if (opts && opts.smooth && s.points.length > 2) { line(s.points, c, 1, 0.25); line(ema(s.points, 0.9), c, 2, 1); }
    else line(s.points, c, 1.5, 1);
    g.fillStyle = c; g.fillRect(lx, T + 2, 10, 10); g.fillStyle = "#1d1d22"; g.textAlign = "left";
    g.fillText(s.name, lx + 14, T + 11); lx += 24 + g.measureText(s.name).width;
  });
}
