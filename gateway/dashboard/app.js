// aiworker dashboard: plain JS, no build step. Reads the REST API with the
// API key kept in localStorage; follows running pipelines over SSE (read with
// fetch, since EventSource cannot send an Authorization header).
"use strict";

const state = { key: localStorage.getItem("aiworker-api-key") || "", streams: new Map() };
const $ = (sel) => document.querySelector(sel);

function headers(extra = {}) {
  return state.key ? { Authorization: `Bearer ${state.key}`, ...extra } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? `${body.error.code}: ${body.error.message}` : response.statusText;
    throw new Error(message);
  }
  return body.data !== undefined ? body.data : body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  children.forEach((c) => node.append(c));
  return node;
}

// -- health ------------------------------------------------------------------
async function refreshHealth() {
  try {
    const response = await fetch("/readyz");
    const body = await response.json();
    $("#ready").textContent = body.ready ? "ready" : "not ready";
    $("#ready").className = `badge ${body.ready ? "ready" : "not-ready"}`;
    const rows = Object.entries(body.parts).map(([name, part]) => el("tr", {},
      el("td", { text: name }),
      el("td", {}, el("span", { class: `badge ${part.status}`, text: part.status })),
      el("td", { text: part.device || "" }),
      el("td", { class: "muted", text: part.detail || "" })));
    $("#health tbody").replaceChildren(...rows);
  } catch (err) {
    $("#ready").textContent = "gateway unreachable";
  }
}

// -- pipelines ---------------------------------------------------------------
const TERMINAL = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

function stagePercent(task) {
  if (task.status === "SUCCESS") return 100;
  if (task.status === "PROGRESS" && task.result) {
    try { return Number(JSON.parse(task.result).progress) || 0; } catch (_) { return 0; }
  }
  return task.status === "STARTED" ? 5 : 0;
}

function renderPipeline(status) {
  let box = document.getElementById(`p-${status.pipeline_id}`);
  if (!box) {
    box = el("div", { class: "pipeline", id: `p-${status.pipeline_id}` });
    $("#pipelines").prepend(box);
  }
  const head = el("div", { class: "pipeline-head" },
    el("strong", { text: status.pipeline }),
    el("span", { class: `badge ${status.overall_state}`, text: status.overall_state, "data-state": status.overall_state }),
    el("span", { class: "muted", text: `${Math.round(status.progress)}%` }),
    el("code", { text: status.pipeline_id }));
  const stages = status.tasks.map((task) => {
    const percent = stagePercent(task);
    const fill = el("div", { class: task.status, "data-percent": String(percent) });
    fill.style.width = `${percent}%`;
    const row = el("div", { class: "stage" },
      el("span", { text: `${task.step}. ${task.task_name.replace(/^tasks\./, "")}` }),
      el("div", { class: "bar" }, fill),
      el("span", { class: "muted", text: task.status + (task.retries ? ` (${task.retries} retries)` : "") }));
    return task.status === "FAILURE" && task.result
      ? el("div", {}, row, el("div", { class: "error", text: task.result })) : row;
  });
  box.replaceChildren(head, ...stages);
  box.dataset.state = status.overall_state;
}

async function follow(pipelineId) {
  if (state.streams.has(pipelineId)) return;
  const controller = new AbortController();
  state.streams.set(pipelineId, controller);
  try {
    const response = await fetch(`/api/v1/pipelines/${pipelineId}/events`, { headers: headers(), signal: controller.signal });
    if (!response.ok) throw new Error(response.statusText);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0 || (cut = buffer.indexOf("\r\n\r\n")) >= 0) {
        const chunk = buffer.slice(0, cut);
        buffer = buffer.slice(cut + (buffer[cut] === "\r" ? 4 : 2));
        const lines = chunk.split(/\r?\n/);
        const event = (lines.find((l) => l.startsWith("event:")) || "").slice(6).trim();
        const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (event === "status") renderPipeline(JSON.parse(data));
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") console.warn("stream", pipelineId, err);
  } finally {
    state.streams.delete(pipelineId);
  }
}

async function refreshPipelines() {
  if (!state.key) return;
  try {
    const recent = await api("/api/v1/pipelines?limit=15");
    for (const summary of recent.reverse()) {
      const box = document.getElementById(`p-${summary.pipeline_id}`);
      if (!box) renderPipeline(await api(`/api/v1/pipelines/${summary.pipeline_id}`));
      if (!TERMINAL.has(summary.overall_state)) follow(summary.pipeline_id);
    }
    $("#key-state").textContent = "";
  } catch (err) {
    $("#key-state").textContent = err.message;
  }
}

// -- chart -------------------------------------------------------------------
async function refreshChart() {
  if (!state.key) return;
  let page;
  try { page = await api("/api/v1/tasks/history?hours=1&limit=500"); } catch (_) { return; }
  const done = page.items.filter((t) => t.runtime !== null && t.completed_at);
  const svg = $("#chart");
  svg.replaceChildren();
  if (!done.length) { $("#chart-legend").textContent = "no finished tasks in the last hour"; return; }
  const times = done.map((t) => Date.parse(t.completed_at));
  const t0 = Math.min(...times), t1 = Math.max(...times) + 1;
  const maxRuntime = Math.max(...done.map((t) => t.runtime), 0.001);
  const ns = "http://www.w3.org/2000/svg";
  done.forEach((t, i) => {
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", String(10 + 580 * (times[i] - t0) / (t1 - t0)));
    dot.setAttribute("cy", String(170 - 160 * t.runtime / maxRuntime));
    dot.setAttribute("r", "3");
    dot.setAttribute("fill", t.status === "SUCCESS" ? "#2e7d32" : "#c62828");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${t.task_name}: ${t.runtime.toFixed(2)} s, ${t.status}`;
    dot.append(title);
    svg.append(dot);
  });
  const ok = done.filter((t) => t.status === "SUCCESS").length;
  $("#chart-legend").textContent =
    `${done.length} tasks, ${Math.round(100 * ok / done.length)}% succeeded, slowest ${maxRuntime.toFixed(2)} s (green ok, red failed)`;
}

// -- forms -------------------------------------------------------------------
$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("#api-key").value.trim();
  localStorage.setItem("aiworker-api-key", state.key);
  refreshPipelines();
  refreshChart();
});

$("#ai-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const data = await api("/api/v1/tasks/ai-pipeline", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: $("#ai-text").value, options: { task: $("#ai-task").value } }),
    });
    $("#submit-message").textContent = `submitted ${data.pipeline_id} (about ${Math.round(data.estimated_duration)} s)`;
    renderPipeline(await api(`/api/v1/pipelines/${data.pipeline_id}`));
    follow(data.pipeline_id);
  } catch (err) {
    $("#submit-message").textContent = err.message;
  }
});

$("#file-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("#file-input").files[0];
  if (!file) { $("#submit-message").textContent = "choose a file first"; return; }
  const form = new FormData();
  form.append("file", file);
  try {
    const data = await api(`/api/v1/pipelines/${$("#file-pipeline").value}`, { method: "POST", body: form });
    $("#submit-message").textContent = `submitted ${data.pipeline_id}`;
    renderPipeline(await api(`/api/v1/pipelines/${data.pipeline_id}`));
    follow(data.pipeline_id);
  } catch (err) {
    $("#submit-message").textContent = err.message;
  }
});

$("#api-key").value = state.key;
refreshHealth();
refreshPipelines();
refreshChart();
setInterval(refreshHealth, 5000);
setInterval(refreshPipelines, 4000);
setInterval(refreshChart, 10000);
