// 12345 wallboard: a snapshot on connect, then patches; timers tick locally from the PBX event time.
// Made to be read from 5 m on a 1920x1080 screen: big figures coloured by the centre's thresholds
// (GET /api/v1/telephony/wallboard: [wallboard] and the targets in [ami]), agents by their names.
"use strict";
const STATE_NAMES = {available: "空闲", ringing: "振铃", in_call: "通话中", paused: "示忙", unavailable: "离线",
                     logged_out: "未登录"};
let view = null;
let offset = 0; // local clock minus PBX event time, so waits keep counting between events
// The server's alert messages (the rate at the moment the alert turned on) are kept by the feed but not shown:
// the banner reads the same figures as the tiles (queueFigures), so it never lags behind them.
const alerts = {};
// GB/T 33358 until the centre's own thresholds arrive
let thresholds = {answer_rate_target: 0.95, answer_rate_red: 0.85, service_level_seconds: 15, service_level_target: 0.8,
                  service_level_red: 0.6, wait_amber_seconds: 15, wait_red_seconds: 60, alert_min_calls: 5,
                  mask_numbers: true};
let agentInfo = {}; // interface -> {name, answered, avg_talk} (names from the accounts, figures of today)

function pct(x) { return x === null || x === undefined ? "—" : (x * 100).toFixed(1) + "%"; }
function secs(x) { return x === null || x === undefined ? "—" : Math.round(x) + " 秒"; }
function dur(s) { s = Math.max(0, Math.floor(s)); const m = Math.floor(s / 60); return m + ":" + String(s % 60).padStart(2, "0"); }
function pbxNow() { return Date.now() / 1000 - offset; }
function esc(t) { const d = document.createElement("span"); d.textContent = t == null ? "" : String(t); return d.innerHTML; }

// A wall screen is seen by visitors: 13912348888 -> 139****8888 (extensions of 4 digits or fewer stay).
function mask(num) {
  if (!num) return "未知号码";
  if (!thresholds.mask_numbers || num.length <= 4) return num;
  if (num.length < 7) return num.slice(0, 1) + "*".repeat(num.length - 3) + num.slice(-2);
  return num.slice(0, 3) + "*".repeat(num.length - 7) + num.slice(-4);
}
// good at or above the target, bad below the red line, warn between
function level(x, target, red) { return x === null || x === undefined ? "" : x >= target ? "good" : x >= red ? "warn" : "bad"; }
function waitLevel(s) { return s >= thresholds.wait_red_seconds ? "bad" : s >= thresholds.wait_amber_seconds ? "warn" : "good"; }

// The one computation of a queue's figures: the tiles and the banner both show these.
function queueFigures(q) {
  const s = q.stats || {};
  const th = thresholds;
  const finished = (s.answered || 0) + (s.abandoned || 0) + (s.timed_out || 0);
  const rate = s.answer_rate === undefined ? null : s.answer_rate;
  const slKey = "service_level_" + th.service_level_seconds;
  const sl = s[slKey] !== undefined ? s[slKey] : (s.service_level_15 === undefined ? null : s.service_level_15);
  return {rate, rateLevel: level(rate, th.answer_rate_target, th.answer_rate_red),
          sl, slLevel: level(sl, th.service_level_target, th.service_level_red),
          slSeconds: s[slKey] !== undefined ? th.service_level_seconds : 15,
          alert: rate !== null && finished >= th.alert_min_calls && rate < th.answer_rate_target};
}

let liveSeq = 0;
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

function kpi(label, value, cls, big) {
  return `<div class="kpi${big ? " big" : ""} ${cls || ""}"><span>${label}</span><b>${value}</b></div>`;
}

function renderQueues() {
  const main = document.getElementById("queues");
  const now = pbxNow();
  const parts = [];
  for (const q of Object.values(view.queues || {})) {
    const s = q.stats || {};
    const f = queueFigures(q);
    // free: the agent's state over all its queues and calls (a member's device status lags behind a call)
    const free = Object.values(view.agents || {}).filter(a => a.state === "available" && (a.queues || []).includes(q.name)).length;
    const waiting = q.waiting || [];
    const rows = waiting.map(w => {
      const waited = now - w.joined;
      return `<tr class="waiter" data-caller="${esc(mask(w.caller_num))}"><td>${w.position}</td><td class="num">${esc(mask(w.caller_num))}</td>` +
        `<td class="wait ${waitLevel(waited)}" data-joined="${w.joined}">${dur(waited)}</td></tr>`;
    }).join("");
    const longest = waiting.reduce((a, w) => Math.max(a, now - w.joined), 0);
    parts.push(`<div class="queue${f.alert ? " alert" : ""}" data-queue="${esc(q.name)}">
      <h2>队列 ${esc(q.name)}</h2>
      <div class="kpis main">
        ${kpi("排队中", `<span class="waiting-count">${waiting.length}</span>`, waiting.length ? waitLevel(longest) : "good", true)}
        ${kpi("最长等待", waiting.length ? dur(longest) : "—", waiting.length ? waitLevel(longest) : "", true)}
        ${kpi("接通率", `<span class="answer-rate">${pct(f.rate)}</span>`, f.rateLevel, true)}
        ${kpi(`${f.slSeconds}秒接通率`, `<span class="sl">${pct(f.sl)}</span>`, f.slLevel, true)}
      </div>
      <div class="kpis">
        ${kpi("空闲座席", free, free ? "" : "warn")}
        ${kpi("今日来电", s.offered || 0)}
        ${kpi("接通", s.answered || 0)}
        ${kpi("放弃", `<span class="abandoned">${s.abandoned || 0}</span>`, s.abandoned ? "bad" : "")}
        ${kpi("平均等待", secs(s.avg_wait))}
        ${kpi("平均通话", s.avg_talk == null ? "—" : dur(s.avg_talk))}
      </div>
      <table class="waiters"><thead><tr><th>位置</th><th>来电号码</th><th>已等待</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="3" class="empty">无排队来电</td></tr>'}</tbody></table>
    </div>`);
  }
  main.innerHTML = parts.join("") || '<div class="empty">暂无队列数据</div>';
}

function renderAgents() {
  const box = document.getElementById("agents");
  const now = pbxNow();
  const counts = {};
  const nameOf = a => (agentInfo[a.interface] || {}).name || a.name || a.interface;
  const cards = Object.values(view.agents || {}).sort((a, b) => nameOf(a).localeCompare(nameOf(b), "zh-CN")).map(a => {
    counts[a.state] = (counts[a.state] || 0) + 1;
    const info = agentInfo[a.interface] || {};
    const label = STATE_NAMES[a.state] || a.state;
    const reason = a.state === "paused" && a.pause_reason ? `<span class="reason">${esc(a.pause_reason)}</span>` : "";
    return `<div class="agent state-${esc(a.state)}" data-interface="${esc(a.interface)}" data-state="${esc(a.state)}">
      <div class="name">${esc(nameOf(a))}</div>
      <div class="now"><span class="label">${label}</span>${reason}<span class="since">${a.since ? dur(now - a.since) : "—"}</span></div>
      <div class="today">今日接听 <b class="answered">${info.answered || 0}</b> · 平均通话 <b class="avg-talk">${info.avg_talk == null ? "—" : dur(info.avg_talk)}</b></div>
    </div>`;
  }).join("");
  box.innerHTML = cards || '<div class="empty">暂无座席</div>';
  document.getElementById("agent-summary").textContent =
    Object.keys(STATE_NAMES).filter(k => counts[k]).map(k => `${STATE_NAMES[k]} ${counts[k]}`).join(" · ");
}

function renderAlerts() {
  const out = [];
  for (const q of Object.values(view.queues || {})) {
    const f = queueFigures(q);
    if (!f.alert) continue;
    out.push(`<div class="banner" data-queue="${esc(q.name)}">⚠ 队列 ${esc(q.name)} 接通率 <b class="answer-rate">${pct(f.rate)}</b> 低于目标 ${pct(thresholds.answer_rate_target)}` +
             `（${f.slSeconds}秒接通率 ${pct(f.sl)}）</div>`);
  }
  document.getElementById("alerts").innerHTML = out.join("");
}

async function loadWallboard() {
  try {
    const resp = await fetch("/api/v1/telephony/wallboard", {credentials: "same-origin"});
    if (!resp.ok) return;
    const data = await resp.json();
    thresholds = Object.assign(thresholds, data.thresholds || {});
    agentInfo = data.agents || {};
    document.body.dataset.loaded = "1";
    render();
  } catch (e) { /* the next round tries again */ }
}

function render() { if (!view) return; renderConn(); renderQueues(); renderAgents(); renderAlerts(); }

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/telephony?view=wallboard`);
  ws.onmessage = (ev) => {
    const frame = JSON.parse(ev.data);
    for (const msg of frame.type === "batch" ? frame.messages : [frame]) {  // a batch: several messages in order
    if (msg.type === "snapshot") { view = msg.data; liveSeq = msg.seq || 0; setOffset(); }
    else if (msg.type === "patch" && view) { if (!(msg.seq <= liveSeq)) { liveSeq = msg.seq; LivePatches.apply(view, msg.patches); if (msg.patches.some(p => p.op === "now")) setOffset(); } }
    else if (msg.type === "alert") { if (msg.data.active) alerts[msg.data.queue] = msg.data; else delete alerts[msg.data.queue]; }
    }
    render();
  };
  ws.onclose = () => {
    const el = document.getElementById("conn");
    el.className = "conn off"; el.dataset.state = "offline"; el.textContent = "未连接（监控断开）";
    setTimeout(connect, 2000);
  };
}

setInterval(() => { document.getElementById("clock").textContent = new Date().toLocaleTimeString("zh-CN"); render(); }, 1000);
setInterval(loadWallboard, 10000); // answered calls today grow as calls end
render();
loadWallboard();
connect();
