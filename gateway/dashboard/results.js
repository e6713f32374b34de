// A finished pipeline's result (GET /api/v1/pipelines/{id}/result), rendered
// per pipeline kind; anything else as pretty JSON. The raw JSON is always
// one click away.

import { el, prettyJson, seconds } from "./dom.js";

function field(name, term, value) {
  if (value === null || value === undefined || value === "") return [];
  return [el("dt", { text: term }), el("dd", { "data-field": name }, value)];
}

function list(items, render) {
  return items && items.length ? el("ol", {}, ...items.map(render)) : el("p", { class: "muted", text: "none" });
}

function documentResult(result) {
  return el("div", { class: "result document" },
    el("dl", { class: "facts" },
      ...field("chunks", "Chunks", result.chunks === undefined ? null : String(result.chunks)),
      ...field("title", "Title", result.title || "(untitled)"),
      ...field("page_count", "Pages", result.page_count),
      ...field("kind", "Kind", result.kind),
      ...field("embedding", "Embeddings", result.model ? `${result.model}, ${result.dimension} dimensions` : null),
      ...field("document_id", "Document id", el("code", { text: result.document_id || "" }))),
    result.preview ? el("figure", {},
      el("figcaption", { class: "muted", text: "Beginning of the text" }),
      el("blockquote", { class: "prose", text: result.preview })) : null);
}

// The score's signals (orchestrator/domain/scoring.py), each 0–1 with the weight it was given.
function breakdownTable(breakdown) {
  const signals = breakdown?.signals;
  if (!signals) return null;
  const weights = breakdown.weights || {};
  return el("table", { class: "breakdown", "aria-label": "score breakdown", "data-field": "breakdown" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "signal" }), el("th", { scope: "col", text: "value" }),
      el("th", { scope: "col", text: "weight" }))),
    el("tbody", {}, ...Object.entries(signals).map(([name, value]) => el("tr", {},
      el("th", { scope: "row", text: name }),
      el("td", { class: "num" }, value === null ? "not measured"
        : el("meter", { min: "0", max: "1", value: String(value), "aria-label": `${name} ${value}` }), ` ${value ?? ""}`),
      el("td", { class: "num", text: weights[name] === undefined ? "—" : String(weights[name]) })))));
}

function interviewResult(result) {
  const evaluation = result.evaluation || {};
  const score = evaluation.score;
  const chunks = evaluation.relevant_chunks || [];
  return el("div", { class: "result interview" },
    el("section", { "aria-label": "follow-up question" },
      el("h4", { text: "Follow-up question" }),
      el("blockquote", { class: "question", "data-field": "follow_up_question", text: result.follow_up_question || "—" }),
      el("p", { class: "muted", text: result.follow_up_source === "template"
        ? "from a template (the model gave no question)" : "written by the LLM" })),
    el("section", { "aria-label": "evaluation" },
      el("h4", { text: "Evaluation" }),
      el("dl", { class: "facts" },
        ...field("score", "Score", score === null || score === undefined ? "no score given"
          : el("span", {}, el("strong", { text: `${score}/10 ` }),
            el("meter", { min: "0", max: "10", low: "4", high: "7", optimum: "10", value: String(score), "aria-label": "score" }))),
        ...field("notes", "Why", (evaluation.notes || []).length
          ? el("ul", { class: "notes" }, ...evaluation.notes.map((n) => el("li", { text: n }))) : null),
        ...field("similarity_max", "Closest to the resume", evaluation.similarity_max?.toFixed?.(3)),
        ...field("similarity_mean", "Mean similarity to the resume", evaluation.similarity_mean?.toFixed?.(3)),
        ...field("feedback", "Feedback", el("span", {},
          el("span", { class: "prose", text: evaluation.feedback || "—" }),
          evaluation.feedback_source === "signals"
            ? el("span", { class: "muted", text: " (from the measured signals: the model wrote no feedback)" }) : null))),
      breakdownTable(evaluation.breakdown),
      chunks.length ? el("details", {},
        el("summary", { text: `Resume passages it was compared with (${chunks.length})` }),
        list(chunks, (c) => el("li", {}, el("span", { class: "muted", text: `similarity ${c.similarity} · ` }), c.text)))
        : null),
    el("section", { "aria-label": "transcript" },
      el("h4", { text: "Transcript" }),
      el("p", { class: "prose", "data-field": "transcript", text: result.transcript || "—" }),
      el("p", { class: "muted", text: `${result.language || "?"} · ${seconds(result.duration_s)} of audio`
        + (result.question ? ` · asked: ${result.question}` : "") }),
      (result.segments || []).length ? el("table", { class: "segments", "aria-label": "transcript segments" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "from" }), el("th", { scope: "col", text: "to" }),
          el("th", { scope: "col", text: "text" }))),
        el("tbody", {}, ...result.segments.map((s) => el("tr", {},
          el("td", { class: "num", text: `${s.start.toFixed(1)} s` }),
          el("td", { class: "num", text: `${s.end.toFixed(1)} s` }),
          el("td", { text: s.text }))))) : null));
}

// "… as shown [1][3]." with each [n] a button that brings its citation into view.
function withCitationMarks(answer, cited) {
  const parts = [];
  let last = 0;
  for (const match of answer.matchAll(/\[(\d+)\]/g)) {
    const n = Number(match[1]);
    parts.push(answer.slice(last, match.index));
    parts.push(cited.has(n)
      ? el("button", {
        type: "button", class: "cite", text: `[${n}]`, "aria-label": `citation ${n}`,
        onclick: () => { const item = document.getElementById(`cite-${n}`); item.scrollIntoView({ block: "nearest" }); item.focus(); },
      })
      : match[0]);
    last = match.index + match[0].length;
  }
  parts.push(answer.slice(last));
  return parts;
}

function answerResult(result) {
  const citations = result.citations || [];
  const known = new Set(citations.map((c) => c.n));
  return el("div", { class: "result qa" },
    el("p", { class: "muted" }, "Question: ", el("q", { text: result.question || "" })),
    el("blockquote", { class: "prose answer", "data-field": "answer" }, ...withCitationMarks(result.answer || "", known)),
    el("h4", { text: "Citations" }),
    citations.length ? el("ol", { class: "citations" }, ...citations.map((c) => el("li", {
      id: `cite-${c.n}`, value: String(c.n), tabindex: "-1", "data-cited": String(Boolean(c.cited)),
    },
    el("strong", { text: c.title || c.filename || c.document_id }),
    el("span", { class: "muted", text: ` ${c.filename && c.title ? `(${c.filename}) ` : ""}page ${c.page}, passage ${c.chunk_index}`
      + (c.score !== null && c.score !== undefined ? `, similarity ${Number(c.score).toFixed(3)}` : "")
      + (c.cited ? "" : " — not cited, the answer rests on it") }))))
      : el("p", { class: "muted", text: "no passages: nothing stored matched the question" }),
    el("p", { class: "muted", text: [result.model, result.completion_tokens ? `${result.completion_tokens} tokens` : ""].filter(Boolean).join(" · ") }));
}

function aiResult(result) {
  const output = result.output || {};
  const stats = output.input_stats || {};
  return el("div", { class: "result ai" },
    el("dl", { class: "facts" },
      ...field("task", "Task", output.task),
      ...field("answer", "Output", el("span", { class: "prose", text: output.answer || "—" })),
      ...field("input_stats", "Input", stats.words !== undefined ? `${stats.words} words, ${stats.chars} characters, ${stats.lines} lines` : null),
      ...field("embedding", "Embedding", output.embedding ? `${output.embedding.model} (${output.embedding.dimension} dimensions)` : null),
      ...field("llm", "LLM", output.llm ? `${output.llm.model}, ${output.llm.completion_tokens} tokens` : null)),
    (output.context || []).length ? el("details", {},
      el("summary", { text: `Stored passages it drew on (${output.context.length})` }),
      list(output.context, (c) => el("li", { text: `${c.document_id}, page ${c.page}, similarity ${Number(c.score).toFixed(3)}` })))
      : null);
}

function flatResult(result) {
  const scalars = Object.entries(result).filter(([, v]) => v === null || typeof v !== "object");
  if (!scalars.length) return prettyJson(result);
  return el("dl", { class: "facts" }, ...scalars.flatMap(([k, v]) => field(k, k.replace(/_/g, " "), String(v))));
}

const RENDERERS = {
  resume: documentResult,
  document: documentResult,
  interview_answer: interviewResult,
  document_qa: answerResult,
  ai_pipeline: aiResult,
  llm_preload: flatResult,
};

export function renderResult(pipeline, result) {
  let body;
  try {
    const render = RENDERERS[pipeline];
    body = render && result && typeof result === "object" ? render(result) : prettyJson(result);
  } catch (err) {
    console.warn("result", pipeline, err);
    body = prettyJson(result);
  }
  return [body, el("details", { class: "raw" }, el("summary", { text: "Raw JSON" }), prettyJson(result))];
}
