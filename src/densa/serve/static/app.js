// densa search page: one request per channel (and one for their fusion), results side by side.
"use strict";

// What each kind of channel matches on, shown under its name.
const KIND_NOTES = { bm25: "keywords", dense: "meaning" };
let modes = []; // [{ mode, kind }] from GET /channels: each channel, then "hybrid" when there are several

async function loadChannels() {
  const response = await fetch("/channels");
  const channels = await response.json();
  const bm25First = [...channels].sort((a, b) => (a.kind === "bm25" ? -1 : 0) - (b.kind === "bm25" ? -1 : 0));
  modes = bm25First.map((c) => ({ mode: c.name, kind: c.kind }));
  if (channels.length > 1) modes.push({ mode: "hybrid", kind: "fused" });
  const main = document.getElementById("columns");
  main.innerHTML = "";
  for (const { mode, kind } of modes) {
    const section = document.createElement("section");
    section.className = "column";
    section.dataset.mode = mode;
    const note = KIND_NOTES[kind] || kind;
    section.innerHTML = `<h2>${escapeHtml(mode)} <small>${escapeHtml(note)}</small></h2><ol class="hits"></ol>`;
    section.dataset.kind = kind;
    main.appendChild(section);
  }
}
const STOP = new Set(["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is", "it",
  "of", "on", "or", "that", "the", "to", "was", "what", "when", "where", "which", "who", "why", "with"]);

function queryWords(query) {
  return [...new Set((query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((w) => w.length > 1 && !STOP.has(w)))];
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function highlight(text, words) {
  const safe = escapeHtml(text);
  if (!words.length) return safe;
  const pattern = new RegExp(`\\b(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})\\w*`, "giu");
  return safe.replace(pattern, (m) => `<mark>${m}</mark>`);
}

function sharesWord(hit, words) {
  const text = `${hit.title} ${hit.snippet}`.toLowerCase();
  return words.some((w) => new RegExp(`\\b${w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "u").test(text));
}

function render(mode, hits, words) {
  const column = [...document.querySelectorAll(".column")].find((c) => c.dataset.mode === mode);
  const list = column.querySelector(".hits");
  list.innerHTML = "";
  if (!hits.length) {
    list.innerHTML = '<li class="empty">no results</li>';
    return;
  }
  for (const hit of hits) {
    const item = document.createElement("li");
    item.className = "hit";
    const badge = column.dataset.kind !== "bm25" && !sharesWord(hit, words) ? '<span class="badge">meaning match</span>' : "";
    item.innerHTML =
      `<span class="title">${highlight(hit.title || hit.id, words)}</span>` +
      `<span class="score">${hit.score.toFixed(3)}</span>${badge}` +
      `<p class="snippet">${highlight(hit.snippet, words)}</p><span class="id">${escapeHtml(hit.id)}</span>`;
    list.appendChild(item);
  }
}

async function search(query, k) {
  const words = queryWords(query);
  const status = document.getElementById("status");
  status.textContent = "searching…";
  const started = performance.now();
  try {
    await Promise.all(modes.map(async ({ mode }) => {
      const response = await fetch("/search", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ query, k, mode }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
      render(mode, body.results[0].hits, words);
    }));
    status.textContent = `${Math.round(performance.now() - started)} ms`;
  } catch (error) {
    status.textContent = `error: ${error.message}`;
  }
}

const ready = loadChannels();

document.getElementById("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = document.getElementById("query").value.trim();
  const k = Math.max(1, Math.min(50, Number(document.getElementById("k").value) || 5));
  await ready;
  if (query) search(query, k);
});
