// The summary strip (every view) and the health table (overview): success
// rate, pipelines completed, queue lengths, services with device and
// replicas, p95 per pipeline. From GET /api/v1/metrics/summary and /readyz.

import { $, badge, el, percent, seconds, stageLabel } from "./dom.js";
import { api } from "./api.js";

let types = [];
let lastMetrics = null;

// The p95 of a task name in the summary's window (null when unknown).
export function p95Of(taskName) {
  const task = (lastMetrics?.by_task || []).find((t) => t.task_name === taskName);
  return task ? task.p95_seconds : null;
}

export function setPipelineTypes(list) {
  types = list;
  if (lastMetrics) renderLatency(lastMetrics);
}

export async function refreshMetrics() {
  let metrics;
  try {
    metrics = await api(`/api/v1/metrics/summary?window_hours=${$("#summary-window").value}`);
  } catch (err) {
    $("#sum-tasks-detail").textContent = err.status === 401 ? "needs the API key" : err.message;
    return;
  }
  lastMetrics = metrics;
  const window = Number(metrics.window_hours);
  const span = window >= 48 && window % 24 === 0 ? `${window / 24} d` : `${window} h`;
  $("#sum-success-rate").textContent = percent(metrics.success_rate);
  const errors = Object.entries(metrics.errors_by_type || {}).sort((a, b) => b[1] - a[1]).slice(0, 1);
  $("#sum-tasks-detail").textContent = `${metrics.total_tasks} tasks in ${span} · ${metrics.retries} retries`;
  $("#sum-tasks-errors").textContent = errors.length ? `most errors: ${errors[0][0]} ×${errors[0][1]}` : "\u00a0";
  $("#sum-tasks-errors").title = Object.entries(metrics.errors_by_type || {}).map(([k, v]) => `${k} ×${v}`).join(", ");
  const chains = metrics.chains;
  $("#sum-completion-rate").textContent = percent(chains.completion_rate);
  $("#sum-chains-detail").textContent =
    `${chains.completed} done · ${chains.failed} failed · ${chains.running} running`;
  renderQueues(metrics);
  renderLatency(metrics);
}

function renderQueues(metrics) {
  // `queue_oldest_seconds` ({queue: age of its oldest waiting message}) is shown once the API gives it.
  const oldest = metrics.queue_oldest_seconds || {};
  const rows = Object.entries(metrics.queue_depth || {}).sort().map(([queue, depth]) => el("li", { "data-queue": queue },
    el("span", { class: "name", text: queue }),
    el("strong", { class: "num", text: String(depth) }),
    queue in oldest ? el("span", { class: "muted", text: ` oldest ${seconds(oldest[queue])}` }) : null));
  rows.push(el("li", { title: "messages delivered to workers and not yet acknowledged" },
    el("span", { class: "name muted", text: "unacked" }), el("strong", { class: "num", text: String(metrics.unacked) })));
  $("#sum-queue-list").replaceChildren(...rows);
}

// p95 per pipeline: the API's own figure when it gives one (`by_pipeline`: [{pipeline,
// p95_seconds, …}]); until then each stage's p95 (per task name), stacked per pipeline
// and summed (a sum of stage p95s, said so: not the p95 of whole pipelines).
function renderLatency(metrics) {
  const byTask = new Map((metrics.by_task || []).map((t) => [t.task_name, t]));
  const byPipeline = new Map((metrics.by_pipeline || []).map((p) => [p.pipeline, p]));
  const rows = types.map((type) => {
    const own = byPipeline.get(type.name);
    const stages = type.stages.map((s) => ({ label: stageLabel(s.task_name, type.name), ...byTask.get(s.task_name) }))
      .filter((s) => s.p95_seconds !== null && s.p95_seconds !== undefined);
    const total = own ? own.p95_seconds : stages.reduce((sum, s) => sum + s.p95_seconds, 0);
    return { type, own, stages, total };
  }).filter((row) => (row.own && row.own.p95_seconds !== null) || row.stages.length);
  $("#sum-latency-title").textContent = byPipeline.size ? "p95 per pipeline" : "p95 per stage, stacked per pipeline";
  const longest = Math.max(...rows.map((r) => r.total), 1e-6);
  const body = rows.map(({ type, own, stages, total }) => {
    const breakdown = stages.map((s) => `${s.label} ${seconds(s.p95_seconds)}`).join(", ");
    const stack = el("div", { class: "stack", "aria-hidden": "true" }, ...stages.map((s, i) => {
      const part = el("span", { "data-i": String(i % 4), title: `${s.label}: p95 ${seconds(s.p95_seconds)} (${s.total} tasks)` });
      part.style.flexGrow = String(s.p95_seconds);
      return part;
    }));
    stack.style.width = `${Math.max(2, 100 * total / longest)}%`;
    return el("tr", { "data-pipeline": type.name, title: breakdown },
      el("th", { scope: "row", text: type.slug }),
      el("td", { class: "stack-cell" }, stack, el("span", { class: "visually-hidden", text: breakdown })),
      el("td", { class: "num", "data-p95": String(total) }, own ? seconds(total) : `Σ ${seconds(total)}`));
  });
  if (!body.length) body.push(el("tr", {}, el("td", { class: "muted", text: "no finished tasks in the window" })));
  $("#sum-p95 tbody").replaceChildren(...body);
}

// -- health --------------------------------------------------------------------
function replicaText(part) {
  const replicas = part.replicas || [];
  if (!replicas.length) return "";
  const serving = replicas.filter((r) => r.status === "SERVING").length;
  return `${serving}/${replicas.length}`;
}

export async function refreshHealth() {
  let body;
  try {
    const response = await fetch("/readyz");
    body = await response.json();
  } catch (_) {
    $("#ready").textContent = "gateway unreachable";
    $("#ready").dataset.state = "UNAVAILABLE";
    return;
  }
  $("#ready").textContent = body.ready ? "ready" : "not ready";
  $("#ready").dataset.state = body.ready ? "SERVING" : "UNAVAILABLE";
  const parts = Object.entries(body.parts || {});
  $("#health tbody").replaceChildren(...parts.map(([name, part]) => el("tr", { "data-part": name },
    el("th", { scope: "row", text: name }),
    el("td", {}, badge(part.status)),
    el("td", { text: part.device || "" }),
    el("td", {},
      ...(part.replicas || []).map((r) => el("span", {
        class: "replica", "data-state": r.status,
        title: `${r.address}: ${r.status}${r.device ? ` on ${r.device}` : ""}${r.detail ? ` (${r.detail})` : ""}`,
        text: r.device || r.status,
      }))),
    el("td", { class: "muted detail", text: part.detail || "" }))));
  const services = parts.filter(([, part]) => part.kind === "service");
  $("#sum-service-list").replaceChildren(...services.map(([name, part]) => el("li", { "data-service": name },
    el("span", { class: "dot", "data-state": part.status, "aria-hidden": "true" }),
    el("span", { class: "name", text: name }),
    el("span", { class: "visually-hidden", text: ` ${part.status}` }),
    el("span", { class: "device", text: part.device || part.status.toLowerCase() }),
    replicaText(part) ? el("span", {
      class: "muted replicas", title: `${replicaText(part)} replicas serving`, text: `${replicaText(part)} up`,
    }) : null)));
}
