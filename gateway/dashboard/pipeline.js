// One pipeline (#/pipelines/<id>): every stage with status, queue, worker,
// timings and retries; the live answer while one is generated; the result
// once it succeeded; the error and traceback when it failed; Retry and Cancel.
//
// Reads GET /api/v1/pipelines/{id} (status), /{id}/tasks (every tracked task:
// queued time, errors, tracebacks, earlier attempts; where the gateway lacks it,
// the status's per-stage summaries stand in), /{id}/result, /{id}/events.

import { $, badge, el, elapsed, facts, seconds, shortTask, stageLabel, timeCell, withoutType } from "./dom.js";
import { api, follow, onStatus } from "./api.js";
import { confirmAction } from "./dialog.js";
import { stageBar } from "./overview.js";
import { renderResult } from "./results.js";
import { PIPELINE_TERMINAL } from "./states.js";
import { p95Of } from "./summary.js";

let view = null; // {id, status, records (null: not available), stagesKey, resultFor, loading}

const isVisible = () => !$("#pipeline-view").hidden;

export async function openPipeline(id) {
  if (view && view.id === id) { refresh(); return; }
  view = { id, status: null, records: undefined, stagesKey: "", resultFor: null };
  $("#pipeline-title").textContent = "Pipeline";
  $("#pipeline-state").textContent = "…";
  $("#pipeline-state").dataset.state = "";
  $("#pipeline-facts").replaceChildren(...facts([["Id", el("code", { text: id })]]));
  $("#stages tbody").replaceChildren();
  $("#stages-note").textContent = "\u00a0";
  setMessage("");
  for (const section of ["#live-output", "#failure", "#result"]) $(section).hidden = true;
  $("#retry-button").disabled = true;
  $("#cancel-button").disabled = true;
  await refresh();
}

async function refresh() {
  if (!view) return;
  const id = view.id;
  let status;
  try {
    status = await api(`/api/v1/pipelines/${encodeURIComponent(id)}`);
  } catch (err) {
    if (view && view.id === id) {
      $("#pipeline-title").textContent = "Pipeline not shown";
      setMessage(err.status === 404 ? `No pipeline ${id}.` : err.message, true);
    }
    return;
  }
  if (!view || view.id !== id) return;
  await show(status);
  if (!PIPELINE_TERMINAL.has(status.overall_state) || !status.tasks.every((t) => t.ready)) watch(id);
}

// Follows the events while the pipeline runs; when the stream ends early (the
// server's watch limit, a dropped connection) and it still runs, follows again.
function watch(id) {
  follow(id).then(() => {
    if (view && view.id === id && isVisible()) setTimeout(refresh, 500);
  });
}

onStatus((status) => {
  if (view && view.id === status.pipeline_id) show(status);
});

async function show(status) {
  view.status = status;
  renderHead(status);
  renderBody(status);
  const key = status.tasks.map((t) => `${t.task_id}:${t.status}:${t.retries}`).join(",") + status.overall_state;
  if (key !== view.stagesKey) { // stages moved on: read the full task records again
    view.stagesKey = key;
    view.catchUps = 0;
    await syncRecords(status.pipeline_id);
  }
}

const CATCH_UP_TRIES = 20; // × 1 s

// The status can run ahead of tracking's rows (it reads the live hash until they are
// written): read the records again until every finished stage has its own.
async function syncRecords(id) {
  await loadRecords(id);
  if (!view || view.id !== id) return;
  renderBody(view.status); // the newest status, with the new records
  if (view.records && !recordsCaughtUp(view.status) && view.catchUps < CATCH_UP_TRIES) {
    view.catchUps += 1;
    const key = view.stagesKey;
    setTimeout(() => { if (view && view.id === id && view.stagesKey === key) syncRecords(id); }, 1000);
  }
}

function recordsCaughtUp(status) {
  const byId = new Map(view.records.map((r) => [r.task_id, r]));
  return status.tasks.every((t) => !t.ready || (byId.get(t.task_id) || {}).status === t.status);
}

function renderBody(status) {
  renderStages(status);
  renderLiveOutput(status);
  renderFailure(status);
  if (status.overall_state === "SUCCESS") loadResult(status);
  else $("#result").hidden = true;
}

async function loadRecords(id) {
  try {
    const records = await api(`/api/v1/pipelines/${encodeURIComponent(id)}/tasks`);
    if (view && view.id === id) view.records = records;
  } catch (err) {
    if (view && view.id === id) view.records = null; // not offered by this gateway: the status's summaries stand in
  }
}

function renderHead(status) {
  $("#pipeline-title").textContent = status.pipeline;
  document.title = `${status.pipeline} ${status.overall_state.toLowerCase()} · aiworker`;
  const state = $("#pipeline-state");
  state.textContent = status.overall_state;
  state.dataset.state = status.overall_state;
  $("#pipeline-history-link").href = `#/history?pipeline=${encodeURIComponent(status.pipeline)}`;
  $("#pipeline-history-link").textContent = `history of ${status.pipeline}`;
  const finished = status.tasks.map((t) => t.completed_at).filter(Boolean).sort().pop();
  const ended = PIPELINE_TERMINAL.has(status.overall_state);
  $("#pipeline-facts").replaceChildren(...facts([
    ["Id", el("code", { text: status.pipeline_id })],
    ["Submitted", timeCell(status.created_at)],
    ["Finished", ended && finished ? timeCell(finished) : null],
    ["Took", ended && finished ? seconds(elapsed(status.created_at, finished)) : null],
    ["Stages", `${status.completed_steps} of ${status.total_steps} done`],
    ["Message", status.message || null],
  ]));
  const progress = $("#pipeline-progress");
  progress.setAttribute("aria-valuenow", String(Math.round(status.progress)));
  progress.firstElementChild.style.width = `${status.progress}%`;
  progress.firstElementChild.dataset.state = status.overall_state;
  $("#retry-button").disabled = status.overall_state !== "FAILURE";
  $("#cancel-button").disabled = ended;
}

function recordsOf(stage) {
  if (!view.records) return { own: null, earlier: [] };
  const own = view.records.find((r) => r.task_id === stage.task_id) || null;
  const earlier = view.records.filter((r) => r.task_id !== stage.task_id
    && (r.stage_index ?? -1) === (stage.stage_index ?? stage.step - 1));
  return { own, earlier };
}

function renderStages(status) {
  const ended = PIPELINE_TERMINAL.has(status.overall_state);
  const rows = status.tasks.map((task) => {
    const { own, earlier } = recordsOf(task);
    const notRun = task.status === "SKIPPED" || (ended && task.status === "PENDING");
    const queued = own ? own.created_at : null;
    const waited = elapsed(queued, task.started_at);
    const reruns = earlier.length ? `+${earlier.length} earlier run${earlier.length > 1 ? "s" : ""}` : "";
    return el("tr", { "data-status": task.status, "data-task-id": task.task_id },
      el("td", { class: "num", text: String(task.step) }),
      el("th", { scope: "row", title: task.task_name, text: stageLabel(task.task_name, status.pipeline) }),
      el("td", {}, badge(task.status), task.error_type ? el("span", { class: "error-type", title: task.error_type, text: ` ${task.error_type}` }) : null),
      el("td", {}, stageBar(task)),
      el("td", { text: task.queue || own?.queue || "—" }),
      el("td", { class: "worker", title: task.worker || own?.worker || "", text: task.worker || own?.worker || (notRun ? "not run" : "—") }),
      el("td", {}, timeCell(queued)),
      el("td", { title: waited !== null ? `waited ${seconds(waited)} in the queue` : null }, timeCell(task.started_at)),
      el("td", {}, notRun ? el("span", { class: "muted", text: "—" }) : timeCell(task.completed_at)),
      el("td", { class: "num", title: p95Of(task.task_name) !== null ? `p95 of this stage: ${seconds(p95Of(task.task_name))}` : null },
        seconds(task.runtime), p95Of(task.task_name) !== null ? el("span", { class: "muted", text: ` / ${seconds(p95Of(task.task_name))}` }) : null),
      el("td", { class: "num" }, String(task.retries), reruns ? el("span", { class: "muted reruns", text: reruns }) : null));
  });
  $("#stages tbody").replaceChildren(...rows);
  const skipped = status.tasks.filter((t) => t.status === "SKIPPED").length;
  $("#stages-note").textContent = [
    skipped ? `${skipped} stage${skipped > 1 ? "s" : ""} after the failure never ran.` : "",
    view.records === null ? "Queued times and tracebacks need GET /api/v1/pipelines/{id}/tasks; showing the status's summaries." : "",
  ].filter(Boolean).join(" ") || "\u00a0";
}

function renderLiveOutput(status) {
  const live = status.partial_output && !PIPELINE_TERMINAL.has(status.overall_state);
  $("#live-output").hidden = !live;
  if (!live) return;
  const pre = $("#partial-output");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = status.partial_output;
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

// A failed stage as the status summarises it (no traceback there).
function summaryBlock(stage) {
  return el("article", { class: "failure", "data-task-id": stage.task_id, "data-source": "status" },
    el("h4", { text: shortTask(stage.task_name) }),
    el("p", { class: "error" }, el("strong", { text: `${stage.error_type || "Error"}: ` }),
      el("span", { class: "error-message", text: withoutType(stage.result, stage.error_type) || "(no message)" })));
}

function renderFailure(status) {
  const failedStages = status.tasks.filter((t) => t.status === "FAILURE");
  const failedRecords = (view.records || []).filter((r) => r.status === "FAILURE")
    .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  const current = new Set(status.tasks.map((t) => t.task_id));
  const blocks = [];
  if (view.records) {
    // a failed stage whose record is not written yet: the status's summary meanwhile
    const recorded = new Set(failedRecords.map((r) => r.task_id));
    for (const stage of failedStages.filter((t) => !recorded.has(t.task_id))) blocks.push(summaryBlock(stage));
    for (const record of failedRecords) {
      blocks.push(el("article", { class: `failure${current.has(record.task_id) ? "" : " earlier"}`, "data-task-id": record.task_id },
        el("h4", {}, shortTask(record.task_name),
          el("span", { class: "muted", text: current.has(record.task_id) ? "" : " (an earlier run, since retried)" })),
        el("p", { class: "error" }, el("strong", { text: `${record.error_type || "Error"}: ` }),
          el("span", { class: "error-message", text: withoutType(record.error_message, record.error_type) || "(no message)" })),
        el("p", { class: "muted" }, "at ", timeCell(record.completed_at), record.worker ? ` on ${record.worker}` : "",
          record.retry_count ? `, after ${record.retry_count} retries` : "", record.retry_reason ? ` (${record.retry_reason})` : ""),
        record.traceback ? el("details", { open: current.has(record.task_id) && failedRecords.length === 1 },
          el("summary", { text: "Traceback" }), el("pre", { class: "traceback", text: record.traceback })) : null));
    }
  } else {
    for (const stage of failedStages) blocks.push(summaryBlock(stage));
  }
  if (status.overall_state === "REVOKED") {
    blocks.unshift(el("p", { class: "muted", text: "Cancelled: the stages that had not finished were revoked." }));
  }
  $("#failure").hidden = !blocks.length;
  $("#failure-title").textContent = failedStages.length ? "Error" : status.overall_state === "REVOKED" ? "Cancelled" : "Earlier errors";
  $("#failure-body").replaceChildren(...blocks);
}

async function loadResult(status) {
  const last = status.tasks[status.tasks.length - 1];
  if (view.resultFor === last.task_id) return;
  view.resultFor = last.task_id;
  $("#result").hidden = false;
  $("#result-body").replaceChildren(el("p", { class: "muted", text: "loading the result…" }));
  try {
    const body = await api(`/api/v1/pipelines/${encodeURIComponent(status.pipeline_id)}/result`);
    if (!view || view.id !== body.pipeline_id) return;
    $("#result-body").replaceChildren(...renderResult(body.pipeline, body.result));
  } catch (err) {
    if (!view || view.id !== status.pipeline_id) return;
    view.resultFor = err.status === 410 ? last.task_id : null; // try again later unless it is gone
    $("#result-body").replaceChildren(el("div", {},
      el("p", { class: "error", text: err.message }),
      last.result ? el("p", {}, "Its summary: ", el("code", { text: last.result })) : null));
  }
}

// -- actions ---------------------------------------------------------------------
function setMessage(text, isError = false) {
  const message = $("#action-message");
  message.textContent = text || "\u00a0";
  message.classList.toggle("error", isError);
}

$("#retry-button").addEventListener("click", async () => {
  const status = view && view.status;
  if (!status) return;
  const failed = status.tasks.find((t) => t.status === "FAILURE");
  const confirmed = await confirmAction({
    title: "Retry this pipeline?",
    text: `${status.pipeline} ${status.pipeline_id} runs again from its failed stage`
      + `${failed ? ` (${shortTask(failed.task_name)})` : ""}, reusing what the stages before it made.`,
    confirm: "Retry",
  });
  if (!confirmed) return;
  setMessage("asking the gateway to retry…");
  try {
    const data = await api(`/api/v1/pipelines/${encodeURIComponent(status.pipeline_id)}/retry`, { method: "POST" });
    setMessage(`Retry accepted: ${data.message}; ${data.task_ids.length} stage${data.task_ids.length > 1 ? "s" : ""} queued again `
      + `(about ${Math.round(data.estimated_duration)} s).`);
    view.resultFor = null;
    await refresh();
  } catch (err) {
    setMessage(`Retry refused: ${err.message}`, true);
  }
});

$("#cancel-button").addEventListener("click", async () => {
  const status = view && view.status;
  if (!status) return;
  const terminate = el("input", { type: "checkbox", id: "cancel-terminate" });
  const confirmed = await confirmAction({
    title: "Cancel this pipeline?",
    text: `The stages of ${status.pipeline} ${status.pipeline_id} that have not finished are revoked.`,
    confirm: "Cancel the pipeline",
    extra: el("label", {}, terminate, " also stop the stage that is running now"),
  });
  if (!confirmed) return;
  setMessage("asking the gateway to cancel…");
  try {
    const data = await api(
      `/api/v1/pipelines/${encodeURIComponent(status.pipeline_id)}/cancel?terminate=${terminate.checked}`, { method: "POST" });
    const running = data.running.length
      ? `; ${data.running.length} running stage${data.running.length > 1 ? "s" : ""} ${data.terminated ? "stopped" : "left to finish"}` : "";
    setMessage(`Cancel accepted: ${data.revoked.length} waiting stage${data.revoked.length === 1 ? "" : "s"} revoked${running}.`);
    await refresh();
  } catch (err) {
    setMessage(`Cancel refused: ${err.message}`, true);
  }
});

export function closePipeline() {
  // The stream (if any) ends with the pipeline; nothing to stop. Forget the view so
  // that opening the same pipeline again reads it afresh.
  view = null;
}
