// unmix serve: upload a song, follow the job, play the stems in sync, download them.
// Plain JavaScript, no dependencies: one AudioContext, one transport, one GainNode per stem.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("unmix-token") || "", info: null, job: null };

function rememberToken(token) {
  state.token = token;
  sessionStorage.setItem("unmix-token", token);
  // a cookie too, so that plain download links carry the token
  document.cookie = "unmix_token=" + encodeURIComponent(token) + "; path=/; SameSite=Strict";
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  return fetch(path, Object.assign({}, options, { headers }));
}

async function apiError(response) {
  try { return (await response.json()).error || response.statusText; }
  catch (e) { return response.status + " " + response.statusText; }
}

function showError(message) { $("error").textContent = message || ""; }

function fmtTime(s) {
  s = Math.max(0, s || 0);
  const m = Math.floor(s / 60), r = Math.floor(s % 60);
  return m + ":" + String(r).padStart(2, "0");
}

// ---- the player -------------------------------------------------------------------
class Player {
  constructor() {
    this.ctx = null; this.master = null; this.stems = [];
    this.playing = false; this.offset = 0; this.startedAt = 0; this.duration = 0;
  }
  context() {
    if (!this.ctx) {
      this.ctx = new AudioContext();
      this.master = this.ctx.createGain();
      this.master.connect(this.ctx.destination);
    }
    return this.ctx;
  }
  add(name, buffer) {
    const gain = this.context().createGain();
    gain.connect(this.master);
    const stem = { name, buffer, gain, volume: 1, muted: false, solo: false, source: null };
    this.stems.push(stem);
    this.duration = Math.max(this.duration, buffer.duration);
    this.applyGains();
    return stem;
  }
  clear() { this.pause(); this.stems.forEach((s) => s.gain.disconnect()); this.stems = []; this.offset = 0; this.duration = 0; }
  currentTime() {
    if (!this.playing) return this.offset;
    return Math.min(this.offset + this.ctx.currentTime - this.startedAt, this.duration);
  }
  effectiveGain(stem) {
    const anySolo = this.stems.some((s) => s.solo);
    if (anySolo) return stem.solo ? stem.volume : 0;
    return stem.muted ? 0 : stem.volume;
  }
  gains() {
    const out = {};
    this.stems.forEach((s) => { out[s.name] = s.gain.gain.value; });
    return out;
  }
  applyGains() {
    if (!this.ctx) return;
    const t = this.ctx.currentTime;
    this.stems.forEach((s) => s.gain.gain.setValueAtTime(this.effectiveGain(s), t));
  }
  async play() {
    const ctx = this.context();
    if (ctx.state !== "running") await ctx.resume();
    if (this.playing) return;
    if (this.offset >= this.duration) this.offset = 0;
    const when = ctx.currentTime + 0.05;  // every stem starts at the same instant
    this.stems.forEach((s) => {
      const src = ctx.createBufferSource();
      src.buffer = s.buffer;
      src.connect(s.gain);
      src.start(when, this.offset);
      s.source = src;
    });
    this.startedAt = when;
    this.playing = true;
  }
  pause() {
    if (!this.playing) return;
    this.offset = this.currentTime();
    this.stems.forEach((s) => { if (s.source) { s.source.stop(); s.source.disconnect(); s.source = null; } });
    this.playing = false;
  }
  async seek(seconds) {
    const wasPlaying = this.playing;
    this.pause();
    this.offset = Math.min(Math.max(seconds, 0), this.duration);
    if (wasPlaying) await this.play();
  }
}
const player = new Player();
window.unmix = { player, state };

// ---- waveforms ---------------------------------------------------------------------
function peaks(buffer, columns) {
  const channels = [];
  for (let c = 0; c < buffer.numberOfChannels; c++) channels.push(buffer.getChannelData(c));
  const per = Math.max(1, Math.floor(buffer.length / columns));
  const out = new Float32Array(columns * 2);
  for (let x = 0; x < columns; x++) {
    let lo = 0, hi = 0;
    const start = x * per, end = Math.min(start + per, buffer.length);
    for (const data of channels) {
      for (let i = start; i < end; i += 4) { const v = data[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    out[2 * x] = lo; out[2 * x + 1] = hi;
  }
  // each stem scaled to its own peak, so that quiet stems still show their shape
  let peak = 1e-6;
  for (const v of out) peak = Math.max(peak, Math.abs(v));
  for (let i = 0; i < out.length; i++) out[i] *= 0.95 / peak;
  return out;
}

function drawWave(stem) {
  const canvas = stem.canvas, ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.floor(canvas.clientWidth * ratio)), height = Math.floor(56 * ratio);
  if (canvas.width !== width || !stem.peaks) {
    canvas.width = width; canvas.height = height;
    stem.peaks = peaks(stem.buffer, width);
  }
  const g = canvas.getContext("2d"), mid = height / 2, p = stem.peaks;
  g.clearRect(0, 0, width, height);
  const played = player.duration ? (player.currentTime() / player.duration) * width : 0;
  for (let x = 0; x < width; x++) {
    g.fillStyle = x < played ? "#2563eb" : "#94a3b8";
    const top = mid - p[2 * x + 1] * mid, bottom = mid - p[2 * x] * mid;
    g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

function tick() {
  const t = player.currentTime();
  $("time").textContent = fmtTime(t) + " / " + fmtTime(player.duration);
  if (document.activeElement !== $("seek")) $("seek").value = String(t);
  player.stems.forEach(drawWave);
  if (player.playing && t >= player.duration) { player.pause(); player.offset = 0; updatePlay(); }
  requestAnimationFrame(tick);
}

function updatePlay() {
  $("play").textContent = player.playing ? "Pause" : "Play";
  $("play").setAttribute("aria-label", player.playing ? "Pause" : "Play");
}

async function togglePlay() {
  if (player.playing) player.pause(); else await player.play();
  updatePlay();
}

// ---- stem rows -----------------------------------------------------------------------
function toggleButton(label, title, onChange) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; b.title = title;
  b.setAttribute("aria-pressed", "false");
  b.addEventListener("click", () => {
    const on = b.getAttribute("aria-pressed") !== "true";
    b.setAttribute("aria-pressed", String(on));
    onChange(on);
  });
  return b;
}

function stemRow(stem, url) {
  const li = document.createElement("li");
  li.className = "stem"; li.dataset.stem = stem.name;
  const name = document.createElement("span");
  name.className = "name"; name.textContent = stem.name;
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img"); canvas.setAttribute("aria-label", "waveform of " + stem.name);
  canvas.addEventListener("click", (e) => {
    const r = canvas.getBoundingClientRect();
    player.seek(((e.clientX - r.left) / r.width) * player.duration);
  });
  stem.canvas = canvas;
  const refresh = () => {
    player.applyGains();
    player.stems.forEach((s) => s.row.classList.toggle("silent", player.effectiveGain(s) === 0));
  };
  const mute = toggleButton("Mute", "Mute " + stem.name, (on) => { stem.muted = on; refresh(); });
  mute.className = "mute";
  const solo = toggleButton("Solo", "Play only the soloed stems", (on) => { stem.solo = on; refresh(); });
  solo.className = "solo";
  const volume = document.createElement("input");
  Object.assign(volume, { type: "range", min: "0", max: "1.5", step: "0.01", value: "1" });
  volume.className = "volume";
  volume.setAttribute("aria-label", "Volume of " + stem.name);
  volume.addEventListener("input", () => { stem.volume = Number(volume.value); refresh(); });
  const link = document.createElement("a");
  link.href = url; link.textContent = "Download"; link.setAttribute("download", "");
  const controls = document.createElement("div");
  controls.className = "controls";
  controls.append(mute, solo, volume, link);
  li.append(name, canvas, controls);
  stem.row = li;
  return li;
}

// ---- jobs ------------------------------------------------------------------------------
function setPhase(text, value) {
  $("phase").textContent = text;
  const bar = $("progress");
  bar.hidden = value === null;
  if (value !== null) bar.value = value;
}

function upload(file) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("audio", file, file.name);
    const targets = [...document.querySelectorAll("#targets input:checked")].map((c) => c.value);
    form.append("targets", targets.join(","));
    form.append("format", $("format").value);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    if (state.token) xhr.setRequestHeader("Authorization", "Bearer " + state.token);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) setPhase("Uploading", e.loaded / e.total); };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202) resolve(body.id); else reject(new Error(body.error || "upload failed: " + xhr.status));
    };
    xhr.onerror = () => reject(new Error("the upload failed (network error)"));
    xhr.send(form);
  });
}

async function follow(id) {
  for (;;) {
    const r = await api("/api/jobs/" + id);
    if (!r.ok) throw new Error(await apiError(r));
    const job = await r.json();
    if (job.state === "failed") throw new Error(job.error);
    if (job.state === "done") return job;
    setPhase(job.state === "queued" ? "Waiting for the server" : "Separating", job.progress);
    await new Promise((ok) => setTimeout(ok, 400));
  }
}

async function loadStems(job) {
  player.clear();
  $("stems").replaceChildren();
  const ctx = player.context();
  const names = Object.keys(job.stems);
  for (const [i, name] of names.entries()) {
    setPhase("Loading stems", i / names.length);
    const r = await api(job.stems[name]);
    if (!r.ok) throw new Error(await apiError(r));
    const buffer = await ctx.decodeAudioData(await r.arrayBuffer());
    $("stems").append(stemRow(player.add(name, buffer), job.stems[name]));
  }
  $("seek").max = String(player.duration);
  $("zip").href = job.zip;
  $("expiry").textContent = job.expires_in ? "Deleted from the server in " + Math.round(job.expires_in / 60) + " min." : "";
  $("player").hidden = false;
  setPhase("Done: " + names.length + " stems", null);
}

async function separate() {
  const file = $("file").files[0];
  if (!file) return;
  showError("");
  if (state.info && file.size > state.info.max_upload_mb * 1e6) {
    showError(file.name + " is " + (file.size / 1e6).toFixed(1) + " MB; this server takes at most " + state.info.max_upload_mb + " MB");
    return;
  }
  $("start").disabled = true;
  player.context();  // created inside the click, so that playback is allowed
  try {
    const id = await upload(file);
    state.job = id;
    setPhase("Waiting for the server", 0);
    await loadStems(await follow(id));
  } catch (e) {
    setPhase("", null);
    showError(e.message);
  } finally {
    $("start").disabled = !$("file").files.length;
  }
}

async function removeJob() {
  if (!state.job) return;
  player.clear();
  await api("/api/jobs/" + state.job, { method: "DELETE" });
  state.job = null;
  $("stems").replaceChildren();
  $("player").hidden = true;
  setPhase("Deleted from the server", null);
}

// ---- set-up ----------------------------------------------------------------------------
async function loadInfo() {
  const r = await api("/api/info");
  if (r.status === 401) { $("token-box").hidden = false; $("model").textContent = "Locked"; return; }
  if (!r.ok) { showError(await apiError(r)); return; }
  const info = await r.json();
  state.info = info;
  $("token-box").hidden = true;
  $("model").textContent = "Model " + info.model + " · up to " + info.max_upload_mb + " MB · kept " + info.keep_minutes + " min";
  const box = $("targets");
  box.querySelectorAll("label").forEach((l) => l.remove());
  info.targets.forEach((t) => {
    const label = document.createElement("label");
    const check = document.createElement("input");
    Object.assign(check, { type: "checkbox", value: t, checked: true });
    label.append(check, " " + t);
    box.append(label);
  });
  $("format").replaceChildren(...info.formats.map((f) => new Option(f, f)));
}

function tokenFromAddress() {
  // http://host:port/#token=T: the fragment never reaches the server; it is removed at once
  const hash = new URLSearchParams(location.hash.slice(1));
  if (!hash.get("token")) return false;
  rememberToken(hash.get("token"));
  history.replaceState(null, "", location.pathname);
  return true;
}

function wire() {
  tokenFromAddress();
  window.addEventListener("hashchange", () => { if (tokenFromAddress()) loadInfo(); });
  $("token-save").addEventListener("click", () => { rememberToken($("token").value.trim()); loadInfo(); });
  $("file").addEventListener("change", () => { $("start").disabled = !$("file").files.length; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) { $("file").files = e.dataTransfer.files; $("start").disabled = false; }
  });
  $("start").addEventListener("click", separate);
  $("play").addEventListener("click", togglePlay);
  $("seek").addEventListener("input", () => player.seek(Number($("seek").value)));
  $("delete").addEventListener("click", removeJob);
  document.addEventListener("keydown", (e) => {
    if ($("player").hidden || e.target.closest("input, select, textarea, button, a")) return;
    if (e.key === " ") { e.preventDefault(); togglePlay(); }
    else if (e.key === "ArrowLeft") player.seek(player.currentTime() - 5);
    else if (e.key === "ArrowRight") player.seek(player.currentTime() + 5);
  });
  requestAnimationFrame(tick);
  loadInfo();
}

document.addEventListener("DOMContentLoaded", wire);
