// 12345 wallboard: a snapshot on connect, then patches; timers tick locally from the PBX event time.
"use strict";
const STATE_NAMES = {available: "空闲", ringing: "振铃", in_call: "通话中", paused: "示忙", unavailable: "离线",
                     logged_out: "未登录"};
let view = null;
let offset = 0; // local clock minus PBX event time, so waits keep counting between events
const alerts = {};

function pct(x) { return x === null || x === undefined ? "—" : (x * 100).toFixed(1) + "%"; }
function secs(x) { return x === null || x === undefined ? "—" : Math.round(x) + " 秒"; }
function dur(s) { s = Math.max(0, Math.floor(s)); const m = Math.floor(s / 60); return m + ":" + String(s % 60).padStart(2, "0"); }
function pbxNow() { return Date.now() / 1000 - offset; }
function esc(t) { const d = document.createElement("span"); d.textContent = t == null ? "" : String(t); return d.innerHTML; }

function applyPatches(patches) {
  for (const p of patches) {
    if (p.op === "put") { (view[p.kind + "s"] = view[p.kind + "s"] || {})[p.key] = p.value; }
    else if (p.op === "del") { delete (view[p.kind + "s"] || {})[p.key]; }
    else if (p.op === "now") { view.now = p.now; view.day = p.day; setOffset(); }
    else if (p.op === "ami") { view.ami = p.value; }
  }
}
function setOffset() { if (view && view.now) offset = Date.now() / 1000 - view.now; }

function renderConn() {
  const el = document.getElementById("conn");
  const ami = (view && view.ami) || {};
  const live = ami.connected;
  el.className = "conn " + (live ? "on" : "off");
  el.dataset.state = live ? "online" : "offline";
  el.textContent = live ? "已连接" : (ami.enabled ? "未连接（重连中）" : "未连接");
  el.title = ami.last_error || "";
}

function renderQueues() {
  const main = document.getElementById("queues");
  const now = pbxNow();
  const parts = [];
  for (const q of Object.values(view.queues || {})) {
    const s = q.stats || {};
    const members = q.members || [];
    const free = members.filter(m => !m.paused && m.status === 1).length;
    const rows = (q.waiting || []).map(w =>
      `<tr class="waiter" data-caller="${esc(w.caller_num)}"><td>${w.position}</td><td>${esc(w.caller_num || "未知号码")}</td>` +
      `<td class="wait" data-joined="${w.joined}">${dur(now - w.joined)}</td></tr>`).join("");
    const longest = (q.waiting || []).reduce((a, w) => Math.max(a, now - w.joined), 0);
    parts.push(`<div class="queue${q.alert ? " alert" : ""}" data-queue="${esc(q.name)}">
      <h2>队列 ${esc(q.name)}</h2>
      <div class="kpis">
        <div class="kpi"><span>排队中</span><b class="waiting-count">${(q.waiting || []).length}</b></div>
        <div class="kpi"><span>最长等待</span><b>${(q.waiting || []).length ? dur(longest) : "—"}</b></div>
        <div class="kpi"><span>空闲座席</span><b>${free}</b></div>
        <div class="kpi"><span>今日来电</span><b>${s.offered || 0}</b></div>
        <div class="kpi"><span>接通</span><b>${s.answered || 0}</b></div>
        <div class="kpi ${s.abandoned ? "bad" : ""}"><span>放弃</span><b class="abandoned">${s.abandoned || 0}</b></div>
        <div class="kpi ${q.alert ? "bad" : ""}"><span>接通率</span><b class="answer-rate">${pct(s.answer_rate)}</b></div>
        <div class="kpi"><span>15秒接通率</span><b class="sl15">${pct(s.service_level_15)}</b></div>
        <div class="kpi"><span>放弃率</span><b>${pct(s.abandon_rate)}</b></div>
        <div class="kpi"><span>平均等待</span><b>${secs(s.avg_wait)}</b></div>
        <div class="kpi"><span>今日最长等待</span><b>${secs(s.longest_wait)}</b></div>
        <div class="kpi"><span>平均通话</span><b>${secs(s.avg_talk)}</b></div>
      </div>
      <table><thead><tr><th>位置</th><th>来电号码</th><th>已等待</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="3" class="empty">无排队来电</td></tr>'}</tbody></table>
    </div>`);
  }
  main.innerHTML = parts.join("") || '<div class="empty">暂无队列数据</div>';
}

function renderAgents() {
  const tbody = document.querySelector("#agents tbody");
  const now = pbxNow();
  const counts = {};
  const rows = Object.values(view.agents || {}).sort((a, b) => (a.name || a.interface).localeCompare(b.name || b.interface)).map(a => {
    counts[a.state] = (counts[a.state] || 0) + 1;
    const label = STATE_NAMES[a.state] || a.state;
    const reason = a.state === "paused" && a.pause_reason ? `（${esc(a.pause_reason)}）` : "";
    return `<tr class="agent" data-interface="${esc(a.interface)}" data-state="${esc(a.state)}"><td>${esc(a.name)}</td><td>${esc(a.interface)}</td>` +
      `<td class="state-${esc(a.state)}">${label}${reason}</td><td>${a.since ? dur(now - a.since) : "—"}</td><td>${esc((a.queues || []).join("、"))}</td></tr>`;
  }).join("");
  tbody.innerHTML = rows || '<tr><td colspan="5" class="empty">暂无座席</td></tr>';
  document.getElementById("agent-summary").textContent =
    Object.keys(STATE_NAMES).filter(k => counts[k]).map(k => `${STATE_NAMES[k]} ${counts[k]}`).join(" · ");
}

function renderAlerts() {
  document.getElementById("alerts").innerHTML = Object.values(alerts).map(a =>
    `<div>⚠ 队列 ${esc(a.queue)} 接通率 ${pct(a.answer_rate)} 低于目标 ${pct(a.target)}（15秒接通率 ${pct(a.service_level_15)}）</div>`).join("");
}

function render() { if (!view) return; renderConn(); renderQueues(); renderAgents(); renderAlerts(); }

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/telephony`);
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "snapshot") { view = msg.data; setOffset(); }
    else if (msg.type === "patch" && view) { applyPatches(msg.patches); }
    else if (msg.type === "alert") { if (msg.data.active) alerts[msg.data.queue] = msg.data; else delete alerts[msg.data.queue]; }
    render();
  };
  ws.onclose = () => {
    const el = document.getElementById("conn");
    el.className = "conn off"; el.dataset.state = "offline"; el.textContent = "未连接（监控断开）";
    setTimeout(connect, 2000);
  };
}

setInterval(() => { document.getElementById("clock").textContent = new Date().toLocaleTimeString("zh-CN"); render(); }, 1000);
render();
connect();
