// The Generate page: pick tags as the run's schema groups them (one hair colour, one eye
// colour, any binaries), a seed (new or kept noise), truncation, one image or a grid of
// variations; the PNG comes from /api/sample.png and can be downloaded.
"use strict";
const $ = id => document.getElementById(id);
let lastUrl = null;

function newSeed() { return Math.floor(Math.random() * 4294967296); }

let serverSnapshot = -1;  // --snapshot: what "default" generates with

async function loadRuns() {
  const [all, status] = await Promise.all([getJson("/api/runs"), getJson("/api/status")]);
  const runs = all.filter(r => r.has_checkpoint);
  serverSnapshot = status.snapshot;
  const want = new URLSearchParams(location.search).get("run") || status.run;
  $("run").replaceChildren(...runs.map(r => el("option", { value: r.name }, r.name + " (step " + r.step + ", " + r.resolution + " px)")));
  if (!runs.length) { $("groups").textContent = "no run with a checkpoint in this workspace (moeforge train)"; $("generate").disabled = true; return; }
  if (want && runs.some(r => r.name === want)) $("run").value = want;
  await loadRun();
}

async function loadRun() {
  const run = $("run").value;
  const [schema, files] = await Promise.all([getJson("/api/schema?run=" + encodeURIComponent(run)),
                                             getJson("/api/runs/" + encodeURIComponent(run) + "/files")]);
  $("snapshot").replaceChildren(el("option", { value: "" }, serverSnapshot >= 0 ? "snapshot " + serverSnapshot + " (--snapshot)" : "checkpoint"),
                                ...files.snapshots.map(s => el("option", { value: String(s) }, "snapshot " + s)));
  const box = $("groups");
  box.replaceChildren();
  box.classList.remove("mute");
  schema.groups.forEach((g, gi) => {
    const div = el("div", { class: "group", "data-group": g.name }, el("b", {}, g.name.replace(/_/g, " ")));
    if (g.exclusive) {
      const any = el("input", { type: "radio", name: "g" + gi, value: "" });
      any.checked = true;
      div.append(el("label", { title: "drawn from the data's frequencies" }, any, " any"));
    }
    for (const t of g.tags) {
      const input = el("input", { type: g.exclusive ? "radio" : "checkbox", name: "g" + gi, value: t, "data-tag": t });
      div.append(el("label", {}, input, " " + t.replace(/_(hair|eyes)$/, "")));
    }
    box.append(div);
  });
  const n = Math.min(36, schema.max_n);
  for (const o of $("n").options) o.disabled = Number(o.value) > n;
}

function chosenTags() {
  return [...document.querySelectorAll("#groups input:checked")].map(i => i.value).filter(v => v);
}

async function generate() {
  if (!$("keep").checked || $("seed").value === "") $("seed").value = newSeed();
  const p = new URLSearchParams({ run: $("run").value, tags: chosenTags().join(" "), seed: $("seed").value,
                                  n: $("grid").checked ? $("n").value : "1", truncation: $("truncation").value });
  if ($("snapshot").value) p.set("snapshot", $("snapshot").value);
  $("generate").disabled = true;
  $("error").textContent = "";
  const t0 = performance.now();
  try {
    const r = await fetch("/api/sample.png?" + p.toString(), { cache: "no-store" });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    const blob = await r.blob();
    if (lastUrl) URL.revokeObjectURL(lastUrl);
    lastUrl = URL.createObjectURL(blob);
    const img = $("out");
    await new Promise((ok, fail) => { img.onload = ok; img.onerror = () => fail(new Error("the image does not decode")); img.src = lastUrl; });
    const scale = Math.max(1, Math.floor(512 / Math.max(img.naturalWidth, 1)));
    img.style.width = (img.naturalWidth * scale) + "px";
    $("download").href = lastUrl;
    $("download").download = "moeforge-" + $("run").value + "-" + r.headers.get("X-Moeforge-Seed") + ".png";
    $("download").classList.remove("mute");
    $("info").textContent = "seed " + r.headers.get("X-Moeforge-Seed") + ", tags: " + (chosenTags().join(" ") || "(drawn)") +
      ", " + img.naturalWidth + "×" + img.naturalHeight + " px in " + Math.round(performance.now() - t0) + " ms";
    document.body.dataset.generated = String(Number(document.body.dataset.generated || 0) + 1);
  } catch (e) {
    $("error").textContent = e.message;
  } finally {
    $("generate").disabled = false;
  }
}

$("reroll").addEventListener("click", () => { $("seed").value = newSeed(); generate(); });
$("generate").addEventListener("click", generate);
$("truncation").addEventListener("input", () => { $("psi").textContent = Number($("truncation").value).toFixed(2); });
$("run").addEventListener("change", () => loadRun().catch(e => { $("error").textContent = e.message; }));
$("seed").value = newSeed();
header("generate");
loadRuns().then(() => { document.body.dataset.loaded = "1"; }).catch(e => { $("error").textContent = e.message; });
