// Shared by the studio's pages: fetch JSON with the server's error message, escape text,
// mark the current page in the header.
"use strict";
async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || (r.status + " " + r.statusText));
  return body;
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function fmt(x, d) { return x === null || x === undefined ? "-" : Number(x).toFixed(d === undefined ? 2 : d); }
function header(here) {
  const h = document.querySelector("header");
  for (const a of h.querySelectorAll("a")) if (a.dataset.page === here) a.classList.add("here");
}
