// Missed calls to call back (漏接回拨) on the agent console: how many, oldest first, who took each one.
// An agent takes an entry (认领) or calls back at once (回拨 takes it too); the others see it taken and cannot
// act on it (the server refuses with 409). The result is 已回拨 or 未接通 — never 已回访, which is the survey.
// agent.js owns the socket: it calls load() at every (re)connect and upsert() for each pushed entry.
"use strict";
window.HotlineCallbacks = (() => {
  const { api, optional, toast, esc, fmtTime } = Hotline;
  const $ = id => document.getElementById(id);
  const REASONS = { abandoned: "放弃", timed_out: "排队超时" };
  const OPEN = ["pending", "calling"];
  const card = $("callbacks-card");
  const me = card ? card.dataset.me || "" : "";
  let items = null;  // null until the first load answered
  let beyond = 0;  // open entries the server did not send (the list is capped); counted, not shown
  let early = [];  // entries pushed while the list was loading (applied on top of it)

  async function load() {
    if (!card) return;
    items = null; early = [];
    let open;
    try { open = await optional("/api/v1/telephony/callbacks?status=open"); }
    catch (e) { return; }  // 503 without a call database: the card stays hidden
    if (!open) return;
    items = open.items || [];
    beyond = Math.max(0, (open.count || 0) - items.length);
    const pushed = early; early = [];
    pushed.forEach(upsert);
    render();
  }

  function upsert(entry) {
    if (!entry || !card) return;
    if (!items) { if (early.length < 1000) early.push(entry); return; }  // bounded while the list cannot load
    // An entry absorbs the caller's earlier misses of the day (their ids are in call_ids).
    const calls = new Set(entry.call_ids || []);
    // A supervisor's socket carries callers' numbers masked: keep the whole one the list (REST) gave it.
    const known = items.find(c => String(c.id) === String(entry.id));
    if (known && known.caller_num && String(entry.caller_num || "").includes("*")) entry = { ...entry, caller_num: known.caller_num, caller_name: known.caller_name };
    items = items.filter(c => String(c.id) !== String(entry.id) && !(c.call_ids || []).some(x => calls.has(x)));
    if (OPEN.includes(entry.status)) {
      items.push(entry);
      items.sort((a, b) => String(a.missed_at).localeCompare(String(b.missed_at)) || a.id - b.id);
    }
    render();
  }

  function buttons(c) {
    const id = esc(c.id);
    if (c.owner && c.owner !== me) return `<span class="tag">已由 ${esc(c.owner_name || c.owner)} 认领</span>`;
    const btn = (cls, label, extra) => `<button type="button" class="${cls}" data-id="${id}"${extra || ""} style="padding:2px 8px">${label}</button>`;
    if (c.status === "calling") {
      return `<span class="tag amber">回拨中</span> ${btn("cb-result", "已回拨", ' data-result="done"')} ${btn("cb-result", "未接通", ' data-result="failed"')}`;
    }
    return c.owner === me
      ? `<span class="tag blue">我已认领</span> ${btn("cb-call", "回拨")} ${btn("cb-release", "放弃认领")}`
      : `${btn("cb-claim", "认领")} ${btn("cb-call", "回拨")}`;
  }

  function render() {
    card.classList.remove("hidden");
    $("callbacks-count").textContent = String(items.length + beyond);
    $("callbacks").innerHTML = items.length ? items.map(c => `<li class="callback" data-id="${esc(c.id)}" data-status="${esc(c.status)}" data-owner="${esc(c.owner || "")}">
      <b>${esc(c.caller_num || "未知号码")}</b>${c.caller_name && c.caller_name !== c.caller_num ? " " + esc(c.caller_name) : ""}${c.missed_count > 1 ? ` <span class="tag amber">${esc(c.missed_count)}次</span>` : ""}
      <div class="muted">${esc(fmtTime(c.missed_at))} · ${esc(REASONS[c.reason] || c.reason || "")} · 等待${esc(Math.round(c.wait_seconds || 0))}秒${c.attempts ? " · 已拨" + esc(c.attempts) + "次" : ""}</div>
      <div class="cb-actions" style="margin-top:4px">${buttons(c)}</div></li>`).join("")
      : '<li class="muted">暂无未接来电</li>';
  }

  // One listener for the list (it is re-rendered on every change).
  async function act(b) {
    const id = encodeURIComponent(b.dataset.id);
    b.disabled = true;
    try {
      if (b.classList.contains("cb-claim")) {
        upsert(await api("POST", `/api/v1/telephony/callbacks/${id}/claim`, {}));
        toast("已认领，请尽快回拨");
      } else if (b.classList.contains("cb-release")) {
        upsert(await api("POST", `/api/v1/telephony/callbacks/${id}/release`, {}));
        toast("已放弃认领");
      } else if (b.classList.contains("cb-call")) {
        upsert(await api("POST", `/api/v1/telephony/callbacks/${id}/call`, {}));
        toast("正在回拨：请先接听您的话机，接通后自动呼叫市民");
      } else if (b.classList.contains("cb-result")) {
        const done = b.dataset.result === "done";
        upsert(await api("POST", `/api/v1/telephony/callbacks/${id}/result`, { status: b.dataset.result }));
        toast(done ? "已标记：已回拨" : "已标记：未接通");
      }
    } catch (e) {
      b.disabled = false;
      toast(e.message, true);
      if (e.status === 409) load();  // taken by someone else meanwhile: show who
    }
  }
  if (card) $("callbacks").addEventListener("click", ev => {
    const b = ev.target.closest("button[data-id]");
    if (b && !b.disabled) act(b);
  });

  return { load, upsert };
})();
