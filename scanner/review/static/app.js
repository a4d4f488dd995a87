// cos-scanner review page. No build step, no libraries. Everything the store says is put in
// the page with textContent or attributes, never as HTML: a key is only ever text.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { items: [], focus: 0, next: null, selected: new Set(), loading: false, generation: 0, target: "",
  // this tab's id (kept across reloads): the cards it shows are held for it, so two reviewers
  // never get the same card, and a reload gets its own cards back
  holder: sessionStorage.getItem("cos-scanner-holder") ||
    (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`.replace(/[^0-9a-z-]/gi, "")) };
sessionStorage.setItem("cos-scanner-holder", state.holder);
const reviewer = () => $("reviewer").value.trim();
const RESULTS = { 0: "normal", 1: "sensitive", 2: "suspicious" };
// what a reviewer may say an image the service called normal is, when blocking it
const LABELS = ["Porn", "Ads", "Illegal", "Abuse", "Terrorism", "Politics", "Teenager"];

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function params() {
  const form = new FormData($("filters"));
  const p = new URLSearchParams();
  if (state.target) p.set("target", state.target);
  p.set("holder", state.holder);
  if (reviewer()) p.set("reviewer", reviewer());
  for (const [k, v] of form.entries()) {
    if (k === "range") continue;
    if (v !== "") p.set(k, String(v));
  }
  const range = String(form.get("range") || "").trim();
  if (/^\d{1,3}-\d{1,3}$/.test(range)) p.set("band", range);
  return p;
}

function say(text) {
  $("status").textContent = text;
  if (text) setTimeout(() => { if ($("status").textContent === text) $("status").textContent = ""; }, 2500);
}

async function getJSON(url) {
  const resp = await fetch(url, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`${resp.status} ${await resp.text()}`);
  return resp.json();
}

async function loadMeta() {
  const p = new URLSearchParams();
  if (state.target) p.set("target", state.target);
  const meta = await getJSON(`/api/meta?${p}`);
  state.target = meta.target;
  const targets = $("target");
  targets.replaceChildren(...meta.targets.map((t) => { const o = el("option", "", t); o.value = t; return o; }));
  targets.value = meta.target;
  if (!$("reviewer").value) $("reviewer").value = localStorage.getItem("cos-scanner-reviewer") || meta.reviewer;
  for (const [name, values] of [["label", meta.labels], ["sub_label", meta.sub_labels]]) {
    const select = document.querySelector(`select[name=${name}]`);
    select.replaceChildren(select.options[0]);
    for (const v of values) { const o = el("option", "", v); o.value = v; select.append(o); }
  }
}

async function loadCounts() {
  const data = await getJSON(`/api/counts?${params()}`);
  const parts = Object.entries(data.counts).map(([r, n]) => `Result ${r}: ${n.toLocaleString()}`);
  const r = data.review;
  $("counts").textContent = `${parts.join(" · ") || "nothing"} selected · ` +
    `${r.reviewed.toLocaleString()} reviewed, ${r.to_review.toLocaleString()} to review`;
  // each filter choice says what it would select, the other filters as they are
  document.querySelectorAll("#filters option[data-count]").forEach((o) => {
    if (!o.dataset.name) o.dataset.name = o.textContent;
    o.textContent = `${o.dataset.name} (${(data.choices[o.dataset.count] || 0).toLocaleString()})`;
  });
}

function highlight(container, text, keywords) {
  // The OCR text with its hit keywords marked: text nodes and <mark> elements only.
  let rest = text;
  const words = keywords.filter((k) => k);
  while (rest) {
    let at = -1, word = "";
    for (const k of words) { const i = rest.indexOf(k); if (i >= 0 && (at < 0 || i < at)) { at = i; word = k; } }
    if (at < 0) { container.append(document.createTextNode(rest)); break; }
    container.append(document.createTextNode(rest.slice(0, at)), el("mark", "", word));
    rest = rest.slice(at + word.length);
  }
}

function frameURL(item, n) {
  // a still of the job's n-th flagged frame (or page), fetched fresh by the server
  return `/frame?${new URLSearchParams({ key: item.key, etag: item.etag, n: String(n), target: state.target })}`;
}

function clock(ms) {
  const s = Math.floor((ms || 0) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function mediaDetails(body, item, index, stills) {
  // what a video's, voice note's or document's job found: its flagged frames, sections and
  // pages (a frame opens in the zoom view), a voice note's text with its hit keywords
  const words = (item.frames || []).flatMap((f) => f.keywords || []);
  if (item.spoken) { const p = el("div", "scene ocr", "said: "); highlight(p, item.spoken, words); body.append(p); }
  const list = el("ol", "frames");
  for (const f of item.frames || []) {
    const where = f.kind === "page" ? `page ${f.page}` : f.kind === "section"
      ? `${clock(f.offset_ms)}–${clock((f.offset_ms || 0) + (f.duration_ms || 0))}` : clock(f.offset_ms);
    const li = el("li", `r${f.result}`, `${where} ${f.label}${f.sub_label ? " / " + f.sub_label : ""} · ${f.score}`);
    if (f.text && f.kind !== "section") { const t = el("span", "ocr", " "); highlight(t, f.text, f.keywords || []); li.append(t); }
    const n = stills.indexOf(f);
    if (n >= 0) {
      li.classList.add("still");
      li.addEventListener("click", () => { state.focus = index; state.frame = n; zoom(true); });
    }
    list.append(li);
  }
  if (!(item.frames || []).length) list.append(el("li", "muted", "nothing flagged in its frames, sound or pages"));
  body.append(list);
}

function card(item, index) {
  const node = el("article", "card");
  node.dataset.index = String(index);
  const thumb = el("img");
  thumb.alt = item.key;
  thumb.loading = "lazy";
  const stills = (item.frames || []).filter((f) => f.kind === "frame" || f.kind === "page");
  thumb.src = item.media && item.media !== "image" ? frameURL(item, 0)
    : `/thumb?${new URLSearchParams({ key: item.key, etag: item.etag, target: state.target })}`;
  if (item.media === "audio" || (item.media && item.media !== "image" && !stills.length)) thumb.hidden = true;
  node.append(thumb);
  const body = el("div", "body");
  body.append(el("div", "key", item.key));
  const verdict = el("div", `verdict r${item.result}`,
    `${item.result} ${RESULTS[item.result]} · ${item.label}${item.sub_label ? " / " + item.sub_label : ""} · ${item.score}`);
  body.append(verdict);
  for (const s of item.scenes || []) {
    if (!s.hit && !s.ocr.length && !s.libs.length) continue;
    body.append(el("div", "scene", `${s.scene}: ${s.hit ? "hit" : "no hit"}, score ${s.score ?? "-"}` +
      `${s.label ? ", " + s.label : ""}${s.sub_label ? " / " + s.sub_label : ""}`));
    for (const o of s.ocr) { const p = el("div", "scene ocr", "OCR: "); highlight(p, o.text, o.keywords); body.append(p); }
    if (s.libs.length) body.append(el("div", "scene", `library: ${s.libs.join(", ")}`));
  }
  if (item.media && item.media !== "image") mediaDetails(body, item, index, stills);
  const size = item.size >= 1048576 ? `${(item.size / 1048576).toFixed(1)} MB` : `${Math.round(item.size / 1024)} KB`;
  body.append(el("div", "meta", `${size} · modified ${item.last_modified || "?"}` +
    `${item.verdict_from ? " · copy of " + item.verdict_from : ""}${item.forbid_state ? " · frozen" : ""}` +
    `${item.acted ? " · " + item.acted : ""}${item.user ? " · user " + item.user : ""}` +
    `${item.media && item.media !== "image" ? " · " + item.media : ""}`));
  const link = el("a", "meta", item.media && item.media !== "image" ? "first flagged frame" : "full image");
  link.href = item.media && item.media !== "image" ? frameURL(item, 0)
    : `/image?${new URLSearchParams({ key: item.key, etag: item.etag, target: state.target })}`;
  if (item.media && item.media !== "image" && !stills.length) link.hidden = true;
  link.target = "_blank";
  link.rel = "noopener";
  body.append(link);
  body.append(el("div", "meta", `audited ${when(item.audited_at)}`));
  body.append(el("div", "decision", ""));
  const note = el("input", "note");
  note.placeholder = "note (n), saved with the decision";
  note.maxLength = 1000;
  note.value = item.note || "";
  note.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === "Escape") { e.preventDefault(); note.blur(); } });
  body.append(note);
  if (item.result === 0) {
    // blocking an image the service called normal says what it is (told to the service)
    const suggest = el("select", "suggest");
    suggest.title = "what it is, if you block it";
    for (const l of LABELS) { const o = el("option", "", l); o.value = l; suggest.append(o); }
    body.append(suggest);
  }
  node.append(body);
  const actions = el("div", "actions");
  for (const [label, decision] of [["Approve", "approve"], ["Block", "block"], ["Skip", "skip"], ["Undo", "undo"]]) {
    const b = el("button", "", label);
    b.type = "button";
    b.dataset.decision = decision;
    b.addEventListener("click", () => { state.focus = index; decide(decision, false); });
    actions.append(b);
  }
  node.append(actions);
  paint(node, item);
  return node;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "?";
}

function paint(node, item) {
  node.classList.remove("decided-block", "decided-approve", "decided-skip");
  if (item.decision) node.classList.add(`decided-${item.decision}`);
  node.querySelector(".decision").textContent = item.decision
    ? `${item.decision} (${item.reviewer}, ${when(item.decided_at)})${item.acted ? " · " + item.acted : ""}` : "";
  node.classList.toggle("selected", state.selected.has(Number(node.dataset.index)));
}

function showFocus() {
  document.querySelectorAll(".card.focus").forEach((n) => n.classList.remove("focus"));
  const node = document.querySelector(`.card[data-index="${state.focus}"]`);
  if (node) { node.classList.add("focus"); node.scrollIntoView({ block: "nearest" }); }
}

async function loadPage(reset) {
  // A filter change always reloads (an answer to an older filter is dropped); "more" waits
  // for nothing and never runs twice at once.
  if (!reset && state.loading) return;
  const generation = ++state.generation;
  state.loading = true;
  try {
    const p = params();
    if (!reset && state.next) p.set("after", state.next);
    const data = await getJSON(`/api/queue?${p}`);
    if (generation !== state.generation) return;
    if (reset) { state.items = []; state.focus = 0; state.selected.clear(); $("grid").replaceChildren(); }
    const start = state.items.length;
    data.items.forEach((item, i) => { state.items.push(item); $("grid").append(card(item, start + i)); });
    state.next = data.next;
    $("more").hidden = !data.next;
    showFocus();
    if (reset) loadCounts();
  } catch (err) { say(`could not load: ${err.message}`); }
  finally { if (generation === state.generation) state.loading = false; }
}

async function decide(decision, copies) {
  const zoomed = !$("zoom").hidden;
  const targets = state.selected.size ? [...state.selected] : [state.focus];
  const items = targets.map((i) => state.items[i]).filter(Boolean);
  if (!items.length) return;
  // the next card at once: a reviewer typing b b b decides three cards, not one three times
  if (!copies && targets.length === 1 && decision !== "undo") { move(1); if (zoomed) zoom(true); }
  const noteNode = targets.length === 1 ? document.querySelector(`.card[data-index="${targets[0]}"] .note`) : null;
  const note = noteNode ? noteNode.value : "";
  const resp = await fetch("/api/decide", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ items: items.map((i) => ({ key: i.key, etag: i.etag })), decision, copies,
      target: state.target, label: suggestedLabel(targets), note, reviewer: reviewer(), holder: state.holder }),
  });
  if (!resp.ok) { say(`not saved: ${resp.status}`); return; }
  const done = await resp.json();
  const applied = new Set(done.applied);
  for (const i of targets) {
    const item = state.items[i];
    if (!item || !applied.has(item.key)) continue;
    if (decision === "undo") { item.decision = null; item.reviewer = null; } else { item.decision = decision; item.reviewer = reviewer(); item.decided_at = Date.now() / 1000; item.note = note; }
    paint(document.querySelector(`.card[data-index="${i}"]`), item);
  }
  if (decision === "undo") loadCounts(); // the undo may restore an earlier decision
  // what act did with it ([review] on_block / on_approve), shown on the card when it is done
  const decided = targets.filter((i) => state.items[i] && applied.has(state.items[i].key));
  for (const delay of [1500, 5000, 15000]) setTimeout(() => refreshCards(decided), delay);
  say(done.stale.length ? `${done.stale.length} changed since audit: not decided` : `${decision}: ${done.applied.length} saved`);
  state.selected.clear();
  document.querySelectorAll(".card.selected").forEach((n) => n.classList.remove("selected"));
  loadCounts();
}

function suggestedLabel(indexes) {
  // a block of one normal card carries the label chosen on it
  const node = indexes.length === 1 ? document.querySelector(`.card[data-index="${indexes[0]}"] .suggest`) : null;
  return node ? node.value : "";
}

async function refreshCards(indexes) {
  if (!indexes.length) return;
  const resp = await fetch("/api/state", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ target: state.target, keys: indexes.map((i) => state.items[i].key) }),
  });
  if (!resp.ok) return;
  const now = await resp.json();
  for (const i of indexes) {
    const item = state.items[i];
    const fresh = item && now[item.key];
    if (!fresh) continue;
    Object.assign(item, fresh);
    const node = document.querySelector(`.card[data-index="${i}"]`);
    if (node) paint(node, item);
  }
}

function move(step) {
  state.focus = Math.max(0, Math.min(state.items.length - 1, state.focus + step));
  showFocus();
  if (state.focus >= state.items.length - 3 && state.next) loadPage(false);
}

function zoom(open) {
  const item = state.items[state.focus];
  $("zoom").hidden = !open || !item;
  if ($("zoom").hidden) return;
  const media = item.media && item.media !== "image";
  $("zoom-img").src = media ? frameURL(item, state.frame || 0)
    : `/image?${new URLSearchParams({ key: item.key, etag: item.etag, target: state.target })}`;
  $("zoom-img").alt = item.key;
  const stills = (item.frames || []).filter((f) => f.kind === "frame" || f.kind === "page");
  const shown = media ? stills[state.frame || 0] : null;
  $("zoom-caption").textContent = `${item.key} · ${item.result} ${RESULTS[item.result]} · ${item.label} · ${item.score}` +
    `${item.decision ? " · " + item.decision : ""}` +
    (shown ? ` · ${shown.kind === "page" ? "page " + shown.page : "at " + clock(shown.offset_ms)}: ${shown.label} ${shown.score}` +
      ` (${(state.frame || 0) + 1} of ${stills.length}; [ and ] move)` : "");
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (!$("zoom").hidden) {
    // in the zoom view: arrows move through the cards, z or Esc close it, decisions work
    const inZoom = { ArrowRight: () => { move(1); state.frame = 0; zoom(true); }, ArrowDown: () => { move(1); state.frame = 0; zoom(true); },
      ArrowLeft: () => { move(-1); state.frame = 0; zoom(true); }, ArrowUp: () => { move(-1); state.frame = 0; zoom(true); },
      Escape: () => zoom(false), z: () => zoom(false),
      "[": () => { state.frame = Math.max(0, (state.frame || 0) - 1); zoom(true); },
      "]": () => { const it = state.items[state.focus]; const last = (it.frames || []).filter((f) => f.kind !== "section").length - 1;
        state.frame = Math.max(0, Math.min(last, (state.frame || 0) + 1)); zoom(true); } };
    if (inZoom[event.key]) { event.preventDefault(); inZoom[event.key](); return; }
  }
  const actions = { j: () => move(1), k: () => move(-1), z: () => { state.frame = 0; zoom(true); },
    n: () => { const node = document.querySelector(`.card[data-index="${state.focus}"] .note`); if (node) node.focus(); },
    a: () => decide("approve", false),
    b: () => decide("block", false), s: () => decide("skip", false), u: () => decide("undo", false),
    A: () => decide("approve", true), B: () => decide("block", true),
    x: () => { state.selected.has(state.focus) ? state.selected.delete(state.focus) : state.selected.add(state.focus);
      const node = document.querySelector(`.card[data-index="${state.focus}"]`); if (node) paint(node, state.items[state.focus]); } };
  const act = actions[event.key];
  if (act) { event.preventDefault(); act(); }
});

function bars(container, rows, colour) {
  // A horizontal bar chart as inline SVG, built with DOM calls (no markup strings).
  const ns = "http://www.w3.org/2000/svg";
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", "640"); svg.setAttribute("height", String(22 * rows.length + 4));
  rows.forEach(([name, value], i) => {
    const y = 22 * i + 2;
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "0"); label.setAttribute("y", String(y + 14)); label.setAttribute("font-size", "12");
    label.textContent = String(name);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", "150"); rect.setAttribute("y", String(y)); rect.setAttribute("height", "18");
    rect.setAttribute("width", String(Math.max(1, 420 * value / max))); rect.setAttribute("fill", colour);
    const num = document.createElementNS(ns, "text");
    num.setAttribute("x", String(156 + 420 * value / max)); num.setAttribute("y", String(y + 14)); num.setAttribute("font-size", "12");
    num.textContent = Number(value).toLocaleString();
    svg.append(label, rect, num);
  });
  container.replaceChildren(svg);
}

async function loadOverview() {
  const p = params();
  p.delete("holder"); // the figures are the target's, not this page's cards
  p.set("decision", p.get("decision") === "undecided" ? "any" : p.get("decision") || "any");
  const data = await getJSON(`/api/overview?${p}`);
  bars($("chart-labels"), data.labels, "#dc2626");
  bars($("chart-scores"), data.histogram.map((n, i) => [`${i * 10}-${i === 9 ? 100 : i * 10 + 9}`, n]), "#2563eb");
  bars($("chart-scans"), data.scans.flatMap((s) => [[`scan ${s.scan} audited`, s.audited],
    [`scan ${s.scan} flagged`, s.flagged + s.review], [`scan ${s.scan} paid`, s.paid]]), "#059669");
  $("reviewers").tBodies[0].replaceChildren(...data.reviewers.map((r) => {
    const row = el("tr");
    row.append(el("td", "", r.reviewer), el("td", "", r.decisions.toLocaleString()), el("td", "", r.per_hour),
      el("td", "", r.agree_share === null ? "-" : `${Math.round(r.agree_share * 100)} %`));
    return row;
  }));
}

function showTab(name) {
  $("queue").hidden = name !== "queue";
  $("overview").hidden = name !== "overview";
  $("tab-queue").classList.toggle("active", name === "queue");
  $("tab-overview").classList.toggle("active", name === "overview");
  if (name === "overview") loadOverview().catch((e) => say(e.message));
}

$("filters").addEventListener("change", (event) => {
  // the keys go back to the queue once a filter is chosen (j/k/a/b are not meant for a select)
  if (event.target instanceof HTMLSelectElement) event.target.blur();
  if ($("queue").hidden) loadOverview(); else loadPage(true);
});
$("filters").addEventListener("submit", (event) => { event.preventDefault(); loadPage(true); });
$("more").addEventListener("click", () => loadPage(false));
$("reviewer").addEventListener("change", () => { localStorage.setItem("cos-scanner-reviewer", reviewer()); $("reviewer").blur(); });
$("zoom").addEventListener("click", () => zoom(false));
// the cards on screen stay held while the page is open (claims last [review] claim_minutes)
setInterval(() => { fetch(`/api/claims?holder=${encodeURIComponent(state.holder)}`, { method: "POST", credentials: "same-origin" }); }, 60000);
$("target").addEventListener("change", (event) => {
  state.target = event.target.value;
  event.target.blur();
  loadMeta().then(() => ($("queue").hidden ? loadOverview() : loadPage(true))).catch((e) => say(e.message));
});
$("tab-queue").addEventListener("click", () => showTab("queue"));
$("tab-overview").addEventListener("click", () => showTab("overview"));
loadMeta().then(() => loadPage(true)).catch((e) => say(e.message));
