// The History view: traces recorded in the state store, searched by tenant, session, time
// and text; one opened as a timeline (spans with durations) and as a step list; exported as
// JSON.
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
  const total = Math.max(1, ...data.timeline.map((s) => s.start_ms + s.duration_ms));
  document.getElementById("trace-timeline").replaceChildren(...data.timeline.map((span) => el("div", { class: "bar", title: `${span.kind} ${span.duration_ms.toFixed(1)} ms` },
    Object.assign(el("span", { class: span.error ? "error" : "" }, `${span.kind} ${span.label} · ${span.duration_ms.toFixed(1)} ms`), {
      style: `left:${(100 * span.start_ms / total).toFixed(2)}%;min-width:${Math.max(0.5, 100 * span.duration_ms / total).toFixed(2)}%`,
    }))));
  document.querySelector("#trace-steps tbody").replaceChildren(...data.steps.map((step) => el("tr", { class: "trace-step" },
    el("td", {}, step.step + 1), el("td", {}, short(step.thought)), el("td", {}, step.tool ?? ""),
    el("td", {}, short(step.args)), el("td", {}, short(step.observation)),
    el("td", { class: "err" }, step.errors.join("; ")), el("td", {}, step.tokens || ""))));
}
