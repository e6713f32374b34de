// The task durations chart: one dot per finished task, x = when it finished
// (local time), y = its runtime in seconds; both axes with ticks and titles.

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 640, HEIGHT = 250;
const MARGIN = { left: 58, right: 14, top: 12, bottom: 46 };
const COLORS = { SUCCESS: "#2e7d32", FAILURE: "#c62828" };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Round tick steps (1, 2, 2.5, 5 × 10^n) from 0 to at least `max`.
export function niceTicks(max, count = 5) {
  const raw = Math.max(max, 1e-3) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Number(v.toFixed(6)));
  if (ticks.length < 2) ticks.push(step);
  return ticks;
}

function tickLabel(value, step) {
  let decimals = 0; // as many as the step has: 0.25 → 2, 0.5 → 1, 2 → 0
  while (decimals < 4 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-9) decimals += 1;
  return value.toFixed(decimals);
}

function timeTicks(t0, t1, count = 6) {
  const span = t1 - t0;
  const steps = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000);
  const step = steps.find((s) => span / s <= count) || steps[steps.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { ticks, withSeconds: step < 60_000 };
}

export function drawDurations(target, legend, tasks) {
  const done = tasks.filter((t) => t.runtime !== null && t.runtime !== undefined && t.completed_at);
  target.replaceChildren();
  const plotLeft = MARGIN.left, plotRight = WIDTH - MARGIN.right;
  const plotTop = MARGIN.top, plotBottom = HEIGHT - MARGIN.bottom;

  const times = done.map((t) => Date.parse(t.completed_at));
  const now = Date.now();
  let t0 = done.length ? Math.min(...times) : now - 3600_000;
  let t1 = done.length ? Math.max(...times) : now;
  if (t1 - t0 < 60_000) { const mid = (t0 + t1) / 2; t0 = mid - 30_000; t1 = mid + 30_000; }
  const maxRuntime = Math.max(0, ...done.map((t) => t.runtime));
  const yTicks = niceTicks(maxRuntime || 1);
  const yMax = yTicks[yTicks.length - 1];
  const x = (t) => plotLeft + (plotRight - plotLeft) * (t - t0) / (t1 - t0);
  const y = (v) => plotBottom - (plotBottom - plotTop) * v / yMax;

  const grid = svg("g", { class: "grid" });
  const axes = svg("g", { class: "axis" });
  const step = yTicks[1] - yTicks[0];
  for (const v of yTicks) {
    grid.append(svg("line", { x1: plotLeft, x2: plotRight, y1: y(v), y2: y(v) }));
    axes.append(svg("text", { x: plotLeft - 6, y: y(v) + 4, "text-anchor": "end" }, tickLabel(v, step)));
  }
  const { ticks, withSeconds } = timeTicks(t0, t1);
  const clock = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", ...(withSeconds ? { second: "2-digit" } : {}), hourCycle: "h23",
  });
  for (const t of ticks) {
    axes.append(svg("line", { x1: x(t), x2: x(t), y1: plotBottom, y2: plotBottom + 4 }));
    axes.append(svg("text", { x: x(t), y: plotBottom + 17, "text-anchor": "middle" }, clock.format(new Date(t))));
  }
  axes.append(svg("line", { x1: plotLeft, x2: plotLeft, y1: plotTop, y2: plotBottom }));
  axes.append(svg("line", { x1: plotLeft, x2: plotRight, y1: plotBottom, y2: plotBottom }));
  axes.append(svg("text", {
    class: "axis-title", x: 14, y: (plotTop + plotBottom) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(plotTop + plotBottom) / 2})`,
  }, "runtime (seconds)"));
  axes.append(svg("text", {
    class: "axis-title", x: (plotLeft + plotRight) / 2, y: HEIGHT - 6, "text-anchor": "middle",
  }, "finished at (local time)"));
  target.append(grid, axes);

  const dots = svg("g", { class: "dots" });
  done.forEach((t, i) => {
    const dot = svg("circle", {
      cx: x(times[i]).toFixed(1), cy: y(t.runtime).toFixed(1), r: 3.5,
      fill: COLORS[t.status] || "#616161", "data-status": t.status,
    });
    dot.append(svg("title", {}, `${t.task_name}: ${t.runtime.toFixed(2)} s, ${t.status}`));
    dots.append(dot);
  });
  target.append(dots);

  if (!done.length) {
    target.append(svg("text", {
      x: (plotLeft + plotRight) / 2, y: (plotTop + plotBottom) / 2, "text-anchor": "middle", class: "empty",
    }, "no finished tasks in the last hour"));
    legend.textContent = "no finished tasks in the last hour";
    return;
  }
  const ok = done.filter((t) => t.status === "SUCCESS").length;
  legend.replaceChildren(
    `${done.length} tasks, ${Math.round(100 * ok / done.length)}% succeeded, slowest ${maxRuntime.toFixed(2)} s · `,
    Object.assign(document.createElement("span"), { className: "key ok", textContent: "● succeeded" }), " ",
    Object.assign(document.createElement("span"), { className: "key failed", textContent: "● failed" }),
  );
}
