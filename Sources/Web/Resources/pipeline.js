// The pipeline page: polls the pipeline's JSON every 2 s while the tab is visible and
// updates each job's box in place (state, attempt, agent, duration, buttons); the graph's
// layout and edges never move, since the set of jobs only grows by uploads (then reload).
"use strict";
(() => {
  const graph = document.getElementById("graph"); if (!graph) return;
  const id = graph.dataset.pipeline;
  // Positions come as numbers in data attributes and are set here: the page's CSP allows
  // no inline style, so nothing a value could smuggle into an attribute can style the page.
  const number = (text) => (/^[0-9]{1,7}$/.test(text || "") ? text + "px" : "0px");
  graph.style.width = number(graph.dataset.width);
  graph.style.height = number(graph.dataset.height);
  for (const box of graph.querySelectorAll(".job")) { box.style.left = number(box.dataset.x); box.style.top = number(box.dataset.y); }
  const terminal = new Set(["succeeded", "failed", "cancelled", "timed_out", "skipped"]);
  let known = graph.querySelectorAll(".job").length, busy = false;
  const setText = (box, cls, text) => { const e = box.querySelector(cls); if (e && e.textContent !== text) e.textContent = text; };
  async function refresh() {
    if (busy) return; busy = true;
    try {
      const p = await Gantry.call("GET", "/v1/pipelines/" + encodeURIComponent(id));
      if (p.jobs.length !== known) { location.reload(); return; }
      const badge = document.getElementById("pipeline-state");
      badge.textContent = p.state; badge.className = "state s-" + p.state;
      document.getElementById("cancel-pipeline").hidden = p.state !== "running";
      for (const j of p.jobs) {
        const box = document.getElementById("job-" + j.id); if (!box) continue;
        box.className = "job s-" + j.state;
        setText(box, ".jstate", j.state); setText(box, ".jattempt", "#" + j.attempt);
        setText(box, ".agent", j.agent_id || j.agentId || "\u00a0");
        const started = j.started_at || j.startedAt, finished = j.finished_at || j.finishedAt;
        if (started) setText(box, ".jduration", Gantry.duration(((finished ? new Date(finished) : new Date()) - new Date(started)) / 1000));
        const [cancel, retry] = box.querySelectorAll(".jobactions button");
        cancel.hidden = terminal.has(j.state);
        retry.hidden = !terminal.has(j.state) || j.state === "succeeded" || j.state === "skipped";
      }
      for (const b of document.querySelectorAll("button.approve, button.reject")) {
        const job = p.jobs.find((j) => j.key === b.dataset.step); if (job && job.state !== "blocked") b.hidden = true;
      }
    } catch (_) { /* next tick */ } finally { busy = false; }
  }
  window.GantryRefresh = refresh;
  setInterval(() => { if (!document.hidden) refresh(); }, 2000);
})();
