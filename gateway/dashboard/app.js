// aiworker dashboard: plain JS modules, no build step, nothing fetched but the
// gateway's own API. Views by URL hash, so each can be linked:
//   #/                   overview: submit, health, recent pipelines (live), durations
//   #/pipelines/<id>     one pipeline: stages, live output, result or error, retry/cancel
//   #/history?…          task history with filters and paging
// The summary strip above them is refreshed on every view.

import { $ } from "./dom.js";
import { api, auth, setKey } from "./api.js";
import * as summary from "./summary.js";
import * as overview from "./overview.js";
import * as history from "./history.js";
import { closePipeline, openPipeline } from "./pipeline.js";
import { loadStates } from "./states.js";

const TITLE = "aiworker dashboard";
let current = null;

function showView(name) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.dataset.view !== name;
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const changed = current !== null && current !== name;
  if (current === "pipeline" && name !== "pipeline") closePipeline();
  current = name;
  return changed;
}

function focusHeading(name) {
  const heading = $(`#${name}-view [tabindex="-1"]`);
  if (heading) heading.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

function route() {
  const [path, query = ""] = (location.hash || "#/").slice(1).split("?");
  const pipeline = path.match(/^\/pipelines\/([A-Za-z0-9._-]+)$/);
  let name;
  if (pipeline) {
    name = "pipeline";
    showView(name);
    openPipeline(decodeURIComponent(pipeline[1]));
  } else if (path === "/history") {
    name = "history";
    showView(name);
    document.title = `History · ${TITLE}`;
    if (auth.key) history.openHistory(new URLSearchParams(query));
    else $("#history-message").textContent = "Enter the API key (top right) to read the history.";
  } else {
    name = "overview";
    showView(name);
    document.title = TITLE;
    refreshOverview();
  }
  if (document.readyState === "complete" && routed) focusHeading(name);
  routed = true;
}
let routed = false;

// The status vocabulary, before the views read it; like every /api call it needs the key,
// so without one it is read once the key is entered.
async function loadVocabulary() {
  try { await loadStates(); } catch (_) { return; }
  history.setStatuses();
}

async function loadPipelineTypes() {
  let types;
  try { types = await api("/api/v1/pipeline-types"); } catch (_) { return; }
  overview.setPipelineTypes(types);
  history.setPipelineTypes(types);
  summary.setPipelineTypes(types);
}

async function refreshOverview() {
  if (!auth.key || current !== "overview") return;
  try {
    await overview.refreshPipelines();
    $("#key-state").textContent = "";
  } catch (err) {
    $("#key-state").textContent = err.message;
  }
}

function refreshChart() {
  if (auth.key && current === "overview") overview.refreshChart();
}

function refreshMetrics() {
  if (auth.key) summary.refreshMetrics();
}

$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  setKey($("#api-key").value.trim());
  $("#key-state").textContent = auth.key ? "" : "no key";
  loadPipelineTypes();
  refreshMetrics();
  await loadVocabulary();
  route();
  refreshChart();
});

$("#summary-window").addEventListener("change", refreshMetrics);
window.addEventListener("hashchange", route);

$("#api-key").value = auth.key;
if (!auth.key) $("#key-state").textContent = "enter the API key to see pipelines";
loadPipelineTypes();
summary.refreshHealth();
refreshMetrics();
loadVocabulary().then(() => {
  route();
  refreshChart();
});
setInterval(summary.refreshHealth, 5000);
setInterval(refreshOverview, 4000);
setInterval(refreshMetrics, 10000);
setInterval(refreshChart, 10000);
