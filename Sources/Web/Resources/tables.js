// Deployments and audit pages: rows built from the JSON API with textContent only.
"use strict";
(() => {
  const cell = (row, text, cls) => { const td = row.insertCell(); td.textContent = text == null ? "" : String(text); if (cls) td.className = cls; return td; };
  const link = (row, text, href) => { const td = row.insertCell(); const a = document.createElement("a"); a.href = href; a.textContent = text; a.className = "mono"; td.appendChild(a); };
  const badge = (row, state) => { const td = row.insertCell(); const s = document.createElement("span"); s.className = "state s-" + state; s.textContent = state; td.appendChild(s); };
  const when = (row, iso) => { const td = row.insertCell(); if (!iso) return; const t = document.createElement("time"); t.setAttribute("datetime", iso); td.appendChild(t); };
  const empty = (body, text, span) => { const r = body.insertRow(); const td = cell(r, text, "empty"); td.colSpan = span; };
  const renderers = {
    dora(body, data) {
      for (const e of data.environments) {
        const r = body.insertRow();
        cell(r, e.environment); cell(r, e.deployments); cell(r, (e.deployments_per_day ?? e.deploymentsPerDay ?? 0).toFixed(2));
        cell(r, Gantry.duration(e.lead_time_median_seconds ?? e.leadTimeMedianSeconds));
        const rate = e.change_failure_rate ?? e.changeFailureRate; cell(r, rate == null ? "" : Math.round(rate * 100) + " %");
        cell(r, Gantry.duration(e.time_to_restore_median_seconds ?? e.timeToRestoreMedianSeconds));
      }
      if (!data.environments.length) empty(body, "No deployments in the window.", 6);
    },
    deployments(body, data) {
      for (const d of data.deployments) {
        const r = body.insertRow();
        cell(r, d.environment); badge(r, d.state); link(r, d.step, "/ui/jobs/" + encodeURIComponent(d.id));
        link(r, d.pipeline_id ?? d.pipelineId, "/ui/pipelines/" + encodeURIComponent(d.pipeline_id ?? d.pipelineId));
        cell(r, (d.commit || "").slice(0, 12), "mono");
        cell(r, (d.approvals || []).map((a) => a.by).join(", "));
        when(r, d.finished_at ?? d.finishedAt); cell(r, Gantry.duration(d.duration_seconds ?? d.durationSeconds));
      }
      if (!data.deployments.length) empty(body, "Nothing has been deployed yet.", 8);
    },
    audit(body, data) {
      for (const a of data.records) {
        const r = body.insertRow();
        cell(r, a.seq); when(r, a.at ?? a.time ?? a.timestamp); cell(r, a.actor); cell(r, a.action); cell(r, a.object, "wrap");
        cell(r, a.outcome); cell(r, a.address);
      }
      if (!data.records.length) empty(body, "The audit log is empty.", 7);
    },
  };
  document.addEventListener("DOMContentLoaded", async () => {
    for (const table of document.querySelectorAll("table[data-source]")) {
      const body = table.tBodies[0];
      try { renderers[table.id](body, await Gantry.call("GET", table.dataset.source)); Gantry.relabelTimes(table); }
      catch (error) { empty(body, error.message, table.rows[0].cells.length); }
    }
  });
})();
