// litehouse dashboard: polls /api/debug/db/stats and friends with the admin token, and
// follows /api/realtime for its live changes.
"use strict";

// Points per chart: one per 2-second poll, so the last minute.
const POINTS = 30;
const state = { token: null, previous: null, series: {}, devicesAt: null };

function tokenFromUrl() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const token = hash.get("token");
  if (token) {
    sessionStorage.setItem("litehouse-token", token);
    history.replaceState(null, "", location.pathname);
  }
  return token || sessionStorage.getItem("litehouse-token");
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { authorization: `Bearer ${state.token}`, ...(options.headers || {}) },
  });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem("litehouse-token");
    showLogin("That token was refused.");
    throw new Error(body && body.message);
  }
  if (!response.ok) throw new Error(body ? `${body.code}: ${body.message}` : response.statusText);
  return body;
}

function showLogin(message) {
  document.getElementById("main").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("status").textContent = message || "not connected";
}

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

const CARDS = [
  ["writes", "writes/s"], ["reads", "reads/s"], ["group", "mean group size"],
  ["p99w", "p99 write (µs)"], ["p99r", "p99 read (µs)"], ["queue", "queue depth"],
  ["busy", "busy retries/s"],
];

function buildCards() {
  const cards = document.getElementById("cards");
  cards.innerHTML = "";
  for (const [key, label] of CARDS) {
    state.series[key] = [];
    const card = document.createElement("div");
    card.className = "card";
    card.innerHTML = `<div class="label" title="${label}">${label}</div><div class="value" id="v-${key}">–</div><canvas id="c-${key}"></canvas>`;
    cards.appendChild(card);
  }
}

function draw(key, value) {
  const series = state.series[key];
  series.push(value);
  if (series.length > POINTS) series.shift();
  document.getElementById(`v-${key}`).textContent = value == null ? "n/a" : number.format(value);
  const canvas = document.getElementById(`c-${key}`);
  // Draw at the canvas's displayed size and the screen's pixel density, so lines stay crisp.
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  const values = series.filter((v) => v != null);
  if (values.length < 2) return;
  const max = Math.max(...values, 1e-9);
  // The newest point sits at the right edge; older ones scroll left, one slot per poll.
  const step = width / (POINTS - 1);
  const x = (i) => width - (series.length - 1 - i) * step;
  const y = (v) => height - ratio - ((v || 0) / max) * (height - 2 * ratio);
  context.beginPath();
  series.forEach((v, i) => (i === 0 ? context.moveTo(x(i), y(v)) : context.lineTo(x(i), y(v))));
  context.lineWidth = 1.5 * ratio;
  context.strokeStyle = "#0969da";
  context.stroke();
  context.lineTo(x(series.length - 1), height);
  context.lineTo(x(0), height);
  context.closePath();
  context.fillStyle = "rgba(9, 105, 218, 0.12)";
  context.fill();
}

async function refreshStats() {
  const stats = await api("/api/debug/db/stats");
  const now = performance.now();
  const engine = stats.engine;
  const previous = state.previous;
  const rateOf = (current) => (key) =>
    previous && previous[key] != null ? ((current[key] - previous[key]) * 1000) / (now - previous.at) : null;
  if (!engine) {
    // No SQLite engine (PostgreSQL): document reads and writes from the server's own
    // counters in /metrics; the engine-only numbers are not available.
    const current = { at: now, ...(await documentOperations()) };
    state.previous = current;
    const rate = rateOf(current);
    draw("writes", rate("writes"));
    draw("reads", rate("reads"));
    for (const key of ["group", "p99w", "p99r", "queue", "busy"]) draw(key, null);
    return;
  }
  const writes = ["execute", "execute_many", "script", "transaction"].reduce((sum, k) => sum + engine[k].count, 0);
  const current = { at: now, writes, reads: engine.read.count, busy: engine.locks.busy_retries };
  state.previous = current;
  const rate = rateOf(current);
  draw("writes", rate("writes"));
  draw("reads", rate("reads"));
  draw("group", engine.group_size.mean);
  draw("p99w", engine.write_latency_micros.p99);
  draw("p99r", engine.read_latency_micros.p99);
  draw("queue", engine.queue_depth);
  draw("busy", rate("busy"));
}

/** Totals of litehouse_docs_operations_total from /metrics: writes (create, update, delete)
 * and reads (read, list), over every collection. */
async function documentOperations() {
  const response = await fetch("/metrics", { headers: { authorization: `Bearer ${state.token}` } });
  if (!response.ok) throw new Error(`/metrics: ${response.status}`);
  const totals = { writes: 0, reads: 0 };
  for (const line of (await response.text()).split("\n")) {
    const match = /^litehouse_docs_operations_total\{(.*)\} (\S+)$/.exec(line);
    const op = match && /op="(\w+)"/.exec(match[1]);
    if (!op) continue;
    const kind = ["create", "update", "delete"].includes(op[1]) ? "writes" : "reads";
    totals[kind] += Number(match[2]);
  }
  return totals;
}

async function refreshCollections() {
  const list = await api("/api/collections");
  const rows = await Promise.all(list.items.map(async (collection) => {
    const page = await api(`/api/collections/${encodeURIComponent(collection.name)}/docs?perPage=1`);
    return { collection, count: page.totalItems };
  }));
  // Follow every collection (up to the endpoint's 16) once some exist, unless the user chose.
  const input = document.getElementById("live-collections");
  if (!live.controller && rows.length > 0 && !input.value) {
    input.value = rows.slice(0, 16).map(({ collection }) => collection.name).join(",");
    follow(input.value);
  }
  const body = document.querySelector("#collections tbody");
  body.innerHTML = "";
  for (const { collection, count } of rows) {
    const row = body.insertRow();
    row.insertCell().textContent = collection.name;
    const cell = row.insertCell();
    cell.className = "num";
    cell.textContent = number.format(count);
    row.insertCell().textContent = collection.indexes.map((index) =>
      `${index.name}(${index.fields.map((f) => `${f.path}:${f.type}`).join(", ")})${index.unique ? " unique" : ""}`).join("; ") || "–";
  }
}

async function refreshLogs() {
  const level = document.getElementById("log-level").value;
  const query = new URLSearchParams({ limit: "50" });
  if (level) query.set("level", level);
  const body = document.querySelector("#logs tbody");
  try {
    const logs = await api(`/api/debug/logs?${query}`);
    body.innerHTML = "";
    for (const entry of logs.items) {
      const row = body.insertRow();
      row.insertCell().textContent = new Date(entry.unix_micros / 1000).toLocaleTimeString();
      const levelCell = row.insertCell();
      levelCell.textContent = entry.level;
      levelCell.className = `level-${entry.level}`;
      row.insertCell().textContent = entry.message;
    }
  } catch (error) {
    body.innerHTML = `<tr><td colspan="3" class="muted">${error.message}</td></tr>`;
  }
}

/** "3 s ago", "5 min ago", "2 h ago", or "never". */
function ago(ms) {
  if (ms == null) return "never";
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** Local wall-clock time as HH:MM:SS (24 h). */
function clockTime(date) {
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/**
 * A failed devices refresh: the rows stay (greyed out) under a line saying why and how old
 * they are, instead of passing for current.
 */
function devicesStale(error) {
  const line = document.getElementById("devices-stale");
  const shown = state.devicesAt ? `showing data from ${clockTime(state.devicesAt)}` : "no data yet";
  line.textContent = `could not refresh: ${error.message || "no answer"}, ${shown}`;
  line.hidden = false;
  document.getElementById("devices").classList.add("stale");
}

/** Sync devices: /api/debug/sync/devices, one row per device, online ones first. */
async function refreshDevices() {
  const answer = await api("/api/debug/sync/devices");
  state.devicesAt = new Date();
  document.getElementById("devices-stale").hidden = true;
  document.getElementById("devices").classList.remove("stale");
  const now = answer.serverTimeMs;
  const since = (at) => (at == null ? null : now - at);
  const devices = [...answer.devices].sort((a, b) =>
    (b.online - a.online) || ((b.lastSeenMs || 0) - (a.lastSeenMs || 0)) || a.device.localeCompare(b.device));
  const online = devices.filter((d) => d.online).length;
  const hb = answer.heartbeats;
  const lost = hb ? hb.dropped + hb.failed : 0;
  const window = Math.round(answer.onlineWithinMs / 1000);
  document.getElementById("devices-summary").textContent =
    `${devices.length} device${devices.length === 1 ? "" : "s"} · ${online} online (seen within ${window} s)` +
    (hb ? ` · ${number.format(hb.recorded)} heartbeats${lost ? ` · ${number.format(lost)} lost` : ""}` : " · heartbeats off");
  const body = document.querySelector("#devices tbody");
  body.innerHTML = "";
  if (devices.length === 0) {
    body.innerHTML = `<tr><td colspan="8" class="muted">no device has synced yet</td></tr>`;
    return;
  }
  for (const d of devices) {
    const row = body.insertRow();
    row.dataset.device = d.device;
    row.className = d.online ? "online" : "offline";
    const name = row.insertCell();
    const label = document.createElement("span");
    label.className = "device";
    label.title = d.online ? "online" : "offline";
    label.innerHTML = `<span class="dot"></span>`;
    label.append(d.device);
    name.append(label);
    for (const at of [d.lastSeenMs, d.lastPushMs, d.lastPullMs]) {
      const cell = row.insertCell();
      cell.className = "ago";
      cell.textContent = ago(since(at));
      if (at != null) cell.title = new Date(at).toLocaleString();
    }
    for (const value of [d.epoch, d.lastSeq]) {
      const cell = row.insertCell();
      cell.className = "num";
      cell.textContent = value == null ? "–" : String(value);
    }
    const rejections = row.insertCell();
    rejections.className = "num rejections";
    const pill = document.createElement("span");
    pill.className = d.rejections > 0 ? "pill bad" : "pill";
    pill.textContent = number.format(d.rejections);
    if (d.lastRejection) pill.title = `last: seq ${d.lastRejection.seq}: ${d.lastRejection.reason}`;
    rejections.append(pill);
    const client = row.insertCell();
    client.className = "client";
    client.textContent = [d.remoteAddr, d.userAgent].filter(Boolean).join(" · ") || "–";
    if (d.stateError) client.textContent = `unreadable push state: ${d.stateError}`;
  }
}

// Live changes: the /api/realtime Server-Sent Events stream, read with fetch because
// EventSource cannot send the token header. It resumes from the last event id after a reset
// or a dropped connection, so no change is skipped.
const LIVE_ROWS = 20;
const live = { controller: null, lastId: null, collections: "" };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function showChange(change) {
  const body = document.querySelector("#changes tbody");
  const row = body.insertRow(0);
  row.insertCell().textContent = new Date(change.at).toLocaleTimeString();
  row.insertCell().textContent = change.collection;
  row.insertCell().textContent = change.op;
  row.insertCell().textContent = change.id || "–";
  const version = row.insertCell();
  version.className = "num";
  version.textContent = change.version;
  const cursor = row.insertCell();
  cursor.className = "num";
  cursor.textContent = change.cursor;
  while (body.rows.length > LIVE_ROWS) body.deleteRow(-1);
}

/** Handles one SSE block; returns false when the stream is over (reset or error). */
function handleEvent(block, status) {
  let event = "message";
  let id = null;
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("id:")) id = line.slice(3).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trimStart();
  }
  if (!data) return true;
  if (id) live.lastId = id;
  const body = JSON.parse(data);
  if (event === "change") showChange(body);
  else if (event === "upToDate") status.textContent = `following ${live.collections}`;
  else if (event === "reset") { status.textContent = "fell behind; resuming"; return false; }
  else if (event === "error") { status.textContent = `error: ${body.code}: ${body.message}`; return false; }
  return true;
}

async function follow(collections) {
  if (live.controller) live.controller.abort();
  const controller = new AbortController();
  live.controller = controller;
  live.collections = collections;
  live.lastId = null;
  document.querySelector("#changes tbody").innerHTML = "";
  const status = document.getElementById("live-status");
  status.textContent = "connecting…";
  while (!controller.signal.aborted) {
    try {
      const headers = { authorization: `Bearer ${state.token}` };
      if (live.lastId) headers["last-event-id"] = live.lastId;
      const query = new URLSearchParams({ collections });
      const response = await fetch(`/api/realtime?${query}`, { headers, signal: controller.signal });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        status.textContent = body ? `${body.code}: ${body.message}` : response.statusText;
        // Past retention: start again from now.
        if (response.status === 410) live.lastId = null;
        if (response.status === 400 || response.status === 404) return;
        await sleep(5000);
        continue;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let open = true;
      while (open) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while (open && (end = buffer.indexOf("\n\n")) >= 0) {
          open = handleEvent(buffer.slice(0, end), status);
          buffer = buffer.slice(end + 2);
        }
      }
      reader.cancel().catch(() => {});
    } catch (error) {
      if (controller.signal.aborted) return;
      status.textContent = `reconnecting: ${error.message}`;
    }
    await sleep(1000);
  }
}

async function tick() {
  refreshDevices().catch(devicesStale);
  try {
    await refreshStats();
    document.getElementById("status").textContent = `connected · ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.getElementById("status").textContent = `error: ${error.message}`;
  }
}

function start() {
  document.getElementById("login").hidden = true;
  document.getElementById("main").hidden = false;
  buildCards();
  tick();
  refreshCollections().catch(() => {});
  refreshLogs();
  clearInterval(state.timers);
  state.ticks = 0;
  state.timers = setInterval(() => {
    tick();
    state.ticks += 1;
    // Collections and logs change slower and cost more: every fifth tick (10 s).
    if (state.ticks % 5 === 0) { refreshCollections().catch(() => {}); refreshLogs(); }
  }, 2000);
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = document.getElementById("token").value.trim();
  sessionStorage.setItem("litehouse-token", state.token);
  start();
});

document.querySelectorAll("[data-action]").forEach((button) => {
  button.addEventListener("click", async () => {
    const out = document.getElementById("maintenance-result");
    out.textContent = `${button.dataset.action}…`;
    try {
      const result = await api(`/api/debug/db/${button.dataset.action}`, { method: "POST" });
      out.textContent = JSON.stringify(result, null, 2);
    } catch (error) {
      out.textContent = error.message;
    }
  });
});

document.getElementById("explain").addEventListener("submit", async (event) => {
  event.preventDefault();
  const collection = encodeURIComponent(document.getElementById("explain-collection").value.trim());
  const query = document.getElementById("explain-query").value.trim().replace(/^\?/, "");
  const out = document.getElementById("explain-result");
  try {
    const plan = await api(`/api/debug/explain/${collection}?${query}`);
    out.textContent = `${plan.sql}\n\nparams: ${JSON.stringify(plan.params)}\nuses index: ${plan.usesIndex}\n\n${plan.plan.join("\n")}`;
  } catch (error) {
    out.textContent = error.message;
  }
});

document.getElementById("log-level").addEventListener("change", refreshLogs);

document.getElementById("live").addEventListener("submit", (event) => {
  event.preventDefault();
  const collections = document.getElementById("live-collections").value.replace(/\s+/g, "");
  if (collections) follow(collections);
});

state.token = tokenFromUrl();
if (state.token) start(); else showLogin();
