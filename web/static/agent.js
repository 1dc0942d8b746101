// Agent console: live status and screen pop over the telephony WebSocket, the draft ticket's common path
// (save -> accept -> dispatch, or answer on the spot) in one click each, knowledge search, keyboard shortcuts.
"use strict";
(() => {
  const C = window.CONSOLE, { api, optional, toast, esc, fmtTime, shortcut } = Hotline;
  const $ = id => document.getElementById(id);
  const form = $("ticket-form");

  // ------------------------------------------------------------ ticket form
  const initial = {};
  if (form) for (const el of form.elements) if (el.name) initial[el.name] = el.value;
  function changedFields() {
    const out = {};
    for (const el of form.elements) if (el.name && el.value !== initial[el.name]) out[el.name] = el.value;
    return out;
  }
  async function save(quiet) {
    if (!C.ticket) return create();
    const changes = changedFields();
    if (Object.keys(changes).length === 0) { if (!quiet) toast("没有需要保存的修改"); return; }
    await api("POST", `/api/v1/tickets/${C.ticket}/actions/edit`, changes);
    Object.assign(initial, changes);
    if (!quiet) toast("已保存");
  }
  async function create() {
    const data = {};
    for (const el of form.elements) if (el.name) data[el.name] = el.value;
    data.accept = true;
    const t = await api("POST", "/api/v1/tickets", data);
    location.href = "/agent?ticket=" + encodeURIComponent(t.number);
  }
  async function accept(quiet) {
    await save(true);
    if (C.status === "draft") { await api("POST", `/api/v1/tickets/${C.ticket}/actions/accept`, {}); C.status = "accepted"; }
    if (!quiet) { toast("已受理"); setTimeout(() => location.reload(), 300); }
  }
  async function dispatch() {
    const lead = parseInt($("d-lead").value, 10);
    if (!lead) { toast("请选择主办单位", true); $("d-lead").focus(); return; }
    const co = Array.from($("d-co").selectedOptions).map(o => parseInt(o.value, 10)).filter(i => i !== lead);
    await accept(true);
    await api("POST", `/api/v1/tickets/${C.ticket}/actions/dispatch`, { lead_department_id: lead, co_handler_ids: co, note: $("d-note").value });
    toast("已派单");
    setTimeout(() => { location.href = "/agent"; }, 500);
  }
  async function onSpot() {
    const answer = $("a-answer").value.trim();
    if (!answer) { toast("请填写答复内容", true); $("a-answer").focus(); return; }
    await save(true);
    await api("POST", `/api/v1/tickets/${C.ticket}/actions/answer_on_spot`, { answer });
    toast("已直接办结");
    setTimeout(() => { location.href = "/agent"; }, 500);
  }
  async function invalid() {
    const reason = prompt("无效原因（如骚扰电话、无实质诉求）");
    if (!reason) return;
    await api("POST", `/api/v1/tickets/${C.ticket}/actions/mark_invalid`, { reason });
    location.href = "/agent";
  }
  const guard = fn => async () => { try { await fn(); } catch (e) { toast(e.message, true); } };
  const bind = (id, fn) => { const el = $(id); if (el) el.addEventListener("click", guard(fn)); };
  bind("btn-save", () => save(false)); bind("btn-create", create); bind("btn-accept", () => accept(false));
  bind("btn-dispatch", dispatch); bind("btn-onspot", onSpot); bind("btn-invalid", invalid);
  const editable = !C.ticket || C.status === "draft" || C.status === "accepted";
  if (editable && form) {
    shortcut("ctrl+s", guard(() => save(false)));
    if (C.ticket) {
      shortcut("alt+a", guard(() => accept(false)));
      shortcut("alt+d", guard(dispatch));
      shortcut("alt+j", guard(onSpot));
    }
  }
  shortcut("alt+n", () => { location.href = "/agent"; });
  shortcut("/", () => $("kb-q").focus());
  shortcut("alt+arrowdown", () => {
    const links = Array.from(document.querySelectorAll("#work-list a"));
    const i = links.findIndex(a => a.href.endsWith("=" + C.ticket));
    if (links.length) location.href = links[(i + 1) % links.length].href;
  });

  // ------------------------------------------------------------ knowledge search
  let kbTimer = null;
  async function kbSearch() {
    const q = $("kb-q").value.trim();
    const box = $("kb-results");
    if (!q) { box.innerHTML = ""; return; }
    try {
      const rows = await api("GET", "/api/v1/knowledge?limit=8&q=" + encodeURIComponent(q));
      box.innerHTML = rows.length ? rows.map(r => `<div class="kb-item"><div class="q">${esc(r.question)}</div>
        <div class="a">${esc(r.answer)}</div><div class="muted">${r.valid_to ? "有效期至 " + esc(r.valid_to) : "长期有效"}
        ${$("a-answer") ? `<button type="button" class="kb-use" data-id="${r.id}" style="float:right;padding:2px 8px">引用</button>` : ""}</div></div>`).join("")
        : '<p class="muted">没有找到有效的知识条目</p>';
      box.querySelectorAll(".kb-use").forEach(b => b.addEventListener("click", () => {
        const r = rows.find(x => String(x.id) === b.dataset.id);
        const ta = $("a-answer"); ta.value = (ta.value ? ta.value + "\n" : "") + r.answer; ta.focus();
      }));
    } catch (e) { box.innerHTML = `<p class="err">${esc(e.message)}</p>`; }
  }
  $("kb-q").addEventListener("input", () => { clearTimeout(kbTimer); kbTimer = setTimeout(kbSearch, 250); });
  $("kb-q").addEventListener("keydown", ev => { if (ev.key === "Enter") { ev.preventDefault(); kbSearch(); } });

  // ------------------------------------------------------------ routing suggestions (optional API)
  async function routing() {
    if (!C.ticket || !$("routing-card") || !$("d-lead")) return;
    let data;
    try { data = await optional(`/api/v1/tickets/${C.ticket}/routing`); } catch (e) { return; }
    if (!data) return;
    const items = Array.isArray(data) ? data : (data.suggestions || data.candidates || []);
    if (!items.length) return;
    $("routing").innerHTML = items.slice(0, 5).map(s => {
      const reasons = Array.isArray(s.reasons) ? s.reasons.join("；") : (s.reason || "");
      const score = s.score != null ? ` <span class="tag">${Math.round(s.score * 100)}%</span>` : "";
      return `<li><a href="#" data-dept="${esc(s.department_id)}">${esc(s.department || s.department_name || s.name || s.code)}</a>${score}
        <div class="muted">${esc(reasons)}</div></li>`;
    }).join("");
    $("routing").querySelectorAll("a[data-dept]").forEach(a => a.addEventListener("click", ev => {
      ev.preventDefault(); $("d-lead").value = a.dataset.dept; $("d-lead").focus();
    }));
    const first = items[0];
    if (first && first.department_id && !$("d-lead").value) $("d-lead").value = first.department_id;
    $("routing-card").classList.remove("hidden");
  }
  routing();

  // ------------------------------------------------------------ missed calls (optional telephony API)
  async function callbacks() {
    let data;
    try { data = await optional("/api/v1/telephony/callbacks"); } catch (e) { return; }
    if (!data) return;
    const items = Array.isArray(data) ? data : (data.items || []);
    $("callbacks-card").classList.remove("hidden");
    $("callbacks").innerHTML = items.length ? items.map(c => `<li><b>${esc(c.caller || c.number || c.caller_id)}</b>
      <span class="muted">${esc(fmtTime(c.at || c.abandoned_at || c.time))} ${c.waited != null ? "等待" + esc(c.waited) + "秒" : ""}</span>
      <button type="button" data-id="${esc(c.id)}" style="float:right;padding:2px 8px">回拨</button></li>`).join("")
      : '<li class="muted">暂无未接来电</li>';
    $("callbacks").querySelectorAll("button[data-id]").forEach(b => b.addEventListener("click", guard(async () => {
      b.disabled = true;
      await api("POST", `/api/v1/telephony/callbacks/${encodeURIComponent(b.dataset.id)}/dial`, {});
      toast("正在回拨…");
    })));
  }
  callbacks(); setInterval(callbacks, 30000);

  // ------------------------------------------------------------ telephony WebSocket: status and screen pop
  const dot = $("status-dot"), text = $("status-text"), queues = $("status-queues");
  function showStatus(s) {
    const paused = s.paused === true || s.status === "paused";
    const loggedIn = (s.queues && s.queues.length) || s.logged_in;
    dot.className = "status-dot " + (paused ? "paused" : loggedIn ? "on" : "off");
    const state = s.status_label || (s.on_call ? "通话中" : paused ? "小休" : loggedIn ? "空闲，等待来电" : "未登录队列");
    text.textContent = state + (paused && (s.reason || s.pause_reason) ? "（" + (s.reason || s.pause_reason) + "）" : "");
    const qs = (s.queues || []).map(q => typeof q === "string" ? q : (q.name || q.queue) + (q.paused ? "（暂停）" : ""));
    queues.textContent = qs.length ? "已登录队列：" + qs.join("、") : "";
  }
  async function screenPop(m) {
    const caller = m.caller || m.caller_id || m.callerid || m.number || "";
    $("screen-pop").classList.remove("hidden");
    $("pop-caller").textContent = (m.caller_name ? m.caller_name + " " : "") + caller;
    $("pop-meta").textContent = [m.queue ? "队列 " + m.queue : "", m.call_id ? "通话 " + m.call_id : "", fmtTime(m.at || new Date().toISOString())].filter(Boolean).join(" · ");
    const open = $("pop-open");
    if (m.ticket || m.ticket_number) { open.href = "/agent?ticket=" + encodeURIComponent(m.ticket || m.ticket_number); open.classList.remove("hidden"); }
    else { open.href = "/agent"; open.textContent = "新建工单"; open.classList.remove("hidden"); }
    if (!caller) return;
    try {
      const res = await api("GET", "/api/v1/tickets?limit=5&phone=" + encodeURIComponent(caller));
      $("pop-repeat").classList.toggle("hidden", !(m.repeat_caller || res.total > 0));
      $("pop-history").innerHTML = res.items.map(t => `<li><a href="/tickets/${esc(t.number)}">${esc(t.number)}</a> ${esc(t.title || t.content.slice(0, 24))}
        <span class="tag">${esc(t.status_label)}</span> <span class="muted">${esc(fmtTime(t.created_at))}</span></li>`).join("") || '<li class="muted">首次来电，无历史工单</li>';
    } catch (e) { /* the phone may be withheld: the pop still shows the call */ }
  }
  let delay = 1000;
  function connect() {
    if (!C.ws) { text.textContent = "未配置话务系统"; return; }
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + C.ws;
    let ws;
    try { ws = new WebSocket(url); } catch (e) { return; }
    ws.onopen = () => { delay = 1000; text.textContent = "已连接话务系统"; dot.className = "status-dot on"; };
    ws.onmessage = ev => {
      let m; try { m = JSON.parse(ev.data); } catch (e) { return; }
      const type = m.type || m.event || "";
      if (/status|agent|member/i.test(type)) showStatus(m.agent || m.data || m);
      if (/call|pop|connect/i.test(type) && !/end|hangup/i.test(type)) screenPop(m.call || m.data || m);
    };
    ws.onclose = () => {
      dot.className = "status-dot off"; text.textContent = "话务系统未连接，正在重试…";
      setTimeout(connect, delay); delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
