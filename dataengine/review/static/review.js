// The review page: a paged episode list, a clip player for the current episode, keyboard labelling.
// Every label is sent at once and shown only once the server has written it; the page re-reads labels whenever
// it regains focus, so a second tab's labels appear here too. Undo is per tab (kept in sessionStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const CONTROLS = ["sort", "outcome", "verdict", "labelled", "curation", "per-page"];  // selects, remembered
const view = {
  state: null, rows: [], total: 0, page: 0, current: -1,
  player: { urls: {}, frames: 0, index: 0, timer: null, fps: 30 },
  undo: JSON.parse(sessionStorage.getItem("review-undo") || "[]"),
};

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function fmt(score) { return score === null || score === undefined ? "–" : score.toFixed(3); }
function verdictCell(row) {
  if (row.verdict === null) return '<span class="muted">unscored</span>';
  const cls = row.disagrees ? " disagree" : "";
  return row.verdict ? `<span class="yes${cls}">accepts</span>` : `<span class="no${cls}">rejects</span>`;
}
function labelCell(label) {
  if (!label) return '<span class="muted">–</span>';
  return label.success ? '<span class="label-success">success</span>' : '<span class="label-failure">failure</span>';
}
function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
// A curated dataset's decision: "accepted", or the rejection code (the step and the measured detail on hover in
// the list, written out in the facts). Decisions of a dataset whose verdict was the simulator's outcome reveal
// it, so they are hidden with it.
function decisionSpan(d, long) {
  const cls = d.reveals_outcome ? " sim" : "";
  const where = long ? `${esc(d.dataset)}: ` : "";
  if (d.accepted) return `<span class="decision${cls}" data-code="accepted">${where}<span class="yes">accepted</span></span>`;
  const why = `${esc(d.step)}: ${esc(d.detail || "")}`;
  return `<span class="decision${cls}" data-code="${esc(d.code)}" title="${esc(d.dataset)}, ${why}">${where}` +
    `<span class="no">${esc(d.code)}</span>${long ? ` <span class="muted">(${why})</span>` : ""}</span>`;
}
function curationCell(row, long = false) {
  if (!row.curation.length) return '<span class="muted">–</span>';
  return row.curation.map((d) => decisionSpan(d, long)).join(long ? "<br>" : " ");
}
function outcomeCell(outcome) {
  const words = outcome.toLowerCase().replaceAll("_", " ");
  return outcome === "SUCCESS" ? `<span class="yes">${words}</span>` : `<span class="no">${words}</span>`;
}

function query() {
  const params = new URLSearchParams({
    sort: $("sort").value, outcome: $("outcome").value, verdict: $("verdict").value,
    labelled: $("labelled").value, disagreement: $("disagreement").checked, curation: $("curation").value,
    page: view.page,
    per_page: $("per-page").value });
  return params.toString();
}

function saveControls() {
  const controls = {};
  for (const id of CONTROLS) controls[id] = $(id).value;
  controls.disagreement = $("disagreement").checked;
  controls.page = view.page;
  localStorage.setItem("review-controls", JSON.stringify(controls));
}

async function loadPage(select = 0) {
  saveControls();
  const data = await api(`/api/episodes?${query()}`);
  view.rows = data.rows; view.total = data.total;
  const pages = Math.max(1, Math.ceil(data.total / data.per_page));
  if (view.page >= pages && view.page > 0) { view.page = pages - 1; return loadPage(select); }
  $("page").textContent = `page ${view.page + 1} of ${pages} (${data.total} episodes)`;
  $("rows").innerHTML = view.rows.map((row, i) => `
    <tr class="row" data-index="${i}" id="row-${row.run}-${row.episode}">
      <td class="episode">${row.run} · ${row.episode}<br><span class="muted">seed ${row.seed}</span></td>
      <td><img loading="lazy" alt="frames" src="/thumb/${row.run}/${row.episode}.jpg"></td>
      <td>${fmt(row.score)}</td><td>${verdictCell(row)}</td><td class="sim">${outcomeCell(row.outcome)}</td>
      <td class="curation">${curationCell(row)}</td>
      <td class="label">${labelCell(row.label)}</td></tr>`).join("");
  for (const tr of $("rows").querySelectorAll("tr.row")) {
    tr.addEventListener("click", () => select_(Number(tr.dataset.index)));
  }
  if (view.rows.length) await select_(select === "last" ? view.rows.length - 1 : Math.min(select, view.rows.length - 1));
  else { view.current = -1; $("title").textContent = "no episode matches"; }
}

async function refreshState() {
  view.state = await api("/api/state");
  const s = view.state;
  $("progress").textContent = `${s.labelled} of ${s.episodes} episodes labelled`;
  $("retrain-command").textContent = s.retrain;
  $("labels-file").textContent = s.labels_file;
  const scoring = s.scoring;
  $("scoring").textContent = scoring.error ? `scoring failed: ${scoring.error}`
    : scoring.todo && scoring.done < scoring.todo ? `classifier scoring ${scoring.done} of ${scoring.todo}…` : "";
}

function stopPlayer() {
  const p = view.player;
  if (p.timer) clearInterval(p.timer);
  p.timer = null;
  $("play").textContent = "play";
}

function showFrame(index) {
  const p = view.player;
  p.index = index;
  for (const [camera, urls] of Object.entries(p.urls)) {
    const img = document.getElementById(`cam-${camera}`);
    if (img && urls[index]) img.src = urls[index];
  }
  $("scrub").value = index;
  $("time").textContent = `frame ${index + 1} / ${p.frames} · ${(index / p.fps).toFixed(1)} s`;
}

function togglePlay() {
  const p = view.player;
  if (p.timer) return stopPlayer();
  if (p.index >= p.frames - 1) p.index = 0;
  p.timer = setInterval(() => {
    if (p.index >= p.frames - 1) return stopPlayer();
    showFrame(p.index + 1);
  }, 1000 / p.fps);
  $("play").textContent = "pause";
}

function revoke(player) {
  for (const urls of Object.values(player.urls)) for (const url of urls) URL.revokeObjectURL(url);
}

async function loadClip(run, episode, detail) {
  // One request per camera: the stored Motion-JPEG stream, cut into frames with the episode's byte offsets.
  stopPlayer();
  revoke(view.player);
  const player = { urls: {}, frames: detail.length, index: 0, timer: null, fps: detail.fps };
  view.player = player;
  $("players").innerHTML = detail.cameras.map((camera) =>
    `<figure><img id="cam-${camera}" alt="${camera}"><figcaption>${camera.replace("observation.images.", "")}
    </figcaption></figure>`).join("");
  $("scrub").max = detail.length - 1;
  await Promise.all(detail.cameras.map(async (camera) => {
    const response = await fetch(`/media/${run}/${episode}/${camera}.mjpeg`);
    if (!response.ok) throw new Error(`${camera} of episode ${episode}: ${response.status} ${response.statusText}`);
    const bytes = await response.arrayBuffer();
    const offsets = detail.offsets[camera];
    player.urls[camera] = offsets.slice(0, -1).map((start, i) =>
      URL.createObjectURL(new Blob([bytes.slice(start, offsets[i + 1])], { type: "image/jpeg" })));
  }));
  if (view.player !== player) return revoke(player);  // another episode was selected meanwhile
  showFrame(0);
}

async function select_(index) {
  if (index < 0 || index >= view.rows.length) return;
  view.current = index;
  for (const tr of $("rows").querySelectorAll("tr.current")) tr.classList.remove("current");
  const row = view.rows[index];
  const tr = $(`row-${row.run}-${row.episode}`);
  tr.classList.add("current");
  tr.scrollIntoView({ block: "nearest" });
  $("title").textContent = `run ${row.run} · episode ${row.episode}`;
  $("whiskers").innerHTML = "";
  const detail = await api(`/api/episodes/${row.run}/${row.episode}`);
  if (view.rows[view.current] !== row) return;  // another episode was selected meanwhile
  const run = view.state.runs[row.run];
  const facts = [
    ["run", `${run.dir} (${run.policy.kind || "?"})`], ["seed", row.seed], ["length", `${row.length} frames`],
    ["classifier", `${verdictCell(row)} score ${fmt(row.score)} (threshold ${fmt(row.threshold)})`],
    ["curation", curationCell(row, true)],
    ["simulator", `<span class="sim">${outcomeCell(detail.metrics.outcome)} · picked ${detail.metrics.picked} · ` +
      `max cube height ${(detail.metrics.max_cube_height * 100).toFixed(1)} cm</span>`],
    ["label", `<span id="current-label">${labelCell(detail.label)}${detail.label ?
      ` <span class="muted">by ${detail.label.by || "?"}, ${new Date(detail.label.time * 1000).toLocaleString()}</span>` : ""}</span>`],
  ];
  $("facts").innerHTML = facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  await loadClip(row.run, row.episode, detail);
}

async function move(step) {
  const next = view.current + step;
  if (next >= 0 && next < view.rows.length) return select_(next);
  const pages = Math.ceil(view.total / Number($("per-page").value));
  if (step > 0 && view.page + 1 < pages) { view.page += 1; return loadPage(0); }
  if (step < 0 && view.page > 0) { view.page -= 1; return loadPage("last"); }
}

function setRowLabel(row, label) {
  row.label = label;
  const tr = $(`row-${row.run}-${row.episode}`);
  if (tr) tr.querySelector("td.label").innerHTML = labelCell(label);
  if (view.rows[view.current] === row && $("current-label")) $("current-label").innerHTML = labelCell(label);
}

async function label(success) {
  const row = view.rows[view.current];
  if (!row) return;
  try {
    const data = await api("/api/labels", { run: row.run, episode: row.episode, success, by: $("by").value });
    view.undo.push({ run: row.run, episode: row.episode, label: data.label });
    sessionStorage.setItem("review-undo", JSON.stringify(view.undo.slice(-200)));
    setRowLabel(row, data.label);
    showError(null);
    refreshState();
    await move(1);
  } catch (error) { showError(error); }
}

async function undo() {
  const last = view.undo[view.undo.length - 1];
  if (!last) return showError("nothing to undo in this tab");
  try {
    const data = await api("/api/labels/undo", { label: last.label });
    view.undo.pop();
    sessionStorage.setItem("review-undo", JSON.stringify(view.undo));
    showError(null);
    const index = view.rows.findIndex((r) => r.run === last.run && r.episode === last.episode);
    if (index >= 0) { setRowLabel(view.rows[index], data.label); await select_(index); }
    refreshState();
  } catch (error) { showError(error); }
}

async function whiskers() {
  const row = view.rows[view.current];
  if (!row) return;
  const box = $("whiskers");
  box.innerHTML = '<p class="muted">simulating the episode again with its policy, predicting every few steps…</p>';
  try {
    let job = await api(`/api/whiskers/${row.run}/${row.episode}`, {});
    while (job.status === "running") {
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await api(`/api/whiskers/${row.run}/${row.episode}`);
    }
    if (view.rows[view.current] !== row) return;
    if (job.status === "error") throw new Error(`whiskers: ${job.error}`);
    box.innerHTML = `<img alt="whiskers" src="/whiskers/${row.run}/${row.episode}.png">
      <p class="muted">orange: predicted end-effector paths (newest brightest); cyan: the path taken</p>`;
  } catch (error) { box.innerHTML = ""; showError(error); }
}

async function refreshLabels() {
  await refreshState();
  const data = await api(`/api/episodes?${query()}`);
  for (const fresh of data.rows) {
    const row = view.rows.find((r) => r.run === fresh.run && r.episode === fresh.episode);
    if (row) setRowLabel(row, fresh.label);
  }
}

function applyBlind() {
  const blind = $("blind").checked;
  document.body.classList.toggle("blind", blind);
  localStorage.setItem("review-blind", blind);
  const curationRevealing = view.state.curation_reveals_outcome && $("curation").value;
  if (blind && ($("sort").value === "disagreement" || $("outcome").value || $("disagreement").checked ||
                curationRevealing)) {
    if ($("sort").value === "disagreement") $("sort").value = "episode";
    $("outcome").value = ""; $("disagreement").checked = false;
    if (curationRevealing) $("curation").value = "";
    view.page = 0; loadPage().catch(showError);
  }
}

document.addEventListener("keydown", (event) => {
  if (event.target.matches("input[type=text], input:not([type]), select") || event.altKey || event.metaKey) return;
  const keys = {
    ArrowRight: () => label(true), ArrowLeft: () => label(false), " ": () => move(1),
    z: () => undo(), Backspace: () => undo(), ArrowDown: () => move(1), ArrowUp: () => move(-1),
    p: () => togglePlay(), w: () => whiskers(),
  };
  const action = keys[event.key];
  if (!action || (event.ctrlKey && event.key !== "z")) return;
  event.preventDefault();
  Promise.resolve(action()).catch(showError);
});

async function start() {
  await refreshState();
  const s = view.state;
  $("outcome").innerHTML += s.outcomes.map((o) => `<option value="${o}">${o}</option>`).join("");
  $("per-page").innerHTML = s.page_sizes.map((n) => `<option value="${n}">${n}</option>`).join("");
  const words = { accepted: "accepted", rejected: "rejected (any code)" };
  $("curation").innerHTML += s.curation_filters.map((f) =>
    `<option value="${f}">${words[f] || `rejected: ${f}`}</option>`).join("");
  $("curation-filter").hidden = !s.curation_filters.length;
  $("curation-filter").classList.toggle("needs-sim", s.curation_reveals_outcome);
  $("per-page").value = "50";
  const saved = JSON.parse(localStorage.getItem("review-controls") || "{}");
  for (const id of CONTROLS) {
    if (saved[id] !== undefined && [...$(id).options].some((o) => o.value === saved[id])) $(id).value = saved[id];
  }
  $("disagreement").checked = Boolean(saved.disagreement);
  view.page = Number(saved.page || 0);
  $("by").value = localStorage.getItem("review-by") || s.by;
  $("by").addEventListener("change", () => localStorage.setItem("review-by", $("by").value));
  $("blind").checked = localStorage.getItem("review-blind") === "true";
  document.body.classList.toggle("blind", $("blind").checked);
  $("blind").addEventListener("change", applyBlind);
  for (const id of [...CONTROLS, "disagreement"]) {
    $(id).addEventListener("change", () => { view.page = 0; loadPage().catch(showError); $(id).blur(); });
  }
  $("prev").addEventListener("click", () => { if (view.page > 0) { view.page -= 1; loadPage().catch(showError); } });
  $("next").addEventListener("click", () => {
    if ((view.page + 1) * Number($("per-page").value) < view.total) { view.page += 1; loadPage().catch(showError); }
  });
  $("accept").addEventListener("click", () => label(true));
  $("reject").addEventListener("click", () => label(false));
  $("skip").addEventListener("click", () => move(1));
  $("undo").addEventListener("click", () => undo());
  $("show-whiskers").addEventListener("click", () => whiskers());
  $("play").addEventListener("click", togglePlay);
  for (const button of document.querySelectorAll("button")) {  // keys must label, not press the last button clicked
    button.addEventListener("click", () => button.blur());
  }
  $("scrub").addEventListener("input", () => { stopPlayer(); showFrame(Number($("scrub").value)); });
  $("copy").addEventListener("click", () => navigator.clipboard?.writeText(s.retrain));
  window.addEventListener("focus", () => refreshLabels().catch(showError));  // another tab may have labelled
  await loadPage(0);
  document.body.dataset.ready = "true";
}

start().catch(showError);
