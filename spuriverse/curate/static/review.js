// The review page: every text goes in with textContent (never as markup); decisions are POSTed as
// JSON with this server's token and are on disk (reviews.jsonl) before the response comes back.
"use strict";

const TOKEN = document.querySelector('meta[name="review-token"]').content;
const FIELDS = ["core_attributes", "spurious_attributes", "positive", "negative"];
const LISTS = new Set(["core_attributes", "spurious_attributes"]);
const $ = (id) => document.getElementById(id);
const state = { list: [], index: -1, detail: null, busy: false,
                showAll: new URLSearchParams(location.search).get("show") === "all" };

function show() { return state.showAll ? "all" : "spurious"; }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    let why = body && body.detail !== undefined ? body.detail : response.statusText;
    if (Array.isArray(why)) why = why.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    throw new Error(`${response.status}: ${why}`);
  }
  return body;
}

function letter(i) { return String.fromCharCode(65 + i); }

function optionText(options, answer) {
  if (answer === null || answer === undefined || answer === "") return "(no answer parsed)";
  const i = answer.length === 1 ? answer.toUpperCase().charCodeAt(0) - 65 : -1;
  return i >= 0 && i < options.length ? `${answer.toUpperCase()}. ${options[i]}` : answer;
}

function renderProgress(p) {
  const c = p.counts;
  $("progress").textContent =
    `${p.decided} / ${p.total} decided (accept ${c.accept} · reject ${c.reject} · skip ${c.skip})`;
}

function renderList() {
  const ol = $("list");
  ol.replaceChildren();
  state.list.forEach((row, i) => {
    const li = el("li");
    li.dataset.cid = row.candidate_id;
    li.title = row.question;
    li.append(el("span", row.candidate_id, "cid"));
    li.append(el("span", row.decision || "—", `badge ${row.decision || ""}`));
    if (i === state.index) { li.classList.add("current"); li.setAttribute("aria-current", "true"); }
    li.addEventListener("click", () => go(i));
    ol.append(li);
  });
  const current = ol.children[state.index];
  if (current) current.scrollIntoView({ block: "nearest" });
}

function verdictText(j) {
  if (j.spurious === true) return ["judged spurious", "spurious"];
  if (j.spurious === false) return ["judged not spurious", ""];
  return ["judge failed", "failed"];
}

function renderImages(images) {
  $("no-images").hidden = images.length > 0;
  for (const variant of ["spurious", "counter"]) {
    const box = $(`img-${variant}`);
    box.replaceChildren();
    box.hidden = box.previousElementSibling.hidden = !images.some((x) => x.variant === variant);
    for (const im of images.filter((x) => x.variant === variant)) {
      const fig = el("figure");
      const tip = `${im.prompt}\nseed ${im.seed} · ${im.backend} ${im.model_id}`;
      if (im.url) {
        const img = el("img");
        img.src = im.url;
        img.alt = `${variant} image ${im.k}`;
        img.title = tip;
        fig.append(img);
      }
      const cap = im.url ? `#${im.k} seed ${im.seed}: ${im.prompt}` : `#${im.k} ${im.status}: ${im.message || ""}`;
      fig.append(el("figcaption", cap));
      fig.title = tip;
      box.append(fig);
    }
  }
}

function render(d) {
  const e = d.error, j = d.judgment, r = d.review;
  $("card").hidden = false;
  $("cid").textContent = d.candidate_id;
  const [vText, vCls] = verdictText(j);
  $("verdict").textContent = vText;
  $("verdict").className = `badge ${vCls}`;
  $("decision").textContent = r ? `${r.decision} by ${r.reviewer || "?"} at ${r.timestamp}` : "undecided";
  $("decision").className = `badge ${r ? r.decision : ""}`;
  const anchor = $("anchor");
  if (d.anchor_url) { anchor.hidden = false; anchor.src = d.anchor_url; } else { anchor.hidden = true; anchor.removeAttribute("src"); }
  $("anchor-cap").textContent = d.anchor_url ? e.image : "no anchor image";
  $("question").textContent = e.question;
  const options = $("options");
  options.replaceChildren();
  const pred = (e.prediction || "").toUpperCase(), ans = (e.answer || "").toUpperCase();
  e.options.forEach((o, i) => {
    const li = el("li", o, letter(i) === ans ? "right" : letter(i) === pred ? "wrong" : "");
    options.append(li);
  });
  $("prediction").textContent = optionText(e.options, e.prediction);
  $("raw").textContent = e.raw === null ? "—" : e.raw;
  $("answer").textContent = optionText(e.options, e.answer);
  $("judge-name").textContent = `${j.judge} (prompt ${j.prompt_hash})`;
  $("judge-error").hidden = !j.error;
  $("judge-error").textContent = j.error ? `judge failed: ${j.error}` : "";
  $("rationale").textContent = j.rationale || "(no rationale)";
  $("mask-box").textContent = d.current.mask_box ? `cue box: ${d.current.mask_box.join(", ")}` : "";
  for (const f of FIELDS) {
    const v = d.current[f];
    $(`f-${f}`).value = LISTS.has(f) ? joinList(v) : v;
    $(`f-${f}`).placeholder = LISTS.has(f) ? `judge: ${j[f].join(", ")}` : `judge: ${j[f]}`;
  }
  $("edited").textContent = d.edited.length ? `edited vs the judge: ${d.edited.join(", ")}` : "";
  renderImages(d.images);
}

// One per line when an item holds a comma; else comma-separated. Typed text with a line break is
// split on line breaks only, else on commas.
function joinList(items) { return items.join(items.some((x) => x.includes(",")) ? "\n" : ", "); }

function splitList(text) {
  return text.split(text.includes("\n") ? "\n" : ",").map((s) => s.trim()).filter((s) => s.length > 0);
}

async function go(i) {
  if (i < 0 || i >= state.list.length) return;
  state.index = i;
  renderList();
  const cid = state.list[i].candidate_id;
  try {
    const d = await api(`/api/candidates/${encodeURIComponent(cid)}`);
    if (state.list[state.index] && state.list[state.index].candidate_id === cid) {
      state.detail = d;
      render(d);
      setStatus("");
    }
  } catch (err) { setStatus(`could not load ${cid}: ${err.message}`, true); }
}

async function decide(kind) {
  if (state.busy || !state.detail) return;
  const cid = state.detail.candidate_id;
  const body = { decision: kind };
  for (const f of FIELDS) {
    const text = $(`f-${f}`).value, shown = state.detail.current[f];
    // untouched: sent back as it is (an attribute may itself hold a comma)
    if (LISTS.has(f)) body[f] = text === joinList(shown) ? shown : splitList(text);
    else body[f] = text === shown ? shown : text.trim();
  }
  state.busy = true;
  setStatus(`saving ${kind}…`);
  try {
    const res = await api(`/api/candidates/${encodeURIComponent(cid)}/decision?show=${show()}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Review-Token": TOKEN },
      body: JSON.stringify(body),
    });
    const row = state.list.find((x) => x.candidate_id === cid);
    if (row) row.decision = res.saved.decision;
    renderProgress(res);
    setStatus(`saved: ${cid} ${res.saved.decision}`);
    if (state.index < state.list.length - 1) await go(state.index + 1);
    else { state.detail = res.candidate; render(res.candidate); renderList(); }
  } catch (err) {
    setStatus(`not saved: ${err.message}`, true);
  } finally { state.busy = false; }
}

async function load() {
  const data = await api(`/api/candidates?show=${show()}`);
  state.list = data.candidates;
  $("build-dir").textContent = data.curation_dir;
  $("reviewer").textContent = `reviewer: ${data.reviewer || "?"}`;
  renderProgress(data);
  $("empty").hidden = state.list.length > 0;
  $("card").hidden = state.list.length === 0;
  const first = state.list.findIndex((x) => !x.decision);
  await go(first >= 0 ? first : 0);
  if (state.list.length === 0) renderList();
}

const NOT_TYPING = new Set(["checkbox", "radio", "button", "submit", "reset"]);
function typing(target) {
  if (!target) return false;
  if (target.tagName === "INPUT") return !NOT_TYPING.has(target.type);
  return target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT";
}

document.addEventListener("keydown", (ev) => {
  if (typing(ev.target)) {
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey || (ev.repeat && ["a", "r", "s"].includes(ev.key))) return;
  const actions = {
    a: () => decide("accept"), r: () => decide("reject"), s: () => decide("skip"),
    j: () => go(state.index + 1), ArrowRight: () => go(state.index + 1), ArrowDown: () => go(state.index + 1),
    k: () => go(state.index - 1), ArrowLeft: () => go(state.index - 1), ArrowUp: () => go(state.index - 1),
  };
  if (actions[ev.key]) { ev.preventDefault(); actions[ev.key](); }
});

$("accept").addEventListener("click", () => decide("accept"));
$("reject").addEventListener("click", () => decide("reject"));
$("skip").addEventListener("click", () => decide("skip"));
$("next").addEventListener("click", () => go(state.index + 1));
$("prev").addEventListener("click", () => go(state.index - 1));
$("show-all").checked = state.showAll;
$("show-all").addEventListener("change", () => {
  state.showAll = $("show-all").checked;
  const url = new URL(location.href);
  if (state.showAll) url.searchParams.set("show", "all"); else url.searchParams.delete("show");
  history.replaceState(null, "", url);
  load().catch((err) => setStatus(err.message, true));
});
load().catch((err) => setStatus(`could not load the candidates: ${err.message}`, true));
