// Task history (#/history?hours=&status=&pipeline=&task_name=): the filters
// GET /api/v1/tasks/history takes, newest first, paged with its next_cursor;
// each row opens its pipeline. The filters live in the URL, so a view can be linked
// (`limit` there sets the page size: 50 unless given).

import { $, badge, el, seconds, shortTask, timeCell, withoutType } from "./dom.js";
import { api } from "./api.js";
import { TASK_STATUSES } from "./states.js";

const PAGE_SIZE = 50;
const FILTERS = ["hours", "status", "pipeline", "task_name"];

let types = [];
let pages = [null]; // the cursor of each page seen so far (page 1 has none)
let page = 0;
let filters = {};
let pageSize = PAGE_SIZE;

// The status choices, once the vocabulary is loaded (states.js).
export function setStatuses() {
  const select = $("#history-status");
  const chosen = filters.status || select.value;
  select.replaceChildren(el("option", { value: "", text: "any" }),
    ...TASK_STATUSES.map((s) => el("option", { value: s, text: s })));
  select.value = TASK_STATUSES.includes(chosen) ? chosen : "";
}

export function setPipelineTypes(list) {
  types = list;
  const select = $("#history-pipeline");
  const chosen = filters.pipeline || select.value;
  select.replaceChildren(el("option", { value: "", text: "any" }),
    ...types.map((t) => el("option", { value: t.name, text: t.slug })));
  select.value = chosen || "";
  fillTasks();
}

// The task choices: the chosen pipeline's stages, or every stage of every pipeline.
function fillTasks() {
  const select = $("#history-task");
  const chosen = filters.task_name || select.value;
  const pipeline = $("#history-pipeline").value;
  const names = [...new Set(types.filter((t) => !pipeline || t.name === pipeline)
    .flatMap((t) => t.stages.map((s) => s.task_name)))];
  if (chosen && !names.includes(chosen)) names.push(chosen);
  select.replaceChildren(el("option", { value: "", text: "any" }),
    ...names.map((n) => el("option", { value: n, text: shortTask(n) })));
  select.value = chosen || "";
}

$("#history-pipeline").addEventListener("change", () => { filters.task_name = ""; fillTasks(); });

function formFilters() {
  return {
    hours: $("#history-hours").value,
    status: $("#history-status").value,
    pipeline: $("#history-pipeline").value,
    task_name: $("#history-task").value,
  };
}

function hashOf(values) {
  const query = new URLSearchParams(Object.entries(values).filter(([, v]) => v));
  if (pageSize !== PAGE_SIZE) query.set("limit", String(pageSize));
  return `#/history${query.toString() ? `?${query}` : ""}`;
}

$("#history-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const target = hashOf(formFilters());
  if (location.hash === target) openHistory(new URLSearchParams(target.split("?")[1] || ""));
  else location.hash = target; // the router opens it
});

$("#history-form").addEventListener("reset", (event) => {
  event.preventDefault();
  pageSize = PAGE_SIZE;
  if (location.hash === "#/history") openHistory(new URLSearchParams());
  else location.hash = "#/history";
});

export function openHistory(params) {
  filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  if (!filters.hours) filters.hours = "24";
  pageSize = Math.min(1000, Math.max(1, Number.parseInt(params.get("limit"), 10) || PAGE_SIZE));
  const hours = $("#history-hours");
  if (![...hours.options].some((o) => o.value === filters.hours)) {
    hours.append(el("option", { value: filters.hours, text: `${filters.hours} hours` }));
  }
  hours.value = filters.hours;
  $("#history-status").value = TASK_STATUSES.includes(filters.status) ? filters.status : "";
  $("#history-pipeline").value = filters.pipeline;
  fillTasks();
  pages = [null];
  page = 0;
  return load();
}

async function load() {
  const query = new URLSearchParams({ limit: String(pageSize) });
  for (const key of FILTERS) if (filters[key]) query.set(key, filters[key]);
  if (pages[page]) query.set("cursor", pages[page]);
  const message = $("#history-message");
  message.classList.remove("error");
  message.textContent = "loading…";
  $("#history-table").setAttribute("aria-busy", "true");
  let data;
  try {
    data = await api(`/api/v1/tasks/history?${query}`);
  } catch (err) {
    message.textContent = err.message;
    message.classList.add("error");
    $("#history-table").removeAttribute("aria-busy");
    return;
  }
  $("#history-table").removeAttribute("aria-busy");
  if (data.next_cursor) pages[page + 1] = data.next_cursor;
  else pages.length = page + 1;
  $("#history-newer").disabled = page === 0;
  $("#history-older").disabled = !data.next_cursor;
  $("#history-page").textContent = `page ${page + 1}`;
  const described = [filters.status, filters.pipeline, filters.task_name && shortTask(filters.task_name)].filter(Boolean);
  message.textContent = data.items.length
    ? `${data.items.length} task${data.items.length > 1 ? "s" : ""}${described.length ? ` (${described.join(", ")})` : ""}, `
      + `created in the last ${filters.hours} h, newest first${data.next_cursor ? "; older ones on the next page" : ""}.`
    : "No tasks match these filters.";
  $("#history-table tbody").replaceChildren(...data.items.map(row));
}

function row(task) {
  const error = task.error_type ? `${task.error_type}: ${withoutType(task.error_message, task.error_type) || ""}` : "";
  return el("tr", { "data-status": task.status, "data-pipeline-id": task.pipeline_id || "" },
    el("td", {}, timeCell(task.created_at)),
    el("td", {}, task.pipeline_id
      ? el("a", { href: `#/pipelines/${task.pipeline_id}`, title: task.pipeline_id },
        task.pipeline || "pipeline", " ", el("code", { text: task.pipeline_id.slice(0, 8) }))
      : el("span", { class: "muted", text: "—" })),
    el("td", { title: task.task_name, text: shortTask(task.task_name) }),
    el("td", {}, badge(task.status)),
    el("td", { class: "num", text: seconds(task.runtime) }),
    el("td", { class: "num", text: String(task.retry_count) }),
    el("td", { text: task.queue || "—" }),
    el("td", { class: "worker", text: task.worker || "—" }),
    el("td", { class: "error-cell", title: error, text: withoutType(task.error_message, task.error_type) || error }));
}

$("#history-older").addEventListener("click", () => { page += 1; load(); });
$("#history-newer").addEventListener("click", () => { page = Math.max(0, page - 1); load(); });
