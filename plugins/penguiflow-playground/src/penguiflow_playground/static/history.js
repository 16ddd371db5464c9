// The History view: traces recorded in the state store, searched by tenant, session, time
// and text; one opened as a timeline (spans with durations, pauses compressed) and as a step
// list; exported as JSON.
import { api, el, short, token } from "./api.js";

export async function searchHistory(form) {
  const query = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (!value) continue;
    query.set(key, key === "since" || key === "until" ? String(new Date(value).getTime() / 1000) : value);
  }
  const data = await api(`/api/history?${query}`);
  const body = document.querySelector("#history-list tbody");
  body.replaceChildren(...data.traces.map((trace) => el("tr", {
    class: "trace-row", "data-trace-id": trace.trace_id, onclick: () => openTrace(trace.trace_id),
  },
  el("td", {}, new Date(trace.started_at * 1000).toLocaleString()),
  el("td", {}, trace.session_id ?? ""),
  el("td", {}, trace.kind),
  el("td", {}, trace.title),
  el("td", { class: `status-${trace.status}` }, trace.status),
  el("td", {}, el("code", {}, trace.trace_id.slice(0, 12))))));
  return data.traces.length;
}

export async function openTrace(traceId) {
  const data = await api(`/api/history/${encodeURIComponent(traceId)}`);
  document.getElementById("trace-view").hidden = false;
  document.getElementById("trace-id").textContent = traceId;
  const exportLink = document.getElementById("trace-export");
  exportLink.href = `/api/history/${encodeURIComponent(traceId)}/export${token ? `?access_token=${encodeURIComponent(token)}` : ""}`;
  exportLink.setAttribute("download", `trace-${traceId}.json`);
  drawTimeline(document.getElementById("trace-timeline"), data.timeline, data.gaps || []);
  document.querySelector("#trace-steps tbody").replaceChildren(...data.steps.map((step) => el("tr", { class: "trace-step" },
    el("td", {}, step.step + 1), el("td", {}, short(step.thought)), el("td", {}, step.tool ?? ""),
    el("td", {}, short(step.args)), el("td", {}, short(step.observation)),
    el("td", { class: "err" }, step.errors.join("; ")), el("td", {}, step.tokens || ""))));
}

// -- the timeline -----------------------------------------------------------------------------
// A gap (a pause for approval, a long idle wait) is drawn as a hatched band of at most this
// share of the width: a ten-minute approval would otherwise squeeze the work around it into
// a few pixels at the edges.
const GAP_SHARE = 0.05;
// The thinnest bar, in percent of the width (an LLM call of 0.1 ms stays visible).
const MIN_BAR = 0.4;

export function formatMs(ms) {
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms - minutes * 60000) / 1000)} s`;
}

// The position (0 to 1) of each offset of the trace, from its first event to its last end,
// every gap squeezed to its band and the time outside the gaps scaled linearly.
function scale(timeline, gaps) {
  const end = Math.max(1e-9, ...timeline.map((s) => s.start_ms + s.duration_ms), ...gaps.map((g) => g.end_ms));
  const bands = gaps.map((g) => ({ ...g, share: Math.min(GAP_SHARE, (g.end_ms - g.start_ms) / end) }));
  const gapTime = bands.reduce((sum, g) => sum + (g.end_ms - g.start_ms), 0);
  const gapShare = bands.reduce((sum, g) => sum + g.share, 0);
  const active = Math.max(1e-9, end - gapTime);
  const x = (t) => {
    let pos = 0;
    let last = 0;
    for (const g of bands) {
      if (t <= g.start_ms) break;
      pos += ((g.start_ms - last) / active) * (1 - gapShare);
      if (t < g.end_ms) return pos + ((t - g.start_ms) / (g.end_ms - g.start_ms)) * g.share;
      pos += g.share;
      last = g.end_ms;
    }
    return Math.min(1, Math.max(0, pos + ((t - last) / active) * (1 - gapShare)));
  };
  return { x, end, bands };
}

// A label kept inside the timeline: over the bar from its start, running right, when the
// bar starts in the left half; else just before the bar, running left. Past the room it
// has, it is cut with an ellipsis (the full text is the row's tooltip).
function placed(node, left) {
  if (left <= 50) Object.assign(node.style, { left: `${left.toFixed(2)}%`, maxWidth: `${(100 - left).toFixed(2)}%` });
  else Object.assign(node.style, { right: `${(100 - left).toFixed(2)}%`, maxWidth: `${left.toFixed(2)}%` });
  return node;
}

function drawTimeline(box, timeline, gaps) {
  const { x, end, bands } = scale(timeline, gaps);
  const rows = timeline.map((span) => {
    const text = `${span.kind} ${span.label} · ${formatMs(span.duration_ms)}`;
    const width = Math.min(100, Math.max(MIN_BAR, 100 * (x(span.start_ms + span.duration_ms) - x(span.start_ms))));
    const left = Math.min(100 * x(span.start_ms), 100 - width);
    const fill = el("span", { class: span.error ? "fill error" : "fill" });
    Object.assign(fill.style, { left: `${left.toFixed(2)}%`, width: `${width.toFixed(2)}%` });
    return el("div", { class: "bar", title: span.error ? `${text}: ${span.error}` : text },
      fill, placed(el("span", { class: "label" }, text), left));
  });
  // Each gap: a hatched band across the rows, and its length above them.
  const marks = bands.flatMap((gap) => {
    const what = gap.reason === "paused" ? "paused" : "idle";
    const squeezed = gap.share < (gap.end_ms - gap.start_ms) / end;
    const left = 100 * x(gap.start_ms);
    const width = 100 * gap.share;
    const band = el("div", { class: `gap gap-${what}`, title: `${what} for ${formatMs(gap.duration_ms)}${squeezed ? " (drawn compressed)" : ""}` });
    Object.assign(band.style, { left: `${left.toFixed(2)}%`, width: `${width.toFixed(2)}%` });
    return [band, placed(el("span", { class: "gap-label" }, `${what} ${formatMs(gap.duration_ms)}`), left)];
  });
  box.replaceChildren(...marks, ...rows);
  const paused = bands.filter((g) => g.reason === "paused").reduce((sum, g) => sum + g.duration_ms, 0);
  document.getElementById("trace-scale").textContent = `${formatMs(end)} in all`
    + (paused ? `, of which ${formatMs(paused)} paused for a decision` : "")
    + (bands.length ? "; hatched bands are gaps with nothing running, drawn compressed" : "");
}
