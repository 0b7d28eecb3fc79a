// Gantry dashboard: shared helpers. Every call to the API carries the session's CSRF
// token in a header (the session cookie alone never changes anything), and every value
// from the server reaches the page through textContent, never as HTML.
"use strict";
const Gantry = {
  csrf() { const m = document.querySelector('meta[name="gantry-csrf"]'); return m ? m.content : ""; },
  async call(method, url, body) {
    const headers = { "X-Gantry-CSRF": Gantry.csrf() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 401) { location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("signed out"); }
    let json = null;
    try { json = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) throw new Error(json && json.error ? json.error.message : "HTTP " + response.status);
    return json;
  },
  flash(text, isError) {
    const box = document.getElementById("flash"); if (!box) return;
    box.textContent = text; box.hidden = false; box.classList.toggle("error", !!isError);
    clearTimeout(Gantry.flashTimer); Gantry.flashTimer = setTimeout(() => { box.hidden = true; }, 8000);
  },
  // "3 s ago", "5 min ago", "2 h ago", "4 d ago": how people read times.
  ago(date) {
    const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    if (s < 60) return s + " s ago"; if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago"; return Math.floor(s / 86400) + " d ago";
  },
  duration(seconds) {
    if (seconds == null || isNaN(seconds)) return "";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + " s"; if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  },
  relabelTimes(root) {
    for (const t of (root || document).querySelectorAll("time[datetime]")) {
      const d = new Date(t.getAttribute("datetime")); if (isNaN(d)) continue;
      t.textContent = Gantry.ago(d); t.title = d.toLocaleString();
    }
  },
  // Refreshes an element from a server-rendered fragment every few seconds while the tab
  // is visible; the fragment is escaped by the server's templates. Only fixed dashboard
  // URLs and HTML answers are accepted, so a value that reached an attribute can never
  // point the refresh at something else (a raw log) and have it parsed as HTML.
  live(element, url, every) {
    if (!/^\/ui\/(pipelines|agents)\?([a-z_]+=[^&#<>"']*&)*fragment=1$/.test(url)) return;
    let busy = false;
    const tick = async () => {
      if (busy || document.hidden) return; busy = true;
      try {
        const r = await fetch(url, { credentials: "same-origin", headers: { "X-Gantry-Fragment": "1" } });
        if (r.status === 401) { location.reload(); return; }
        if (r.ok && (r.headers.get("Content-Type") || "").startsWith("text/html")) {
          element.innerHTML = await r.text(); Gantry.relabelTimes(element);
        }
      } catch (_) { /* the next tick tries again */ } finally { busy = false; }
    };
    setInterval(tick, every);
  },
};
// The page's buttons: only those the server rendered in the pipeline's graph or a page's
// heading, and only to the API's cancel, retry, approve and reject routes.
const ACTION_URL = /^\/v1\/(pipelines|jobs)\/[A-Za-z0-9._~%-]{1,128}\/(cancel|retry|approve|reject)$/;
document.addEventListener("click", async (event) => {
  const button = event.target.closest("#graph button[data-action], .heading .actions button[data-action]"); if (!button) return;
  const action = button.dataset.action, url = button.dataset.url || "";
  if (!ACTION_URL.test(url) || !url.endsWith("/" + action)) return;
  let body;
  if (action === "cancel" && !confirm("Cancel? Running steps get SIGTERM, then SIGKILL after their grace.")) return;
  if (action === "approve" && !confirm("Approve " + button.dataset.step + "?")) return;
  if (action === "approve" || action === "reject") {
    body = { step: button.dataset.step };
    if (action === "reject") { const why = prompt("Why reject it?"); if (why === null) return; body.reason = why; }
  }
  button.disabled = true;
  try { await Gantry.call("POST", url, body); Gantry.flash(action + ": done"); if (window.GantryRefresh) window.GantryRefresh(); }
  catch (error) { Gantry.flash(action + " failed: " + error.message, true); }
  finally { button.disabled = false; }
});
document.addEventListener("DOMContentLoaded", () => {
  Gantry.relabelTimes();
  setInterval(() => Gantry.relabelTimes(), 5000);
  const page = document.body.dataset.page;
  const rows = document.getElementById("pipelines");
  if (page === "pipelines" && rows && rows.dataset.live) Gantry.live(document.getElementById("pipeline-rows"), rows.dataset.live, 2000);
  const agents = document.getElementById("agents-live");
  if (page === "agents" && agents) Gantry.live(agents, "/ui/agents?fragment=1", 3000);
});
