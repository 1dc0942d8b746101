// Live transcript of the call on the agent's screen: lines per speaker (市民 / 座席) while they speak (asr
// workers -> Redis -> /ws/asr/live), the draft's fields filled as they are heard (never over what the agent
// typed), and a banner with the one-click 110/119/120 hand-off when an emergency is heard.
// The call followed: the screen pop's call (agent.js sets #screen-pop[data-call-id]) or the draft's own call.
"use strict";
(() => {
  const { api, toast, esc } = Hotline;
  const $ = id => document.getElementById(id);
  const card = $("live-transcript-card");
  if (!card) return;
  const C = window.CONSOLE || {};
  const box = $("live-transcript"), status = $("live-status"), banner = $("live-urgent");
  const form = $("ticket-form");
  const FIELDS = ["district", "address", "caller_phone", "request_type", "urgency", "title"];
  const lines = new Map();  // "speaker:stretch" -> {speaker, label, stretch, start, text, final}
  const legs = {};  // speaker -> last status message
  let followed = "", ws = null, delay = 1000;

  // ------------------------------------------------------------ which call
  function popCall() { const pop = $("screen-pop"); return pop && !pop.classList.contains("hidden") ? pop.dataset.callId || "" : ""; }
  function wanted() { return popCall() || card.dataset.callId || ""; }
  function follow() {
    const call = wanted();
    if (!call || call === followed) return;
    followed = call;
    lines.clear();
    for (const k of Object.keys(legs)) delete legs[k];
    banner.classList.add("hidden");
    card.dataset.following = call;  // shown once the call's first line or status arrives
    status.textContent = "等待通话语音…";
    render();
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ follow: call }));
  }
  const pop = $("screen-pop");
  if (pop) new MutationObserver(follow).observe(pop, { attributes: true, attributeFilter: ["data-call-id", "class"] });

  // ------------------------------------------------------------ lines
  function render() {
    const rows = Array.from(lines.values()).sort((a, b) => a.start - b.start || a.speaker.localeCompare(b.speaker));
    box.innerHTML = rows.map(l => `<div class="live-line ${l.final ? "final" : "partial"}" data-speaker="${esc(l.speaker)}">
      <span class="tag ${l.speaker === "caller" ? "amber" : "blue"}">${esc(l.label)}</span> ${esc(l.text)}</div>`).join("")
      || '<p class="muted small">暂无语音</p>';
    box.scrollTop = box.scrollHeight;
    const states = Object.values(legs);
    if (states.length) status.textContent = states.join("；");
  }
  function onLine(m) {
    const key = m.speaker + ":" + m.stretch;
    const had = lines.get(key);
    if (m.event === "partial" && had && had.final) return;  // a late partial never replaces its final
    if (m.event === "final" && !m.text) { lines.delete(key); render(); return; }
    lines.set(key, { speaker: m.speaker, label: m.label, stretch: m.stretch, start: m.start, text: m.text, final: m.event === "final" });
    legs[m.speaker] = `${m.label}：实时转写中`;
    render();
    if (m.fields) fill(m.fields);
    if (m.event === "final" && m.speaker === "caller") fillContent();
  }
  // The draft's content is what the caller said so far (their final lines), until the agent writes it.
  function fillContent() {
    const el = form && form.elements.content;
    if (!el || typed.has("content") || !(el.value === "" || el.value === el.dataset.liveValue)) return;
    const said = Array.from(lines.values()).filter(l => l.final && l.speaker === "caller" && l.text)
      .sort((a, b) => a.start - b.start).map(l => l.text).join("");
    if (!said || said === el.value) return;
    el.value = el.dataset.liveValue = said;
    el.closest(".field") && el.closest(".field").classList.add("from-live");
    form.dispatchEvent(new Event("hotline:filled"));
  }
  function onMessage(m) {
    if (m.type !== "asr_live" || m.call_id !== followed) return;
    // A draft's past call (no longer this agent's): nothing to show. The call on screen: say why not.
    if (m.event === "refused" && popCall() !== followed) { card.classList.add("hidden"); return; }
    card.classList.remove("hidden");
    if (m.event === "partial" || m.event === "final") return onLine(m);
    const who = m.label || "";
    if (m.event === "started") legs[m.speaker] = `${who}：实时转写中`;
    else if (m.event === "stopped") {
      legs[m.speaker] = `${who}：实时转写已停止（${m.message || m.reason}）${m.reason === "closed" || m.reason === "hangup" ? "" : "，挂机后仍会转写录音"}`;
      afterCall(followed);
    }
    else if (m.event === "fallback") legs[m.speaker] = `${who}：本通电话不做实时转写（${m.message}）`;
    else if (m.event === "refused") legs.all = m.message;
    card.dataset.state = m.event;
    render();
  }

  // ------------------------------------------------------------ the draft follows the words
  const typed = new Set();
  if (form) {
    const mark = ev => { if (ev.isTrusted && ev.target.name) typed.add(ev.target.name); };
    form.addEventListener("input", mark);
    form.addEventListener("change", mark);
  }
  const initial = {};
  if (form) for (const name of FIELDS) if (form.elements[name]) initial[name] = form.elements[name].value;
  const isDraft = !C.ticket || C.status === "draft";
  function fillable(name, el) {
    if (typed.has(name)) return false;  // the agent's own words are never overwritten
    if (el.value === "" || el.value === el.dataset.liveValue) return true;
    if (name === "title") return /^来电\s/.test(el.value) && el.value === initial.title;  // the pop's placeholder
    if (name === "request_type" || name === "urgency") return isDraft && el.value === initial[name];
    return false;
  }
  function heardNote(el, heard) {
    const field = el.closest(".field");
    if (!field) return;
    let note = field.querySelector(".live-heard");
    if (!note) { note = document.createElement("div"); note.className = "live-heard small muted"; field.appendChild(note); }
    note.textContent = heard && heard.length ? "听到：“" + heard.join("”“") + "”" : "";
  }
  // The knowledge search follows the call too, until the agent types a search of their own.
  const kb = $("kb-q");
  let kbTyped = false;
  if (kb) kb.addEventListener("input", ev => { if (ev.isTrusted) kbTyped = true; });
  function followKnowledge(fields) {
    const topic = fields.title && fields.title.value;
    if (!kb || kbTyped || !topic || kb.value === topic) return;
    kb.value = topic;
    kb.dispatchEvent(new Event("input"));  // agent.js searches on input
  }
  function fill(fields) {
    if (fields.urgency && fields.urgency.value === "urgent") urgent(fields.urgency);
    followKnowledge(fields);
    if (!form) return;
    let filled = false;
    for (const name of FIELDS) {
      const f = fields[name], el = form.elements[name];
      if (!f || !el || f.value == null) continue;
      if (!(f.heard && f.heard.length)) continue;  // a default guess (咨询 with no words for it) fills nothing
      const value = String(f.value);
      if (el.value === value || !fillable(name, el)) continue;
      if (el.tagName === "SELECT" && !Array.from(el.options).some(o => o.value === value)) continue;
      el.value = value;
      el.dataset.liveValue = value;
      el.closest(".field") && el.closest(".field").classList.add("from-live");
      heardNote(el, f.heard);
      filled = true;
    }
    if (filled) form.dispatchEvent(new Event("hotline:filled"));  // agent.js refreshes the routing suggestions
  }
  function urgent(u) {
    banner.classList.remove("hidden");
    $("live-urgent-note").textContent = u.note || "疑似紧急警情：请立即核实";
    $("live-urgent-actions").innerHTML = (u.handoff || []).map(h =>
      `<button type="button" class="danger live-transfer" data-exten="${esc(h.number)}">转接 ${esc(h.number)} ${esc(h.name)}</button>`).join(" ");
    banner.querySelectorAll(".live-transfer").forEach(b => b.addEventListener("click", async () => {
      b.disabled = true;
      try { await api("POST", "/api/v1/telephony/agent/transfer", { exten: b.dataset.exten }); toast("已转接 " + b.dataset.exten); }
      catch (e) { b.disabled = false; toast(e.message, true); }
    }));
  }

  // ------------------------------------------------------------ after the call
  // The recording's transcript (whole call, better accuracy) replaces the live lines once recognition has
  // it; the fields it reads differently are marked: applied where the live words had filled them (or they
  // were empty), offered with 采用 where the agent typed, never written over the agent's words.
  let waiting = "";
  async function afterCall(call) {
    if (!call || waiting === call) return;
    waiting = call;
    for (let i = 0; i < 300 && waiting === call && followed === call; i++) {  // ~15 min, then the page's reload shows it
      let got = null;
      try { got = await api("GET", "/api/v1/asr/calls/" + encodeURIComponent(call)); } catch (e) { got = null; }
      // the transcript first, its draft fields a moment later (the delivery that also fills the ticket)
      if (got && got.transcript && (got.transcript.draft || (got.job && got.job.draft_error) || i >= 20))
        return replaceWithRecording(got.transcript);
      await new Promise(r => setTimeout(r, 3000));
    }
  }
  function replaceWithRecording(t) {
    const labels = { caller: "市民", agent: "座席" };
    const segs = (t.segments || []).filter(x => x.text);
    box.innerHTML = (segs.length ? segs.map(x => `<div class="live-line final after-call" data-speaker="${esc(x.speaker || "")}">
      ${x.speaker ? `<span class="tag ${x.speaker === "caller" ? "amber" : "blue"}">${esc(labels[x.speaker] || x.speaker)}</span> ` : ""}${esc(x.text)}</div>`).join("")
      : `<div class="live-line final after-call">${esc(t.text || "")}</div>`);
    card.dataset.state = "recording";
    for (const k of Object.keys(legs)) delete legs[k];
    legs.all = "通话已结束：录音转写全文已替换实时转写";
    status.textContent = legs.all;
    if (!form || !isDraft) return;
    const draft = t.draft || {};
    let changed = 0;
    for (const name of [...FIELDS, "content"]) {
      const f = draft[name], el = form.elements[name];
      if (!f || f.value == null || !el) continue;
      const value = String(f.value);
      if (!value || el.value === value) continue;
      if (el.tagName === "SELECT" && !Array.from(el.options).some(o => o.value === value)) continue;
      if (name === "request_type" && !(f.sources && f.sources.length)) continue;  // a default guess, no words for it
      const field = el.closest(".field");
      if (!field) continue;
      const was = el.value;
      field.classList.add("changed");
      let note = field.querySelector(".after-call-was");
      if (!note) { note = document.createElement("div"); note.className = "after-call-was small"; field.appendChild(note); }
      const shown = o => el.tagName === "SELECT" ? (Array.from(el.options).find(x => x.value === o) || {}).text || o : o;
      if (!typed.has(name) && (was === "" || was === el.dataset.liveValue || fillable(name, el))) {
        el.value = el.dataset.liveValue = value;
        note.textContent = `录音转写改为：${shown(value)}（实时：${shown(was) || "空"}）`;
      } else {
        note.innerHTML = `录音转写为：${esc(shown(value))} <button type="button" class="adopt" style="padding:0 6px">采用</button>`;
        note.querySelector(".adopt").addEventListener("click", () => {
          el.value = value; el.dispatchEvent(new Event("input", { bubbles: true })); note.textContent = "已采用录音转写";
        });
      }
      changed++;
    }
    card.dataset.changed = String(changed);
    if (changed) form.dispatchEvent(new Event("hotline:filled"));
  }

  // ------------------------------------------------------------ the socket
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/asr/live";
    try { ws = new WebSocket(url); } catch (e) { return; }
    ws.onopen = () => { delay = 1000; if (followed) ws.send(JSON.stringify({ follow: followed })); };
    ws.onmessage = ev => { let m; try { m = JSON.parse(ev.data); } catch (e) { return; } onMessage(m); };
    ws.onclose = () => { setTimeout(connect, delay); delay = Math.min(delay * 2, 30000); };
  }
  follow();
  connect();
})();
