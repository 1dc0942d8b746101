// The live feed's patches (format: telephony/live.py), applied to a snapshot the page holds. One copy for every
// page that follows /ws/telephony (the wallboard, the agent console), so a new patch op is taught to all at once.
// Only what changed comes: "set" carries the changed fields of a queue, call or agent, "member"/"waiter" patch one
// row of a queue's lists, "now" moves the PBX clock, "ami" replaces the link state.
(function () {
  const cmp = (x, y) => x < y ? -1 : x > y ? 1 : 0;
  function applyPart(view, p) {
    const q = (view.queues || {})[p.queue]; if (!q) return;
    const member = p.kind === "member", id = member ? "interface" : "call_id", list = member ? "members" : "waiting";
    const rows = (q[list] || []).filter(x => x[id] !== p.key);
    if (p.op === "put") rows.push(p.value);
    q[list] = rows.sort(member ? (a, b) => cmp(a.name || a.interface, b.name || b.interface) : (a, b) => a.position - b.position);
  }
  function apply(view, patches) {
    for (const p of patches) {
      if (p.kind === "member" || p.kind === "waiter") applyPart(view, p);
      else if (p.op === "put") (view[p.kind + "s"] = view[p.kind + "s"] || {})[p.key] = p.value;
      else if (p.op === "del") delete (view[p.kind + "s"] || {})[p.key];
      else if (p.op === "set") {
        const e = (view[p.kind + "s"] || {})[p.key];
        if (e) for (const [k, v] of Object.entries(p.value)) { if (k === "stats" && e.stats) Object.assign(e.stats, v); else e[k] = v; }
      }
      else if (p.op === "now") { view.now = p.now; view.day = p.day; }
      else if (p.op === "ami") view.ami = p.value;
    }
  }
  window.LivePatches = { apply };
})();
