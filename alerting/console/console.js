// ChemWatch control-room console: live alarm list, incidents, site risk, floods.
// Plain JavaScript, no build step. Auth: session cookie from POST /login.
"use strict";

const PRIORITY = { critical: 0, high: 1, medium: 2, low: 3 };
const SHOWN = new Set(["UNACK", "ACKED", "RTNUN"]);
const alarms = new Map();
let lastMessage = 0;
let source = null;
let audio = null;

const $ = (sel) => document.querySelector(sel);

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  if (response.status === 401) { showLogin(); throw new Error("not signed in"); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : response.statusText);
  return body;
}

function showLogin() {
  $("#login").hidden = false;
  $("#board").hidden = true;
  if (source) source.close();
}

async function login(event) {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("/login", { method: "POST", body: JSON.stringify({
      username: $("#username").value, password: $("#password").value }) });
    await start();
  } catch (err) {
    $("#login-error").textContent = err.message;
  }
}

async function start() {
  const me = await api("/me");
  $("#whoami").textContent = `${me.user} (${me.role})`;
  $("#login").hidden = true;
  $("#board").hidden = false;
  const rows = await api("/alarms");
  alarms.clear();
  rows.forEach((a) => alarms.set(a.alarm_id, a));
  renderAlarms();
  await Promise.all([loadIncidents(), loadFloods()]);
  connect();
}

function connect() {
  if (source) source.close();
  source = new EventSource("/stream");  // the browser resumes with Last-Event-ID by itself
  source.addEventListener("open", () => setConn(true));
  source.addEventListener("error", () => setConn(false));
  source.addEventListener("hello", touch);
  source.addEventListener("heartbeat", touch);
  source.addEventListener("alarm", (e) => { touch(); onAlarm(JSON.parse(e.data)); });
  source.addEventListener("incident", () => { touch(); loadIncidents(); });
  source.addEventListener("flood", () => { touch(); loadFloods(); });
}

function setConn(up) {
  const el = $("#conn");
  el.textContent = up ? "live" : "reconnecting";
  el.className = "conn " + (up ? "up" : "down");
}

function touch() { lastMessage = Date.now(); }

function onAlarm(alarm) {
  const before = alarms.get(alarm.alarm_id);
  if (SHOWN.has(alarm.state)) alarms.set(alarm.alarm_id, alarm);
  else alarms.delete(alarm.alarm_id);
  const isNew = alarm.state === "UNACK" && (!before || before.occurrence_id !== alarm.occurrence_id);
  if (isNew && alarm.priority === "critical") beep();
  renderAlarms();
}

function sorted() {
  return [...alarms.values()].sort((a, b) =>
    (PRIORITY[a.priority] - PRIORITY[b.priority]) ||
    (Date.parse(b.activated_at) - Date.parse(a.activated_at)));
}

function renderAlarms() {
  const body = $("#alarms tbody");
  const list = sorted();
  body.innerHTML = list.map((a) => `
    <tr class="${esc(a.priority)} ${esc(a.state)} ${a.flood_id ? "flooded" : ""}" data-alarm="${esc(a.alarm_id)}">
      <td>${esc(a.priority)}</td>
      <td class="state">${esc(a.state)}</td>
      <td>${new Date(a.activated_at).toLocaleTimeString()}</td>
      <td>${esc(a.site_id)} / ${esc(a.area)}</td>
      <td>${esc(a.alarm_id)}${a.category === "maintenance" ? ' <span class="badge">sensor fault</span>' : ""}${a.chattering ? ' <span class="badge">chattering</span>' : ""}</td>
      <td>${Number(a.value).toFixed(2)}</td>
      <td>${esc(a.explanation)}</td>
      <td>
        ${a.state !== "ACKED" ? `<button class="ack" data-id="${esc(a.alarm_id)}">Ack</button>` : ""}
        <button class="shelve" data-id="${esc(a.alarm_id)}">Shelve</button>
      </td>
    </tr>`).join("");
  $("#empty").hidden = list.length > 0;
}

async function onClick(event) {
  const id = event.target.dataset.id;
  if (!id) return;
  try {
    if (event.target.classList.contains("ack")) {
      onAlarm(await api(`/alarms/${encodeURIComponent(id)}/ack`, { method: "POST", body: "{}" }));
    } else if (event.target.classList.contains("shelve")) {
      const reason = window.prompt(`Shelve ${id}: reason?`);
      if (!reason) return;
      const minutes = Number(window.prompt("For how many minutes?", "60")) || 60;
      onAlarm(await api(`/alarms/${encodeURIComponent(id)}/shelve`, {
        method: "POST", body: JSON.stringify({ reason, duration_s: minutes * 60 }) }));
    }
  } catch (err) {
    window.alert(err.message);
  }
}

async function loadIncidents() {
  const [incidents, sites] = await Promise.all([api("/incidents"), api("/sites/risk")]);
  $("#incidents").innerHTML = incidents.map((i) => `
    <div class="incident ${esc(i.level)}">${esc(i.level.toUpperCase())} INCIDENT - ${esc(i.title)}
      - ${esc(i.site_id)} / ${esc(i.area)} (confidence ${Math.round(i.confidence * 100)} %)</div>`).join("");
  $("#sites").innerHTML = sites.map((s) => `
    <div class="tile ${esc(s.level)}" data-site="${esc(s.site_id)}">
      <div>${esc(s.name)}</div>
      <div class="level">${esc(s.level)}</div>
      <div>${s.open_incidents} open incident(s); hazard grade ${s.worst_hazard_grade ?? "-"}</div>
    </div>`).join("");
}

async function loadFloods() {
  const floods = await api("/floods");
  const el = $("#flood");
  el.hidden = floods.length === 0;
  el.innerHTML = floods.map((f) => `ALARM FLOOD ${esc(f.site_id)} / ${esc(f.area)}:
    ${f.alarm_count} alarms since ${new Date(f.started_at).toLocaleTimeString()},
    first out ${esc(f.first_alarm_id)}`).join("<br>");
}

function beep() {
  if (!$("#sound").checked) return;
  audio = audio || new AudioContext();
  const osc = audio.createOscillator();
  osc.frequency.value = 880;
  osc.connect(audio.destination);
  osc.start();
  osc.stop(audio.currentTime + 0.6);
}

function tickClock() {
  const el = $("#clock");
  if (!lastMessage) return;
  const age = (Date.now() - lastMessage) / 1000;
  el.textContent = `updated ${new Date(lastMessage).toLocaleTimeString()}`;
  el.classList.toggle("stale", age > 20);  // heartbeats come every 5 s: a frozen screen shows
}

$("#login-form").addEventListener("submit", login);
$("#alarms").addEventListener("click", onClick);
$("#wall").addEventListener("click", () => document.body.classList.toggle("wall"));
if (new URLSearchParams(location.search).has("wall")) document.body.classList.add("wall");
setInterval(tickClock, 1000);
start().catch(() => showLogin());
