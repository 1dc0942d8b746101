// Shared helpers for every page: JSON API calls, messages, generic action forms, keyboard shortcuts.
// No framework and no build step: plain ES2017 that current Chromium and Firefox run as is.
"use strict";
const Hotline = (() => {
  async function api(method, url, body) {
    const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body instanceof FormData) opts.body = body;
    else if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    const resp = await fetch(url, opts);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
    if (!resp.ok) {
      const err = new Error((data && data.message) || ("请求失败（" + resp.status + "）"));
      err.status = resp.status; err.data = data; throw err;
    }
    return data;
  }
  // Optional endpoints of other packages: null when they do not exist (yet).
  async function optional(url) {
    try { return await api("GET", url); } catch (e) { if (e.status === 404 || e.status === 405 || e.status === 501) return null; throw e; }
  }
  let toastTimer = null;
  function toast(msg, isError) {
    const el = document.getElementById("toast");
    if (!el) { alert(msg); return; }
    el.textContent = msg; el.className = "show" + (isError ? " err" : "");
    clearTimeout(toastTimer); toastTimer = setTimeout(() => { el.className = ""; }, isError ? 6000 : 2500);
  }
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso); if (isNaN(d)) return iso;
    const p = n => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }
  // Collect a form into typed JSON: data-type="int" | "bool" | "datetime" | "intlist" on the inputs.
  function formJSON(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      const t = el.dataset.type;
      if (el.type === "checkbox") { out[el.name] = el.checked; continue; }
      if (el.multiple) { out[el.name] = Array.from(el.selectedOptions).map(o => parseInt(o.value, 10)); continue; }
      let v = el.value;
      if (v === "" && el.dataset.optional !== undefined) continue;
      if (t === "int") v = v === "" ? null : parseInt(v, 10);
      else if (t === "bool") v = v === "true";
      else if (t === "datetime") v = v ? new Date(v).toISOString() : null;
      out[el.name] = v;
    }
    return out;
  }
  // <form data-action-url="/api/..." data-after="reload|/path"> posts its fields as JSON.
  function bindActionForms(root) {
    (root || document).querySelectorAll("form[data-action-url]").forEach(form => {
      form.addEventListener("submit", async ev => {
        ev.preventDefault();
        const btn = form.querySelector("button[type=submit]");
        if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
        if (btn) btn.disabled = true;
        try {
          await api(form.dataset.method || "POST", form.dataset.actionUrl, formJSON(form));
          toast(form.dataset.done || "已提交");
          const after = form.dataset.after || "reload";
          setTimeout(() => { after === "reload" ? location.reload() : (location.href = after); }, 300);
        } catch (e) { toast(e.message, true); if (btn) btn.disabled = false; }
      });
    });
  }
  const keys = [];
  // Pages name each shortcut; "?" lists them (the page's own line of shortcuts shows the same).
  const LABELS = { "ctrl+s": "保存", "alt+a": "受理", "alt+d": "受理并派单", "alt+j": "直接办结", "alt+n": "新建工单",
                   "alt+arrowdown": "下一件" };
  function shortcut(spec, fn, label) { keys.push([spec, fn, label || LABELS[spec.toLowerCase()] || ""]); }
  function keyName(spec) {
    return spec.split("+").map(k => ({ ctrl: "Ctrl", alt: "Alt", shift: "Shift", arrowdown: "↓", arrowup: "↑" }[k.toLowerCase()]
      || (k.length === 1 ? k.toUpperCase() : k))).join("+");
  }
  function toggleHelp(show) {
    let box = document.getElementById("shortcut-help");
    if (!box) {
      box = document.createElement("div");
      box.id = "shortcut-help"; box.className = "hidden";
      box.setAttribute("role", "dialog"); box.setAttribute("aria-label", "快捷键");
      document.body.appendChild(box);
    }
    if (show === undefined) show = box.classList.contains("hidden");
    const seen = new Set();
    const rows = keys.filter(([spec]) => !seen.has(spec) && seen.add(spec))
      .map(([spec, , label]) => `<tr><td><kbd>${esc(keyName(spec))}</kbd></td><td>${esc(label)}</td></tr>`);
    rows.push('<tr><td><kbd>?</kbd></td><td>显示 / 关闭本列表</td></tr><tr><td><kbd>Esc</kbd></td><td>关闭</td></tr>');
    box.innerHTML = `<h2>快捷键</h2><table>${rows.join("")}</table><p class="small muted">在输入框中时，单键快捷键（/ 和 ?）不生效。</p>`;
    box.classList.toggle("hidden", !show);
  }
  document.addEventListener("keydown", ev => {
    const inField = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (ev.key === "?" && !ev.ctrlKey && !ev.altKey && !inField) { ev.preventDefault(); toggleHelp(); return; }
    if (ev.key === "Escape") toggleHelp(false);
    for (const [spec, fn] of keys) {
      const parts = spec.toLowerCase().split("+"); const key = parts.pop();
      const want = { ctrl: parts.includes("ctrl"), alt: parts.includes("alt"), shift: parts.includes("shift") };
      if (ev.key.toLowerCase() === key && ev.ctrlKey === want.ctrl && ev.altKey === want.alt && ev.shiftKey === want.shift) {
        if (!want.ctrl && !want.alt && ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) continue;
        ev.preventDefault(); fn(ev); return;
      }
    }
  });
  async function logout() { try { await api("POST", "/api/v1/auth/logout"); } finally { location.href = "/login"; } }
  // No inline event handlers (the Content-Security-Policy forbids them): markup asks with data attributes.
  document.addEventListener("submit", ev => { if (ev.target.matches("form[data-no-submit]")) ev.preventDefault(); });
  document.addEventListener("click", ev => { if (ev.target.closest("[data-print]")) window.print(); });
  // 显示号码: departments see callers' numbers masked; the whole number is asked for (and the access log records it).
  document.addEventListener("click", async ev => {
    const btn = ev.target.closest("[data-reveal-phone]");
    if (!btn) return;
    btn.disabled = true;
    try {
      const r = await api("POST", "/api/v1/tickets/" + encodeURIComponent(btn.dataset.revealPhone) + "/reveal-phone");
      const own = document.getElementById("caller-phone");
      if (own) own.textContent = r.caller_phone;
      for (const c of r.callers || []) {
        document.querySelectorAll("[data-caller-phone]").forEach(el => { if (el.dataset.callerPhone === c.ticket) el.textContent = c.caller_phone; });
      }
      btn.remove();
      toast("已显示完整号码（已记入访问日志）");
    } catch (e) { toast(e.message, true); btn.disabled = false; }
  });
  document.addEventListener("DOMContentLoaded", () => {
    bindActionForms(document);
    const lo = document.getElementById("logout"); if (lo) lo.addEventListener("click", logout);
    const who = document.querySelector("header.top .who");
    if (who) {
      const help = document.createElement("button");
      help.type = "button"; help.id = "shortcut-btn"; help.textContent = "?"; help.title = "快捷键（?）";
      help.setAttribute("aria-label", "快捷键");
      help.addEventListener("click", () => toggleHelp());
      who.prepend(help);
    }
  });
  return { api, optional, toast, esc, fmtTime, formJSON, bindActionForms, shortcut };
})();
