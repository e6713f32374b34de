// The overview: submit forms, the live list of recent pipelines with stage
// bars (each opens its pipeline), and the durations chart.

import { $, badge, el, shortTask, stageLabel } from "./dom.js";
import { api, follow, onStatus, postJson } from "./api.js";
import { drawDurations } from "./chart.js";
import { PIPELINE_TERMINAL } from "./states.js";

const LIST_SIZE = 15;

export function stagePercent(task) {
  if (task.status === "SUCCESS") return 100;
  if (task.status === "PROGRESS" && task.result) {
    try { return Math.max(0, Math.min(100, Number(JSON.parse(task.result).progress) || 0)); } catch (_) { return 0; }
  }
  return task.status === "STARTED" ? 5 : 0;
}

export function stageBar(task) {
  const percent = stagePercent(task);
  const fill = el("div", { "data-state": task.status, "data-percent": String(percent) });
  fill.style.width = `${percent}%`;
  return el("div", {
    class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(percent),
    "aria-label": `${shortTask(task.task_name)} progress`,
  }, fill);
}

function renderPipeline(status) {
  let box = document.getElementById(`p-${status.pipeline_id}`);
  if (!box) {
    box = el("article", { class: "pipeline", id: `p-${status.pipeline_id}` });
    $("#pipelines").prepend(box);
    [...$("#pipelines").children].slice(LIST_SIZE).forEach((old) => old.remove());
  }
  const link = `#/pipelines/${status.pipeline_id}`;
  const head = el("div", { class: "pipeline-head" },
    el("a", { class: "open", href: link, text: status.pipeline, "aria-label": `open ${status.pipeline} ${status.pipeline_id}` }),
    badge(status.overall_state),
    el("span", { class: "muted num", text: `${Math.round(status.progress)}%` }),
    el("code", { title: status.pipeline_id, text: status.pipeline_id.slice(0, 8) }),
    el("span", { class: "muted message-line", text: status.message || "" }));
  const stages = status.tasks.map((task) => el("div", { class: "stage", "data-status": task.status },
    el("span", { class: "stage-name", title: task.task_name, text: `${task.step}. ${stageLabel(task.task_name, status.pipeline)}` }),
    stageBar(task),
    el("span", { class: "muted", text: task.status + (task.retries ? ` (${task.retries} retries)` : "") })));
  const failed = status.tasks.find((t) => t.status === "FAILURE" && t.result);
  box.replaceChildren(head, ...stages, ...(failed ? [el("p", { class: "error", text: failed.result })] : []));
  box.dataset.state = status.overall_state;
}

onStatus((status) => {
  if (document.getElementById(`p-${status.pipeline_id}`)) renderPipeline(status);
});

export async function refreshPipelines() {
  const recent = await api(`/api/v1/pipelines?limit=${LIST_SIZE}`);
  for (const summary of [...recent].reverse()) {
    const box = document.getElementById(`p-${summary.pipeline_id}`);
    const ended = PIPELINE_TERMINAL.has(summary.overall_state);
    const stale = box && ended && box.dataset.state !== summary.overall_state;
    if (!box || stale) renderPipeline(await api(`/api/v1/pipelines/${summary.pipeline_id}`));
    if (!ended) follow(summary.pipeline_id);
  }
}

export async function refreshChart() {
  let page;
  try { page = await api("/api/v1/tasks/history?hours=1&limit=1000"); } catch (_) { return; }
  drawDurations($("#chart"), $("#chart-legend"), page.items);
}

// -- submit forms ----------------------------------------------------------------
export function setPipelineTypes(types) {
  const select = $("#file-pipeline");
  const chosen = select.value;
  select.replaceChildren(...types.filter((t) => t.files.length).map((t) =>
    el("option", { value: t.slug, text: `${t.slug} (${t.files[0].description})` })));
  if (chosen) select.value = chosen;
}

async function submitted(data, extra = "") {
  const link = el("a", { href: `#/pipelines/${data.pipeline_id}`, text: data.pipeline_id });
  $("#submit-message").replaceChildren(`submitted `, link, ` (about ${Math.round(data.estimated_duration)} s)${extra}`);
  $("#submit-message").dataset.pipelineId = data.pipeline_id;
  $("#submit-message").classList.remove("error");
  renderPipeline(await api(`/api/v1/pipelines/${data.pipeline_id}`));
  follow(data.pipeline_id);
}

function failed(err) {
  $("#submit-message").textContent = err.message;
  $("#submit-message").classList.add("error");
}

async function busy(button, work) {
  button.disabled = true;
  try { await work(); } finally { button.disabled = false; }
}

$("#ai-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("#ai-submit"), async () => {
    try {
      await submitted(await postJson("/api/v1/tasks/ai-pipeline", {
        text: $("#ai-text").value, options: { task: $("#ai-task").value },
      }));
    } catch (err) { failed(err); }
  });
});

$("#file-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("#file-input").files[0];
  if (!file) { failed(new Error("choose a file first")); return; }
  busy($("#file-submit"), async () => {
    const form = new FormData();
    form.append("file", file);
    try {
      await submitted(await api(`/api/v1/pipelines/${$("#file-pipeline").value}`, { method: "POST", body: form }));
    } catch (err) { failed(err); }
  });
});
