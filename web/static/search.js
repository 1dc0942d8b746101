// Ticket search on the agent page: "/" from anywhere, then a ticket number (whole or part), the caller's number
// (whole, or only the last 4 digits as callers read them out), or words; optional date range. Results as one types.
"use strict";
(() => {
  const { api, esc, fmtTime, shortcut } = Hotline;
  const $ = id => document.getElementById(id);
  const box = $("ts-q");
  if (!box) return;
  const OPEN_IN_AGENT = ["draft", "accepted"];
  let timer = null, seq = 0;

  // What the agent typed, as the API's parameters: [[params, label], ...], asked in this order.
  function queries(text) {
    const digits = text.replace(/[\s\-+()]/g, "");
    if (/^\d{4}$/.test(digits)) return [[{ phone: digits }, "号码后四位"], [{ q: text }, "编号或内容"]];
    if (/^\d{8}-\d*$/.test(text)) return [[{ q: text }, "工单编号"]];
    if (/^\d{7,}$/.test(digits)) return [[{ phone: text }, "来电号码"], [{ q: digits }, "工单编号"]];
    return [[{ q: text }, "关键词"]];
  }
  function link(t) {
    return OPEN_IN_AGENT.includes(t.status) ? "/agent?ticket=" + encodeURIComponent(t.number)
      : "/tickets/" + encodeURIComponent(t.number);
  }
  async function search() {
    const text = box.value.trim(), from = $("ts-from").value, to = $("ts-to").value;
    const out = $("ts-results");
    if (!text && !from && !to) { out.innerHTML = ""; out.removeAttribute("aria-busy"); return; }
    const mine = ++seq;
    out.setAttribute("aria-busy", "true");
    try {
      const seen = new Map();
      for (const [params, label] of text ? queries(text) : [[{}, "登记日期"]]) {
        const qs = new URLSearchParams({ ...params, limit: "20" });
        if (from) qs.set("from", from);
        if (to) qs.set("to", to);
        const page = await api("GET", "/api/v1/tickets?" + qs);
        for (const t of page.items) if (!seen.has(t.number)) seen.set(t.number, [t, label]);
      }
      if (mine !== seq) return;  // a later keystroke's search answers instead
      const rows = Array.from(seen.values()).slice(0, 20);
      out.innerHTML = rows.length ? rows.map(([t, label]) => `<li data-number="${esc(t.number)}"><a href="${link(t)}">${esc(t.number)}</a>
        ${esc(t.title || (t.content || "").slice(0, 24))} <span class="tag">${esc(t.status_label || t.status)}</span>
        <div class="muted">${esc(t.caller_name || "")} ${esc(t.caller_phone || "")} · ${esc(fmtTime(t.created_at))} · 按${esc(label)}</div></li>`).join("")
        : '<li class="muted">没有找到工单（可输入编号、来电号码或后四位、关键词）</li>';
    } catch (e) {
      if (mine === seq) out.innerHTML = `<li class="err">${esc(e.message)}</li>`;
    } finally {
      if (mine === seq) out.removeAttribute("aria-busy");
    }
  }
  const soon = () => { clearTimeout(timer); timer = setTimeout(search, 200); };
  box.addEventListener("input", soon);
  $("ts-from").addEventListener("change", soon);
  $("ts-to").addEventListener("change", soon);
  box.addEventListener("keydown", ev => {
    if (ev.key === "Enter") {  // open the first result
      ev.preventDefault();
      const first = $("ts-results").querySelector("a");
      if (first) location.href = first.href; else search();
    } else if (ev.key === "Escape") { box.value = ""; search(); box.blur(); }
  });
  shortcut("/", () => { box.focus(); box.select(); }, "查找工单");
})();
