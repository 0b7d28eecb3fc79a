// The job log page: a live tail over server-sent events. Each event's id is
// "ATTEMPT:OFFSET" (the byte offset after its text), so when the connection drops the
// browser's EventSource reconnects with Last-Event-ID and the server resumes at that
// byte: nothing is lost or shown twice. Text is queued and rendered a bounded number of
// lines per animation frame, and at most MAX_LINES stay in the page, so a 100 MB log
// never freezes the tab (the raw download has everything). ANSI SGR colours become
// classes; text is only ever set with textContent.
"use strict";
(() => {
  const log = document.getElementById("log"); if (!log) return;
  const status = document.getElementById("log-status"), follow = document.getElementById("follow");
  const MAX_LINES = 20000, LINES_PER_FRAME = 1500;
  let lineNumber = 1, current = null, style = {}, queue = [], scheduled = false, dropped = false, ended = false;
  let pendingCR = false;

  function newLine() {
    const row = document.createElement("div"); row.className = "line"; row.id = "L" + lineNumber;
    const a = document.createElement("a"); a.className = "ln"; a.href = "#L" + lineNumber; a.textContent = lineNumber;
    const tx = document.createElement("span"); tx.className = "tx";
    row.appendChild(a); row.appendChild(tx); log.appendChild(row);
    current = tx; lineNumber += 1;
    if (log.childElementCount > MAX_LINES) {
      log.removeChild(log.firstElementChild);
      if (!dropped) { dropped = true; status.dataset.dropped = "1"; }
    }
  }
  function classes() {
    const c = [];
    if (style.b) c.push("b"); if (style.i) c.push("i"); if (style.u) c.push("u"); if (style.dim) c.push("dim");
    if (style.fg) c.push("f" + style.fg); if (style.bg) c.push("g" + style.bg);
    return c.join(" ");
  }
  function sgr(params) {
    const codes = params === "" ? [0] : params.split(";").map((n) => parseInt(n, 10) || 0);
    for (let k = 0; k < codes.length; k++) {
      const n = codes[k];
      if (n === 0) style = {}; else if (n === 1) style.b = true; else if (n === 2) style.dim = true;
      else if (n === 3) style.i = true; else if (n === 4) style.u = true;
      else if (n === 22) { style.b = false; style.dim = false; } else if (n === 23) style.i = false; else if (n === 24) style.u = false;
      else if ((n >= 30 && n <= 37) || (n >= 90 && n <= 97)) style.fg = n; else if (n === 39) style.fg = 0;
      else if (n >= 40 && n <= 47) style.bg = n; else if (n === 49) style.bg = 0;
      else if (n === 38 || n === 48) { k += codes[k + 1] === 5 ? 2 : 4; } // 256/true colour: not rendered
    }
  }
  function append(text) {
    if (!text) return;
    if (!current) newLine();
    const cls = classes();
    if (!cls) { current.appendChild(document.createTextNode(text)); return; }
    const span = document.createElement("span"); span.className = cls; span.textContent = text; current.appendChild(span);
  }
  // One line's text (no newline) with its escape sequences.
  function renderText(text) {
    const escape = /\x1b\[([0-9;]*)([A-Za-z])/g;
    let last = 0, match;
    while ((match = escape.exec(text)) !== null) {
      append(text.slice(last, match.index));
      if (match[2] === "m") sgr(match[1]);
      last = escape.lastIndex;
    }
    append(text.slice(last).replace(/\x1b/g, ""));
  }
  function render(text) {
    // A carriage return not followed by a newline rewrites its line, as on a terminal.
    const parts = text.split("\n");
    for (let p = 0; p < parts.length; p++) {
      let part = parts[p];
      // A newline ends the current line, creating it when it had no text.
      if (p > 0) { if (!current) newLine(); current = null; }
      if (part.endsWith("\r")) part = part.slice(0, -1);
      const cr = part.lastIndexOf("\r");
      if (cr >= 0) { if (!current) newLine(); current.textContent = ""; part = part.slice(cr + 1); }
      renderText(part);
    }
  }
  function drain() {
    scheduled = false;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    let budget = LINES_PER_FRAME;
    while (queue.length && budget > 0) {
      let text = queue[0], cut = -1, count = 0;
      for (let k = 0; k < text.length; k++) { if (text.charCodeAt(k) === 10 && ++count >= budget) { cut = k + 1; break; } }
      if (cut >= 0 && cut < text.length) { queue[0] = text.slice(cut); text = text.slice(0, cut); } else queue.shift();
      render(text); budget -= Math.max(count, 1);
    }
    if (follow.checked && atBottom) log.scrollTop = log.scrollHeight;
    if (queue.length) schedule();
    updateStatus();
  }
  function schedule() { if (!scheduled) { scheduled = true; requestAnimationFrame(drain); } }
  function updateStatus(text) {
    if (text) status.dataset.state = text;
    const lines = (lineNumber - 1) + " lines";
    status.textContent = (status.dataset.state || "") + " · " + lines + (dropped ? " · earlier lines not shown (download the raw log)" : "");
  }
  function notice(text) { const d = document.createElement("div"); d.className = "notice"; d.textContent = text; log.appendChild(d); current = null; }

  const source = new EventSource(log.dataset.events, { withCredentials: true });
  source.addEventListener("start", (e) => {
    const s = JSON.parse(e.data);
    if (s.line != null && log.childElementCount === 0) {
      lineNumber = s.line;
      if (s.offset > 0) notice("… the log's first " + s.offset + " bytes are not shown (\"Show from the start\" or download the raw log)");
    }
    updateStatus("following");
  });
  source.addEventListener("log", (e) => { queue.push(JSON.parse(e.data).t); schedule(); });
  source.addEventListener("attempt", (e) => {
    const a = JSON.parse(e.data);
    while (queue.length) render(queue.shift()); // the old attempt's text goes before the marker
    current = null;
    notice("--- attempt " + a.attempt + " (the previous attempt ended: " + (a.reason || "lost") + ") ---");
    lineNumber = 1; style = {};
    document.getElementById("job-attempt").textContent = a.attempt;
  });
  source.addEventListener("end", (e) => {
    const s = JSON.parse(e.data); ended = true; source.close();
    const badge = document.getElementById("job-state"); badge.textContent = s.state; badge.className = "state s-" + s.state;
    const cancel = document.getElementById("cancel-job"); if (cancel) cancel.hidden = true;
    updateStatus("ended: " + s.state);
  });
  source.addEventListener("busy", () => updateStatus("the coordinator is busy; retrying…"));
  source.addEventListener("error", () => { if (!ended) updateStatus("reconnecting…"); });
  source.addEventListener("open", () => { if (!ended) updateStatus("following"); });
  if (location.hash) setTimeout(() => { const t = document.getElementById(location.hash.slice(1)); if (t) { t.classList.add("hl"); t.scrollIntoView(); follow.checked = false; } }, 1500);
})();
