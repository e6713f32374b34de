// Small DOM and formatting helpers shared by the views.

export const $ = (selector, root = document) => root.querySelector(selector);

// el("td", {class: "num", text: "1.2 s", title: "…"}, child, …): attributes set as given
// (false/null/undefined ones left out, true as an empty attribute), children appended
// (null/undefined/false skipped, strings as text).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child);
  }
  return node;
}

export function badge(state, text = state) {
  return el("span", { class: "badge", "data-state": state || "", text: text || "—" });
}

export function shortTask(name) {
  return (name || "").replace(/^tasks\./, "");
}

// A stage's name within its pipeline: tasks.resume_pipeline.parse_pdf → parse_pdf
// (the namespace kept where it names something else: stt.recognize).
export function stageLabel(taskName, pipeline) {
  const short = shortTask(taskName);
  const [namespace, ...rest] = short.split(".");
  return rest.length && pipeline && namespace.startsWith(pipeline.split("_")[0]) ? rest.join(".") : short;
}

// "ServiceCallError: parser: …" under a "ServiceCallError:" heading reads as "parser: …".
export function withoutType(message, type) {
  return message && type && message.startsWith(`${type}: `) ? message.slice(type.length + 2) : message;
}

export function seconds(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (value < 10) return `${value.toFixed(2)} s`;
  if (value < 120) return `${value.toFixed(1)} s`;
  const minutes = Math.floor(value / 60);
  return `${minutes} min ${Math.round(value - 60 * minutes)} s`;
}

export function percent(ratio) {
  return ratio === null || ratio === undefined ? "—" : `${(100 * ratio).toFixed(ratio >= 0.995 || ratio === 0 ? 0 : 1)}%`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

// A <time> element: the local clock time (with the date when not today), the ISO stamp as title.
export function timeCell(iso) {
  if (!iso) return el("span", { class: "muted", text: "—" });
  const date = new Date(iso);
  const today = date.toDateString() === new Date().toDateString();
  return el("time", { datetime: iso, title: date.toLocaleString(), text: (today ? timeFormat : dateTimeFormat).format(date) });
}

export function elapsed(fromIso, toIso) {
  if (!fromIso || !toIso) return null;
  return (Date.parse(toIso) - Date.parse(fromIso)) / 1000;
}

export function prettyJson(value) {
  return el("pre", { class: "json", text: JSON.stringify(value, null, 2) });
}

export function facts(pairs) {
  // [[term, description (node or text)], …] → <dl> children, empty descriptions left out
  return pairs
    .filter(([, value]) => value !== null && value !== undefined && value !== "")
    .flatMap(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]);
}
