// The REST API as the dashboard reads it: the key (kept in localStorage), JSON
// calls that fail with the server's own error code and message, and live
// pipeline status over SSE, read with fetch (EventSource cannot send an
// Authorization header). One stream per pipeline, whoever asks for it.

const STORAGE = "aiworker-api-key";
export const auth = { key: localStorage.getItem(STORAGE) || "" };

export function setKey(key) {
  auth.key = key;
  localStorage.setItem(STORAGE, key);
}

function headers(extra = {}) {
  return auth.key ? { Authorization: `Bearer ${auth.key}`, ...extra } : extra;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(code ? `${code}: ${message}` : message);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  } catch (err) {
    throw new ApiError(0, "UNREACHABLE", `the gateway did not answer (${err.message})`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    throw new ApiError(response.status, error.code || String(response.status), error.message || response.statusText);
  }
  return body.data !== undefined ? body.data : body;
}

export const postJson = (path, payload) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload ?? {}) });

// -- live status -------------------------------------------------------------
const listeners = new Set();
const streams = new Map(); // pipeline id → promise that settles when its stream ends

// fn(status) for every `status` event of every followed pipeline.
export function onStatus(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// Follows a pipeline's events until its stream ends (the pipeline ended, the
// server's watch limit, a network error); resolves then. Idempotent per id.
export function follow(pipelineId) {
  if (!streams.has(pipelineId)) {
    const running = readStream(pipelineId).finally(() => streams.delete(pipelineId));
    streams.set(pipelineId, running);
  }
  return streams.get(pipelineId);
}

export const following = (pipelineId) => streams.has(pipelineId);

async function readStream(pipelineId) {
  try {
    const response = await fetch(`/api/v1/pipelines/${encodeURIComponent(pipelineId)}/events`, { headers: headers() });
    if (!response.ok) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", carriage = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      let text = carriage + value; // a CR LF split across two reads stays one line end
      carriage = text.endsWith("\r") ? "\r" : "";
      if (carriage) text = text.slice(0, -1);
      buffer += text.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const lines = chunk.split("\n");
        const event = (lines.find((l) => l.startsWith("event:")) || "event:message").slice(6).trim();
        const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (event === "end") return;
        if (event === "status") {
          const status = JSON.parse(data);
          listeners.forEach((fn) => fn(status));
        }
      }
    }
  } catch (err) {
    console.warn("stream", pipelineId, err);
  }
}
