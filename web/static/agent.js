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
  async function invalid(given) {
    const reason = given || prompt("无效原因（如骚扰电话、无实质诉求）");
    if (!reason) return;
    await api("POST", `/api/v1/tickets/${C.ticket}/actions/mark_invalid`, { reason });
    toast("已作无效件：" + reason);
    setTimeout(() => { location.href = "/agent"; }, 300);
  }
  const guard = fn => async () => { try { await fn(); } catch (e) { toast(e.message, true); } };
  const bind = (id, fn) => { const el = $(id); if (el) el.addEventListener("click", guard(fn)); };
  bind("btn-save", () => save(false)); bind("btn-create", create); bind("btn-accept", () => accept(false));
  bind("btn-dispatch", dispatch); bind("btn-onspot", onSpot); bind("btn-invalid", () => invalid());
  // A call handled without a ticket (wrong number, silence, transferred...): its draft closes in one key.
  for (const b of document.querySelectorAll("[data-invalid-reason]")) {
    const close = guard(() => invalid(b.dataset.invalidReason));
    b.addEventListener("click", close);
    shortcut(b.dataset.key, close, "无效件：" + b.dataset.invalidReason);
  }
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
  shortcut("alt+k", () => $("kb-q").focus(), "搜索知识库");  // "/" finds a ticket (search.js)
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
  // They follow the draft as it grows (typed, or filled from the live words): the unsaved text is posted,
  // debounced, and only the newest answer is shown.
  let routingSeq = 0, routingTimer = null, routingSent = "", leadPicked = false;
  function draftText() {
    const out = {};
    for (const k of ["title", "content", "address", "district", "request_type", "category"])
      if (form && form.elements[k]) out[k] = form.elements[k].value;
    return out;
  }
  async function routing() {
    if (!C.ticket || !$("routing-card") || !$("d-lead")) return;
    const seq = ++routingSeq;
    const body = draftText(), sent = JSON.stringify(body);
    let data;
    try {
      data = routingSent === "" ? await optional(`/api/v1/tickets/${C.ticket}/routing`)
                                : await api("POST", `/api/v1/tickets/${C.ticket}/routing`, body);
    } catch (e) { return; }
    if (seq !== routingSeq || !data) return;  // a newer request is on its way
    routingSent = sent;
    const items = Array.isArray(data) ? data : (data.suggestions || data.candidates || []);
    if (!items.length) return;
    $("routing").innerHTML = items.slice(0, 5).map(s => {
      const reasons = Array.isArray(s.reasons) ? s.reasons.join("；") : (s.reason || "");
      const conf = s.confidence != null ? s.confidence : s.score;
      const score = conf != null ? ` <span class="tag">${Math.round(conf * 100)}%</span>` : "";
      return `<li><a href="#" data-dept="${esc(s.department_id)}">${esc(s.name || s.department_name || s.department || s.code)}</a>${score}
        <div class="muted">${esc(reasons)}</div></li>`;
    }).join("");
    $("routing").querySelectorAll("a[data-dept]").forEach(a => a.addEventListener("click", ev => {
      ev.preventDefault(); leadPicked = true; $("d-lead").value = a.dataset.dept; $("d-lead").focus();
    }));
    const first = items[0];
    // the top suggestion preselected until the agent picks a lead of their own
    if (first && first.department_id && !leadPicked) $("d-lead").value = first.department_id;
    $("routing-card").dataset.refreshed = String(seq);
    $("routing-card").classList.remove("hidden");
  }
  function routingSoon() {
    if (routingSent === "" || JSON.stringify(draftText()) === routingSent) return;
    clearTimeout(routingTimer); routingTimer = setTimeout(routing, 800);
  }
  if ($("d-lead")) $("d-lead").addEventListener("change", ev => { if (ev.isTrusted) leadPicked = true; });
  if (form && C.ticket) {
    form.addEventListener("input", routingSoon);
    form.addEventListener("change", routingSoon);
    form.addEventListener("hotline:filled", routingSoon);  // live_transcript.js filled fields from the words heard
  }
  routing().then(() => { if (routingSent === "") routingSent = JSON.stringify(draftText()); });

  // ------------------------------------------------------------ missed calls (漏接回拨): callbacks.js
  // The list is loaded over HTTP once per socket connection (the first and every reconnect, which may have
  // missed messages); after that the socket carries every change: "missed" with the caller's entry (one per
  // number per day), "callback" when an agent takes one, calls back or records the result.
  const cbList = window.HotlineCallbacks || { load() {}, upsert() {} };
  const callbacks = () => cbList.load();
  const upsertCallback = entry => cbList.upsert(entry);
  if (!C.ws) callbacks();  // without a socket: load once (with one, each connection loads it)

  // ------------------------------------------------------------ telephony live view: my status across queues
  // The socket sends {"type":"snapshot","data":view} first, then numbered patches (as the wallboard applies
  // them); "screen_pop" reaches only the socket of the agent whose interface took the call.
  const STATES = { available: "空闲，等待来电", ringing: "振铃中", in_call: "通话中", paused: "示忙",
                   unavailable: "话机离线", logged_out: "未签入队列" };
  const iface = C.interface || "";
  const dot = $("status-dot"), text = $("status-text");
  let view = null;
  let liveSeq = 0;  // patches: telephony/static/live_patches.js
  function myMembers() {
    const out = [];
    for (const q of Object.values((view && view.queues) || {}))
      for (const m of q.members || []) if (m.interface === iface) out.push({ queue: q.name, ...m });
    return out;
  }
  function renderStatus() {
    if (!view) return;
    const ami = view.ami || {};
    const me = (view.agents || {})[iface];
    const members = myMembers();
    const queueNames = Object.keys(view.queues || {});
    const dl = $("queue-names");
    if (dl) dl.innerHTML = queueNames.map(n => `<option value="${esc(n)}">`).join("");
    const qn = $("queue-name");
    if (qn && !qn.value && queueNames.length) qn.value = queueNames[0];
    const paused = (me && me.state === "paused") || (members.length > 0 && members.every(m => m.paused));
    const reason = (me && me.pause_reason) || (members.find(m => m.paused && m.paused_reason) || {}).paused_reason || "";
    let state;
    if (!iface) state = "账号未绑定分机";
    else if (me && me.state) state = STATES[me.state] || me.state;
    else if (members.length) state = paused ? STATES.paused : STATES.available;
    else if (ami.enabled && !ami.connected) state = "话务系统未连接（Asterisk）";
    else state = STATES.logged_out;
    if (paused && (!me || me.state === "paused")) state = STATES.paused + (reason ? "（" + reason + "）" : "");
    text.textContent = state;
    text.dataset.state = me ? me.state : (members.length ? (paused ? "paused" : "available") : "logged_out");
    const busy = me && (me.state === "in_call" || me.state === "ringing");
    dot.className = "status-dot " + (busy ? "on" : paused ? "paused" : members.length ? "on" : "off");
    $("status-queues").innerHTML = members.map(m => `<li data-queue="${esc(m.queue)}">队列 <b>${esc(m.queue)}</b>
      ${m.paused ? `<span class="tag amber">示忙${m.paused_reason ? "：" + esc(m.paused_reason) : ""}</span>` : '<span class="tag blue">在线</span>'}
      <span class="muted">今日接听 ${esc(m.calls_taken || 0)}</span></li>`).join("") || '<li class="muted">未签入任何队列</li>';
    const call = me && me.call_id ? (view.calls || {})[me.call_id] : null;
    // A supervisor's live view has callers' numbers masked; its own caller came whole with the screen pop.
    const popped = storedPop();
    const num = call && popped && (popped.call || {}).call_id === call.id ? popped.call.caller_num : call && call.caller_num;
    $("status-call").textContent = call ? `当前通话：${num || "未知号码"}${call.queue ? "（队列 " + call.queue + "）" : ""}` : "";
    restorePop(me);
    if ($("btn-pause")) {
      $("btn-pause").disabled = !members.length || paused;
      $("btn-unpause").disabled = !members.length || !paused;
    }
  }
  function showAgentError(e) {
    const box = $("agent-error");
    if (!box) return;
    box.textContent = e ? e.message : "";
    box.classList.toggle("hidden", !e);
  }
  async function agentAction(path, body, done) {
    showAgentError(null);
    try { await api("POST", "/api/v1/telephony/agent/" + path, body); }
    catch (e) {
      // 409 ami_refused carries Asterisk's own refusal; 503 not connected; 504 no answer in time.
      showAgentError(e); toast(e.message, true); return;
    }
    toast(done);
  }
  const queueName = () => ($("queue-name").value || "").trim();
  if ($("agent-controls")) {
    $("btn-pause").addEventListener("click", () => {
      const reason = $("pause-reason").value;
      agentAction("pause", { paused: true, reason }, "已示忙：" + reason);
    });
    $("btn-unpause").addEventListener("click", () => agentAction("pause", { paused: false }, "已示闲，可以接听来电"));
    $("btn-qlogin").addEventListener("click", () => {
      const queue = queueName();
      if (!queue) { toast("请填写队列名", true); $("queue-name").focus(); return; }
      agentAction("login", { queue }, "已签入队列 " + queue);
    });
    $("btn-qlogout").addEventListener("click", () => {
      const queue = queueName();
      if (!queue) { toast("请填写队列名", true); $("queue-name").focus(); return; }
      agentAction("logout", { queue }, "已签出队列 " + queue);
    });
  }

  // ------------------------------------------------------------ screen pop
  // The pop survives opening the draft (a new page) for as long as the call lasts: kept per browser tab.
  const POP_KEY = "hotline.pop";
  function storedPop() { try { return JSON.parse(sessionStorage.getItem(POP_KEY) || "null"); } catch (e) { return null; } }
  function restorePop(me) {
    const m = storedPop();
    if (!m || !view) return;
    const callId = (m.call || {}).call_id;
    if (me && me.call_id && me.call_id === callId) { if ($("screen-pop").classList.contains("hidden")) screenPop(m, true); }
    else { sessionStorage.removeItem(POP_KEY); }
  }
  function screenPop(m, restored) {
    if (!restored) try { sessionStorage.setItem(POP_KEY, JSON.stringify(m)); } catch (e) { /* private mode */ }
    const call = m.call || {};
    const caller = call.caller_num || "";
    $("screen-pop").classList.remove("hidden");
    $("screen-pop").dataset.callId = call.call_id || "";
    const name = call.caller_name && call.caller_name !== caller ? call.caller_name + " " : "";
    $("pop-caller").textContent = name + (caller || "未知号码");
    const at = call.at ? new Date(call.at * 1000).toISOString() : new Date().toISOString();
    $("pop-meta").textContent = [m.callback ? "回拨漏接来电" : "", call.queue ? "队列 " + call.queue : "", call.wait != null ? "排队 " + Math.round(call.wait) + " 秒" : "",
                                 call.call_id ? "通话 " + call.call_id : "", fmtTime(at)].filter(Boolean).join(" · ");
    const open = $("pop-open");
    const draft = m.draft && m.draft.number;
    open.href = draft ? "/agent?ticket=" + encodeURIComponent(draft) : "/agent";
    open.textContent = draft ? "打开草稿 " + draft : "新建工单";
    open.classList.remove("hidden");
    // The committed draft joins the work list at once (the page was rendered before the call). A page loaded
    // since (the pop restored) lists it itself while it is still open: closed already (无效件, dispatched),
    // it is not put back.
    const list = $("work-list");
    const listed = !!(draft && list && list.querySelector(`a[href$="=${CSS.escape(draft)}"]`));
    if (draft && list && !listed && !restored) {
      const empty = list.querySelector("li.muted"); if (empty) empty.remove();
      list.insertAdjacentHTML("afterbegin", `<li class="new-draft"><a href="/agent?ticket=${encodeURIComponent(draft)}">${esc(m.draft.title || "来电 " + caller)}</a>
        <div class="small muted">${esc(draft)} · <span class="tag amber">草稿</span></div></li>`);
    }
    // One form for the call: its open draft. The unlinked new-ticket form goes away unless the agent typed in it.
    const fresh = $("new-ticket");
    if (draft && fresh && (listed || !restored) && !Object.keys(changedFields()).length) fresh.classList.add("hidden");
    if (restored && draft && !listed && list) open.textContent = "查看工单 " + draft;
    $("pop-repeat").classList.toggle("hidden", !m.repeat_caller);
    const earlier = m.earlier_tickets || [];
    $("pop-history").innerHTML = earlier.map(t => `<li><a href="/tickets/${esc(t.number)}">${esc(t.number)}</a> ${esc(t.title || (t.content || "").slice(0, 24))}
      <span class="tag">${esc(t.status_label || t.status)}</span> <span class="muted">${esc(fmtTime(t.created_at))}</span></li>`).join("")
      || '<li class="muted">近期无来电工单</li>';
    if (!restored) toast((m.callback ? "回拨：" : "来电：") + (caller || "未知号码") + (m.repeat_caller ? "（重复来电）" : ""));
  }

  // ------------------------------------------------------------ the socket
  let delay = 1000;
  function onMessage(m) {
    if (m.type === "agent" && m.message) return onMessage(m.message);  // hub envelope, should it reach us
    if (m.type === "batch") { for (const x of m.messages || []) onMessage(x); return; }  // several, in order
    if (m.type === "snapshot") { view = m.data; liveSeq = m.seq || 0; renderStatus(); }
    else if (m.type === "patch") {
      if (view && !(m.seq <= liveSeq)) { liveSeq = m.seq; LivePatches.apply(view, m.patches || []); renderStatus(); }
    }
    else if (m.type === "screen_pop") screenPop(m);
    else if (m.type === "missed" || m.type === "callback") upsertCallback(m.callback);
  }
  function connect() {
    if (!C.ws) { text.textContent = "未配置话务系统"; return; }
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + C.ws;
    let ws;
    try { ws = new WebSocket(url); } catch (e) { return; }
    ws.onopen = () => { delay = 1000; callbacks(); };
    ws.onmessage = ev => { let m; try { m = JSON.parse(ev.data); } catch (e) { return; } onMessage(m); };
    ws.onclose = () => {
      view = null;
      dot.className = "status-dot off"; text.textContent = "话务系统未连接，正在重试…"; text.dataset.state = "offline";
      setTimeout(connect, delay); delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
