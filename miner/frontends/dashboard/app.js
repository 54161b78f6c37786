// The miner's dashboard: reads /api/history and /api/dashboard/state once, then follows the
// server-sent events on /api/dashboard/events (docs/dashboard.md). Hand-written; no libraries.
// Everything from the miner goes into the page as text (textContent), never as HTML.
"use strict";

const RINGS = { "5s": 5, "1m": 60, "10m": 600, "1h": 3600 };  // seconds per sample, as persist.py keeps them
const SHARE_LOG = 200;
const $ = (id) => document.getElementById(id);
let state = null;
let history = { "5s": [], "1m": [], "10m": [], "1h": [] };
let ring = localStorage.getItem("miner-ring") || "5s";
let shareLog = [];  // newest first, by seq
let firstChart = false;

// ------------------------------------------------------------------ formatting
function fmtRate(h) {
  if (h === null || h === undefined) return "-";
  const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"];
  let i = 0;
  while (Math.abs(h) >= 1000 && i < units.length - 1) { h /= 1000; i++; }
  return h.toFixed(2) + " " + units[i];
}
function fmtAxis(h) {  // axis labels: short, as many digits as the step needs
  const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"];
  let i = 0;
  while (Math.abs(h) >= 1000 && i < units.length - 1) { h /= 1000; i++; }
  return Number(h.toPrecision(3)) + " " + units[i];
}
function fmtDiff(d) {
  if (d === null || d === undefined) return "-";
  if (!isFinite(d)) return "inf";
  if (d < 1000) return String(Number(d.toPrecision(4)));
  const units = ["k", "M", "G", "T", "P", "E"];
  let i = -1;
  while (d >= 1000 && i < units.length - 1) { d /= 1000; i++; }
  return Number(d.toPrecision(3)) + units[i];
}
function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "-";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  const days = s / 86400;
  if (days < 365) return Math.floor(days) + "d" + String(Math.floor(s % 86400 / 3600)).padStart(2, "0") + "h";
  const years = days / 365.25;
  return (years < 1e6 ? years.toFixed(years < 10 ? 1 : 0) : years.toExponential(1)) + " years";
}
function fmtChance(p) {
  if (!p) return "0 %";
  if (p >= 0.01) return (p * 100).toFixed(1) + " %";
  return "1 in " + fmtDiff(1 / p);
}
function fmtTime(t) { return new Date(t * 1000).toLocaleTimeString(); }
function fmtOpt(v, unit, digits) { return v === null || v === undefined ? "-" : v.toFixed(digits) + unit; }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function twoLines(main, second) {
  const span = el("span", main);
  if (second) { span.appendChild(el("br")); span.appendChild(el("small", second, "muted")); }
  return span;
}
function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) {
    if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); continue; }
    const [text, klass] = Array.isArray(c) ? c : [c, ""];
    tr.appendChild(el("td", text, klass));
  }
  return tr;
}

// ------------------------------------------------------------------ the chart (canvas)
function niceStep(span) {
  const raw = span / 4, pow = Math.pow(10, Math.floor(Math.log10(raw || 1))), m = raw / pow;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * pow;
}
function drawChart() {
  const canvas = $("chart"), points = history[ring] || [];
  const css = getComputedStyle(document.documentElement);
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  canvas.dataset.points = String(points.length);
  canvas.dataset.ring = ring;
  const left = 66, right = 8, top = 8, bottom = 22, pw = w - left - right, ph = h - top - bottom;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = css.getPropertyValue("--muted");
  if (points.length === 0) {
    g.fillText("no samples yet at " + ring + " resolution", left, top + ph / 2);
    $("chart-note").textContent = "";
    return;
  }
  const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + RINGS[ring]);
  let max = 0;
  for (const p of points) max = Math.max(max, p[1]);
  const step = niceStep(max || 1), top_ = Math.ceil((max || 1) / step) * step;
  const x = (t) => left + (t - t0) / (t1 - t0) * pw, y = (v) => top + ph - v / top_ * ph;
  g.strokeStyle = css.getPropertyValue("--grid"); g.lineWidth = 1;
  g.textAlign = "right"; g.textBaseline = "middle";
  for (let v = 0; v <= top_ + step / 2; v += step) {
    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - right, y(v)); g.stroke();
    g.fillText(fmtAxis(v), left - 6, y(v));
  }
  g.textAlign = "center"; g.textBaseline = "top";
  const span = t1 - t0, ticks = Math.max(2, Math.min(5, Math.floor(pw / 110)));
  const when = span > 2 * 86400 ? { month: "short", day: "numeric" }
    : span > 3600 ? { hour: "2-digit", minute: "2-digit" } : { hour: "2-digit", minute: "2-digit", second: "2-digit" };
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + span * i / ticks, d = new Date(t * 1000);
    g.textAlign = i === 0 ? "left" : i === ticks ? "right" : "center";
    g.fillText(span > 2 * 86400 ? d.toLocaleDateString([], when) : d.toLocaleTimeString([], when), x(t), top + ph + 6);
  }
  const accent = css.getPropertyValue("--accent").trim();
  g.beginPath();
  points.forEach((p, i) => (i ? g.lineTo(x(p[0]), y(p[1])) : g.moveTo(x(p[0]), y(p[1]))));
  g.strokeStyle = accent; g.lineWidth = 2; g.stroke();
  g.lineTo(x(points[points.length - 1][0]), y(0)); g.lineTo(x(points[0][0]), y(0)); g.closePath();
  g.globalAlpha = 0.15; g.fillStyle = accent; g.fill(); g.globalAlpha = 1;
  if (points.length === 1) { g.fillStyle = accent; g.beginPath(); g.arc(x(points[0][0]), y(points[0][1]), 3, 0, 7); g.fill(); }
  const mean = points.reduce((a, p) => a + p[1], 0) / points.length;
  $("chart-note").textContent = points.length + " samples, mean " + fmtRate(mean) + ", peak " + fmtRate(max);
  if (!firstChart) { firstChart = true; performance.mark("first-chart"); }
}

// ------------------------------------------------------------------ rendering the state
function renderSummary(s) {
  const m = s.summary;
  $("name").textContent = s.name;
  document.title = fmtRate(m.rate_5s) + " - " + s.name;
  $("uptime").textContent = "up " + fmtDuration(m.elapsed);
  $("rate5s").textContent = fmtRate(m.rate_5s);
  $("rates").textContent = fmtRate(m.rate_1m) + " / " + fmtRate(m.rate_15m) + " / " + fmtRate(m.rate_avg);
  const rejected = Object.values(m.rejected).reduce((a, b) => a + b, 0);
  $("counts").textContent = m.accepted + " / " + rejected + " / " + m.stale + " / " + m.hw;
  $("best").textContent = fmtDiff(m.best_session) + " / " + fmtDiff(m.best_all_time);
  $("pooldiff").textContent = fmtDiff(m.pool_difficulty);
  $("best-session").textContent = fmtDiff(m.best_session);
  $("best-all").textContent = fmtDiff(m.best_all_time);
  const n = s.network;  // null for the sandbox: its job is no network's
  $("netdiff").textContent = n ? fmtDiff(n.difficulty) + (n.height ? " (height " + n.height + ")" : "") : "sandbox";
  $("block-every").textContent = n ? fmtDuration(n.block_every) : "-";
  $("block-chance").textContent = n ? fmtChance(n.chance_per_day) : "-";
  $("pool-bests").textContent = s.pools.length
    ? "Best per pool: " + s.pools.map((p) => p.name + " " + fmtDiff(p.best) + " (all time " + fmtDiff(p.best_all_time) + ")").join(", ")
    : "";
}

function renderDevices(devices) {
  const body = $("devices").tBodies[0], rows = [];
  for (const d of devices) {
    const name = twoLines(d.name, [d.model, d.port].filter(Boolean).join("  "));
    const tr = row([name, [d.state + (d.enabled ? "" : " (off)"), "state-" + d.state], [fmtRate(d.rate_5s), "n"],
      [fmtRate(d.rate_1m), "n"], [d.accepted, "n"], [d.rejected, "n"], [d.hw, "n"],
      [fmtOpt(d.temperature, " \u00b0C", 1), "n"], [fmtOpt(d.frequency, " MHz", 0), "n"],
      [fmtOpt(d.voltage, " V", 2), "n"], [fmtDuration(d.share_every), "n"]]);
    tr.dataset.device = d.name; tr.dataset.state = d.state;
    if (d.last_error) tr.title = d.last_error;
    rows.push(tr);
    for (const c of d.sub) {
      const label = (c.kind === "chip" ? "chip " : "module ") + c.id + (c.model ? " " + c.model : "") +
        (c.present ? "" : " (missing)");
      rows.push(row([label, [c.present ? "" : "missing", c.present ? "" : "state-Dead"], [fmtRate(c.rate), "n"], ["", "n"],
        [c.nonces ?? "-", "n"], ["", "n"], [c.hw ?? "-", "n"], [fmtOpt(c.temperature, " \u00b0C", 0), "n"],
        [fmtOpt(c.frequency, " MHz", 0), "n"], ["", "n"], ["", "n"]], "sub"));
    }
  }
  body.replaceChildren(...rows);
  const select = $("freq-device"), chosen = select.value;
  select.replaceChildren(...devices.map((d) => { const o = el("option", d.name); o.value = d.index; return o; }));
  if (chosen) select.value = chosen;
}

function action(label, path, body) {
  const b = el("button", label, "mini");
  b.type = "button";
  b.addEventListener("click", () => write(path, body));
  return b;
}
let poolsShown = "";
function renderPools(pools) {
  const body = $("pools").tBodies[0], shown = JSON.stringify(pools.map((p) => ({ ...p, rate_5s: 0 })));
  if (shown === poolsShown) return;  // unchanged: keep the rows (and a button under the pointer) as they are
  poolsShown = shown;
  body.replaceChildren(...pools.map((p) => {
    const reasons = Object.entries(p.rejected).map(([r, n]) => r + ": " + n).join(", ");
    const rejected = Object.values(p.rejected).reduce((a, b) => a + b, 0);
    const actions = el("span");
    if (!p.active && p.state !== "Disabled") actions.appendChild(action("switch", "/api/pools/" + p.index + "/switch"));
    actions.appendChild(p.state === "Disabled" ? action("enable", "/api/pools/" + p.index + "/enable")
      : action("disable", "/api/pools/" + p.index + "/disable"));
    if (!p.active) actions.appendChild(action("remove", "/api/pools/" + p.index + "/remove"));
    const tr = row([p.priority, twoLines(p.name + (p.active ? " (active)" : ""), p.url + (p.user ? "  " + p.user : "")), [p.state, "state-" + p.state],
      [fmtDiff(p.difficulty), "n"], [p.latency === null ? "-" : (p.latency * 1000).toFixed(0) + " ms", "n"],
      [p.accepted, "n"], rejected + (reasons ? " (" + reasons + ")" : ""), [fmtDiff(p.best), "n"], actions],
      p.active ? "active" : "");
    tr.dataset.pool = p.index; tr.dataset.active = String(p.active);
    if (p.last_error) tr.title = p.last_error;
    return tr;
  }));
}

function renderWorkers(workers) {
  // `miner serve`'s downstream miners (docs/serve.md §5); the card stays hidden when not serving
  $("workers-card").hidden = !workers.length;
  $("workers").tBodies[0].replaceChildren(...workers.map((w) => {
    const reasons = Object.entries(w.rejected).map(([r, n]) => r + ": " + n).join(", ");
    const rejected = Object.values(w.rejected).reduce((a, b) => a + b, 0);
    const proto = w.protocol === "stratum2" ? "SV2" : "SV1";  // which listener it came in on (docs/serve.md §10)
    const tr = row([twoLines(w.name, proto + " " + (w.user_agent || "") + (w.connections === 1 ? "" : "  " + w.connections + " connections")),
      [fmtRate(w.hashrate), "n"], [fmtDiff(w.difficulty), "n"], [w.accepted, "n"],
      rejected + (reasons ? " (" + reasons + ")" : ""), [w.forwarded, "n"], [fmtDiff(w.best_difficulty), "n"],
      [w.last_share_ago === null ? "-" : fmtDuration(w.last_share_ago) + " ago", "n"]]);
    tr.dataset.worker = w.name;
    return tr;
  }));
}

function renderShares(records) {
  const have = new Set(shareLog.map((r) => r.seq));
  for (const r of records) if (!have.has(r.seq)) shareLog.push(r);
  shareLog.sort((a, b) => b.seq - a.seq);
  shareLog = shareLog.slice(0, SHARE_LOG);
  $("sharelog").tBodies[0].replaceChildren(...shareLog.map((r) => row([fmtTime(r.at), r.device, r.pool,
    [fmtDiff(r.difficulty), "n"], [fmtDiff(r.hash_difficulty), "n"],
    r.accepted ? ["accepted", "ok"] : ["rejected: " + r.reason, "bad"]])));
}

function render(s) {
  state = s;
  renderSummary(s);
  renderDevices(s.devices);
  renderPools(s.pools);
  renderWorkers(s.workers || []);
  renderShares(s.shares);
  if ("writes" in s) $("token-state").textContent = s.writes ? tokenNote() : "writes are off: the miner was started without --http-token";
}

// ------------------------------------------------------------------ writes
function tokenNote() { return localStorage.getItem("miner-token") ? "token saved in this browser" : "no token saved: writes will be refused"; }
function say(text, ok) { const m = $("message"); m.textContent = text; m.className = ok ? "done" : "error"; }
async function write(path, body) {
  const headers = { "Content-Type": "application/json" }, token = localStorage.getItem("miner-token");
  if (token) headers.Authorization = "Bearer " + token;
  try {
    const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}), credentials: "same-origin" });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) { say((answer.error || r.statusText) + " (HTTP " + r.status + ")", false); return null; }
    say(answer.message || "done: " + path, true);
    refresh();
    return answer;
  } catch (e) { say("request failed: " + e, false); return null; }
}

// ------------------------------------------------------------------ loading and the live stream
async function getJSON(path) { const r = await fetch(path, { cache: "no-store" }); return r.ok ? r.json() : null; }
async function loadHistory() {
  const h = await getJSON("/api/history");
  if (h && h.history) for (const name of Object.keys(RINGS)) history[name] = h.history[name] || [];
}
async function refresh() { const s = await getJSON("/api/dashboard/state"); if (s) render(s); }

function live() {
  const source = new EventSource("/api/dashboard/events");
  source.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    render(s);
    const live5 = history["5s"], [t, v] = s.history_point, last = live5[live5.length - 1];
    if (!last || t - last[0] >= RINGS["5s"] * 0.95) {
      live5.push([t, v]);
      if (live5.length > 720) live5.shift();
      if (ring === "5s") drawChart();
    }
    $("live").textContent = "live"; $("live").className = "badge on";
  });
  source.onerror = () => { $("live").textContent = "disconnected, retrying"; $("live").className = "badge off"; };
}

function wire() {
  for (const b of $("ranges").querySelectorAll("button")) {
    b.classList.toggle("on", b.dataset.ring === ring);
    b.addEventListener("click", () => {
      ring = b.dataset.ring; localStorage.setItem("miner-ring", ring);
      for (const o of $("ranges").querySelectorAll("button")) o.classList.toggle("on", o === b);
      drawChart();
    });
  }
  $("tokenform").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("token").value.trim();
    if (v) localStorage.setItem("miner-token", v); else localStorage.removeItem("miner-token");
    $("token").value = ""; $("token-state").textContent = tokenNote();
  });
  $("addpool").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    if (await write("/api/pools", { url: f.url.value, user: f.user.value, password: f.password.value })) f.reset();
  });
  $("freqform").addEventListener("submit", (e) => {
    e.preventDefault();
    write("/api/devices/" + $("freq-device").value + "/frequency", { mhz: Number($("freq-mhz").value) });
  });
  $("restart").addEventListener("click", () => { if (confirm("Restart the miner?")) write("/api/restart"); });
  $("quit").addEventListener("click", () => { if (confirm("Stop the miner? It will not come back by itself.")) write("/api/quit"); });
  window.addEventListener("resize", drawChart);
}

async function main() {
  wire();
  // what the page was served with: the 5 s ring and the state, so the first chart needs no request
  let boot = null;
  try { boot = JSON.parse($("boot").textContent); } catch (e) { boot = null; }
  if (boot) {
    history["5s"] = boot.history["5s"];
    if (history["5s"].length === 0) history["5s"].push(boot.state.history_point);  // a fresh start
    if (ring === "5s") drawChart();
    render(boot.state);
  }
  live();
  await Promise.all([loadHistory(), boot ? null : refresh()]);
  if (history["5s"].length === 0 && state) history["5s"].push(state.history_point);
  drawChart();
}
main();
