// The Runs page: every run with its state; the selected run's metric curves (from the
// `metrics` table), sample grids over time and eval figures; polled while it trains.
"use strict";
const $ = id => document.getElementById(id);
const st = { run: new URLSearchParams(location.search).get("run") || "", metrics: {}, lastStep: -1,
             shown: new Set(["d_loss", "g_loss"]), timer: null, samplesShown: "" };

async function loadRuns() {
  try {
    const runs = await getJson("/api/runs");
    if (!st.run && runs.length) st.run = runs[0].name;
    $("runs").replaceChildren(...runs.map(r => el("tr", { "data-run": r.name, class: r.name === st.run ? "here" : "",
                                                         onclick: () => selectRun(r.name) },
      el("td", {}, r.name), el("td", { class: "state-" + r.state }, r.state),
      el("td", {}, r.step + (r.steps ? " / " + r.steps : "")), el("td", {}, r.resolution || "-"),
      el("td", {}, r.view || "(all)"), el("td", {}, r.tagger || "-"), el("td", { class: "mute" }, r.updated_at))));
    if (!runs.length) $("error").textContent = "no runs in this workspace yet (moeforge train)";
    return runs.find(r => r.name === st.run);
  } catch (e) { $("error").textContent = e.message; return null; }
}

function selectRun(name) {
  st.run = name; st.metrics = {}; st.lastStep = -1; st.samplesShown = "";
  history.replaceState(null, "", "?run=" + encodeURIComponent(name));
  for (const tr of $("runs").children) tr.classList.toggle("here", tr.dataset.run === name);
  refresh();
}

async function loadMetrics() {
  const since = st.lastStep >= 0 ? "?since=" + st.lastStep : "";
  const m = await getJson("/api/runs/" + encodeURIComponent(st.run) + "/metrics" + since);
  for (const [k, pts] of Object.entries(m.metrics)) {
    st.metrics[k] = (st.metrics[k] || []).concat(pts);
    for (const p of pts) st.lastStep = Math.max(st.lastStep, p[0]);
  }
  const keys = $("keys");
  keys.replaceChildren(...Object.keys(st.metrics).sort().map(k => el("label", {},
    (() => { const c = el("input", { type: "checkbox", "data-key": k, onchange: ev => {
               if (ev.target.checked) st.shown.add(k); else st.shown.delete(k); draw(); } });
             c.checked = st.shown.has(k); return c; })(), " " + k)));
  draw();
  return m;
}
function draw() {
  const series = Object.keys(st.metrics).sort().filter(k => st.shown.has(k)).map(k => ({ name: k, points: st.metrics[k] }));
  drawChart($("chart"), series, { smooth: $("smooth").checked });
  $("chart").dataset.series = String(series.length);
  $("chart").dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
}

async function loadFiles() {
  const f = await getJson("/api/runs/" + encodeURIComponent(st.run) + "/files");
  const key = f.samples.join(",");
  if (key !== st.samplesShown) {
    st.samplesShown = key;
    $("strip").replaceChildren(...f.samples.map(s => {
      const src = "/files/sample/" + encodeURIComponent(st.run) + "/" + s;
      return el("figure", {}, el("img", { src, alt: "step " + s, loading: "lazy", onclick: () => zoom(src, s) }),
                el("figcaption", {}, "step " + s));
    }));
    if (!f.samples.length) $("strip").replaceChildren(el("span", { class: "mute" }, "no sample grids yet"));
  }
  const ev = $("eval");
  if (f.eval) {
    const rows = [];
    const flat = (o, p) => { for (const [k, v] of Object.entries(o)) {
      if (v && typeof v === "object" && !Array.isArray(v)) flat(v, p + k + "."); else rows.push([p + k, v]); } };
    flat(f.eval, "");
    ev.replaceChildren(el("table", {}, el("tbody", {}, ...rows.map(([k, v]) =>
      el("tr", {}, el("td", {}, k), el("td", {}, typeof v === "number" ? fmt(v, 4) : String(v)))))));
  } else {
    ev.textContent = "none saved: `moeforge eval -w WS --run " + st.run + " --json > WS/runs/" + st.run + "/eval.json` shows it here";
  }
}

function zoom(src, step) {
  $("detailbox").replaceChildren(el("p", {}, "step " + step + " ", el("button", { class: "plain", onclick: () => $("detail").classList.remove("open") }, "Close")),
                                 el("img", { src, style: "width:100%;image-rendering:pixelated" }));
  $("detail").classList.add("open");
}

async function refresh() {
  clearTimeout(st.timer);
  const run = await loadRuns();
  if (!run) return;
  try {
    await loadMetrics();
    await loadFiles();
    $("error").textContent = "";
  } catch (e) { $("error").textContent = e.message; }
  const live = run.state === "running";
  $("live").textContent = live ? "live: updating every 3 s" : "";
  document.body.dataset.loaded = String(Date.now());
  if (live) st.timer = setTimeout(refresh, 3000);
}

$("smooth").addEventListener("change", draw);
$("detail").addEventListener("click", ev => { if (ev.target.id === "detail") $("detail").classList.remove("open"); });
window.addEventListener("resize", draw);
header("runs");
refresh();
