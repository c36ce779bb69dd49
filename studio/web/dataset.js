// The Dataset page: a keyset-paged grid of face crops for a view and a filter (the filter
// language of docs/filters.md), the views with their counts, a histogram of the tags of
// the current selection, and a face's source illustration with its detection boxes.
"use strict";
const state = { view: "", filter: "", sort: "face_id", desc: false, cursors: [""], page: 0 };
const $ = id => document.getElementById(id);

function readUrl() {
  const p = new URLSearchParams(location.search);
  state.view = p.get("view") || "";
  state.filter = p.get("filter") || "";
  state.sort = p.get("sort") || "face_id";
  state.desc = p.get("desc") === "1";
}
function writeUrl() {
  const p = new URLSearchParams();
  if (state.view) p.set("view", state.view);
  if (state.filter) p.set("filter", state.filter);
  if (state.sort !== "face_id") p.set("sort", state.sort);
  if (state.desc) p.set("desc", "1");
  const q = p.toString();
  history.replaceState(null, "", q ? "?" + q : location.pathname);
}
function selectionParams() {
  const p = new URLSearchParams({ view: state.view, filter: state.filter });
  return p.toString();
}

async function loadViews() {
  const ul = $("views");
  try {
    const views = await getJson("/api/views");
    ul.replaceChildren();
    const all = el("li", { "data-view": "", onclick: () => setView("") }, "all faces");
    ul.append(all);
    for (const v of views) {
      const n = v.error ? "error" : v.selected + " / " + v.of;
      ul.append(el("li", { "data-view": v.name, title: v.filter || "(no filter)", onclick: () => setView(v.name) },
                   v.name + " ", el("span", { class: "mute" }, n)));
    }
    markView();
  } catch (e) { ul.replaceChildren(el("li", { class: "error" }, e.message)); }
}
function markView() {
  for (const li of $("views").children) li.classList.toggle("here", li.dataset.view === state.view);
}
function setView(v) { state.view = v; markView(); reload(); }

function addTag(tag) {
  const f = state.filter.trim();
  state.filter = f ? "(" + f + ") and " + tag : tag;
  $("filter").value = state.filter;
  reload();
}

async function loadHistogram() {
  const ul = $("histogram");
  try {
    const h = await getJson("/api/histogram?" + selectionParams());
    $("total").textContent = h.total + " faces selected" + (h.tagger ? " (tags: " + h.tagger + ")" : "");
    ul.replaceChildren();
    const max = Math.max(1, ...Object.values(h.tags));
    for (const g of h.groups) {
      ul.append(el("li", { class: "grp" }, g.name));
      for (const t of g.tags) {
        const n = h.tags[t] || 0;
        const bar = el("div", { class: "bar" });
        bar.style.width = (100 * n / max).toFixed(1) + "%";
        ul.append(el("li", { "data-tag": t, title: "add '" + t + "' to the filter", onclick: () => addTag(t) },
                     t, el("div", {}, bar), el("span", { class: "n" }, n)));
      }
    }
  } catch (e) { $("total").textContent = ""; ul.replaceChildren(); }
}

function faceCard(f) {
  const chips = el("div", { class: "chips" });
  for (const t of (f.tags || []).filter(t => t.on))
    chips.append(el("button", { class: "chip", type: "button", "data-tag": t.tag, title: "score " + fmt(t.score),
                                onclick: ev => { ev.stopPropagation(); addTag(t.tag); } }, t.tag));
  return el("div", { class: "face", "data-id": f.id, onclick: () => openFace(f.id) },
            el("img", { src: f.crop, alt: "face " + f.id, loading: "lazy" }),
            el("div", { class: "meta" }, el("span", {}, "#" + f.id), el("span", {}, f.score === null ? "" : fmt(f.score))),
            chips);
}

async function loadPage() {
  const p = new URLSearchParams({ view: state.view, filter: state.filter, sort: state.sort,
                                  desc: state.desc ? "1" : "0", after: state.cursors[state.page], limit: "60" });
  $("error").textContent = "";
  try {
    const page = await getJson("/api/faces?" + p.toString());
    $("grid").replaceChildren(...page.faces.map(faceCard));
    state.cursors.length = state.page + 1;
    if (page.next) state.cursors.push(page.next);
    $("next").disabled = !page.next;
    $("prev").disabled = state.page === 0;
    $("first").disabled = state.page === 0;
    $("pageinfo").textContent = "page " + (state.page + 1) + ", " + page.faces.length + " faces";
    document.body.dataset.loaded = String(Date.now());
  } catch (e) {
    $("grid").replaceChildren();
    $("error").textContent = e.message;
    $("next").disabled = true;
    document.body.dataset.loaded = String(Date.now());
  }
}

function reload() {
  state.cursors = [""];
  state.page = 0;
  writeUrl();
  loadPage();
  loadHistogram();
}

async function openFace(id) {
  const box = $("detailbox");
  box.replaceChildren(el("p", { class: "mute" }, "loading face " + id + "…"));
  $("detail").classList.add("open");
  try {
    const f = await getJson("/api/face/" + id);
    const tags = el("div", { class: "chips" });
    for (const t of (f.tags || []).filter(t => t.on)) tags.append(el("span", { class: "chip" }, t.tag + " " + fmt(t.score)));
    const posts = el("div", {});
    for (const p of f.posts) {
      posts.append(el("p", {}, el("b", {}, p.source + " post " + p.remote_id), " (" + (p.rating || "unrated") + ")"),
                   el("p", { class: "source-tags" }, p.source_tags || "(no source tags)"));
    }
    box.replaceChildren(
      el("div", { class: "toolbar" }, el("b", {}, "Face #" + f.id), el("span", { class: "mute" },
         f.detector + ", score " + fmt(f.score) + ", " + f.boxes.length + " face(s) in the image, " +
         (f.image_width || "?") + "×" + (f.image_height || "?") + " px"),
         el("button", { type: "button", class: "plain", id: "close", onclick: closeFace }, "Close")),
      el("div", { class: "row" },
         el("div", { class: "col" }, el("img", { class: "src", id: "srcimg", src: f.image, alt: "source of face " + f.id })),
         el("div", { class: "side" },
            el("img", { src: f.crop, alt: "crop", style: "width:128px;image-rendering:pixelated" }),
            el("h4", {}, "Tags (" + (f.tagger || "no tagger") + ")"), tags,
            el("h4", {}, "Source"), posts)));
  } catch (e) { box.replaceChildren(el("p", { class: "error" }, e.message), el("button", { onclick: closeFace }, "Close")); }
}
function closeFace() { $("detail").classList.remove("open"); }

readUrl();
$("filter").value = state.filter;
$("sort").value = state.sort;
$("desc").checked = state.desc;
$("query").addEventListener("submit", ev => {
  ev.preventDefault();
  state.filter = $("filter").value;
  state.sort = $("sort").value;
  state.desc = $("desc").checked;
  reload();
});
$("next").addEventListener("click", () => { if (state.cursors[state.page + 1] !== undefined) { state.page++; loadPage(); } });
$("prev").addEventListener("click", () => { if (state.page > 0) { state.page--; loadPage(); } });
$("first").addEventListener("click", () => { state.page = 0; loadPage(); });
$("detail").addEventListener("click", ev => { if (ev.target.id === "detail") closeFace(); });
document.addEventListener("keydown", ev => { if (ev.key === "Escape") closeFace(); });
header("dataset");
(async () => {
  // Tag names of the newest tagger become sort keys.
  try {
    const h = await getJson("/api/histogram?filter=false");
    for (const g of h.groups) for (const t of g.tags) $("sort").append(el("option", { value: "tag:" + t }, "score: " + t));
    $("sort").value = state.sort;
  } catch (e) { /* no tagger yet: no tag sort keys */ }
})();
loadViews();
reload();
