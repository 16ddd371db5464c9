// The Live view: every observability event of this session's runs, the planner's steps
// (thought, tool, arguments, observation, errors, latency, tokens and cost), the graph with
// per-node counts, queue depths and errors. Events are drawn in animation frames, a batch at
// a time; each drawn event's latency (emitted at the server to drawn here) is recorded in
// window.__pg.latencies, which the browser tests read.
import { api, el, short, streamUrl } from "./api.js";

const steps = new Map();          // `${trace}:${step}` -> row state
const stepOfSpan = new Map();     // span id -> step key
const nodeStats = new Map();      // node id -> {count, errors, queue}
let pending = [];
let scheduled = false;
let source = null;
let eventCount = 0;
const MAX_EVENT_ROWS = 400;

window.__pg = window.__pg || { latencies: [], drawn: 0 };

export function startLive(sessionId) {
  if (source) source.close();
  source = new EventSource(streamUrl("/api/live", { session_id: sessionId }));
  source.onmessage = (message) => {
    pending.push(JSON.parse(message.data));
    if (!scheduled) { scheduled = true; requestAnimationFrame(draw); }
  };
  source.addEventListener("end", () => source.close());
}

function draw() {
  scheduled = false;
  const batch = pending;
  pending = [];
  const list = document.getElementById("live-events");
  const fragment = document.createDocumentFragment();
  for (const event of batch) {
    fragment.append(el("li", { "data-seq": event.seq, class: `ev-${event.family}` },
      `${new Date(event.ts * 1000).toISOString().slice(11, 23)} ${event.family}.${event.name}`,
      event.duration_ms != null ? ` ${event.duration_ms.toFixed(1)} ms` : "",
      event.attributes?.error ? ` error: ${event.attributes.error}` : ""));
    apply(event);
  }
  list.append(fragment);
  while (list.childElementCount > MAX_EVENT_ROWS) list.firstElementChild.remove();
  eventCount += batch.length;
  document.getElementById("live-count").textContent = String(eventCount);
  renderSteps();
  renderCounts();
  renderBudgets();
  const now = Date.now();
  for (const event of batch) window.__pg.latencies.push(now - event.emitted_at * 1000);
  window.__pg.drawn += batch.length;
}

function stepRow(trace, step) {
  const key = `${trace}:${step}`;
  if (!steps.has(key)) {
    steps.set(key, { trace, step, thought: "", tool: "", args: "", observation: "", errors: [], ms: null, tokens: 0, cost: 0, calls: new Map(), dirty: true });
  }
  return steps.get(key);
}

// -- budgets left ----------------------------------------------------------------------------
// The planner's limits (from /api/info) against what the latest run has used so far: steps,
// tool calls, tokens and cost from its events, the deadline from its start.
let budgets = null;
let usage = null;
export function setBudgets(limits) { budgets = limits; }

function runUsage(event) {
  if (!usage || usage.trace !== event.trace_id) usage = { trace: event.trace_id, steps: new Set(), hops: 0, tokens: 0, cost: 0, started: event.ts };
  usage.started = Math.min(usage.started, event.ts);
  return usage;
}

function left(limit, used, digits = 0) {
  if (limit == null) return "no limit";
  const rest = Math.max(limit - used, 0);
  return `${digits ? rest.toFixed(digits) : rest} of ${limit}`;
}

function renderBudgets() {
  if (!budgets || !usage) return;
  const deadline = budgets.deadline_s == null ? "no limit"
    : `${Math.max(budgets.deadline_s - (Date.now() / 1000 - usage.started), 0).toFixed(1)} s of ${budgets.deadline_s} s`;
  document.getElementById("live-budgets").textContent =
    `left: steps ${left(budgets.max_iters, usage.steps.size)} · tool calls ${left(budgets.hop_budget, usage.hops)}` +
    ` · tokens ${left(budgets.max_tokens, usage.tokens)} · cost $${left(budgets.cost_budget_usd, usage.cost, 4)} · deadline ${deadline}`;
}

// A parallel plan's calls are `call_<seq>_parallel_<i>`, its join `call_<seq>_join`.
function callRole(id) { return id.includes("_parallel_") ? "branch" : id.endsWith("_join") ? "join" : "call"; }

function apply(event) {
  const a = event.attributes || {};
  if (event.family === "planner" && event.trace_id) runUsage(event);
  if (event.family === "planner" && Number.isInteger(a.step)) {
    const row = stepRow(event.trace_id, a.step);
    if (event.span_id && event.name !== "run" && !stepOfSpan.has(event.span_id)) stepOfSpan.set(event.span_id, `${event.trace_id}:${row.step}`);
    if (event.trace_id) runUsage(event).steps.add(row.step);
    if (a.thought) row.thought = a.thought;
    if (a.tool_name || a.tool) row.tool = a.tool_name || a.tool;
    if (event.name === "tool_call_start" && a.args_json) row.args = a.args_json;
    if (event.name === "tool_call_result" && a.result_json) row.observation = a.result_json;
    if (a.tool_call_id && (event.name === "tool_call_start" || event.name === "tool_call_result")) {
      if (!row.calls.has(a.tool_call_id)) row.calls.set(a.tool_call_id, { role: callRole(a.tool_call_id), tool: a.tool_name, args: "", observation: "" });
      const call = row.calls.get(a.tool_call_id);
      if (event.name === "tool_call_start") call.args = a.args_json || "";
      else call.observation = a.result_json || "";
    }
    if (a.error) row.errors.push(a.error);
    if (event.name === "step_complete" && event.measurements?.latency_ms != null) row.ms = event.measurements.latency_ms;
    if (event.name.startsWith("repair") || event.name === "planner_repair_attempt") row.errors.push(`repair: ${event.name}`);
    row.dirty = true;
  }
  if (event.family === "llm") {
    const key = stepOfSpan.get(event.parent_span_id);
    if (key && steps.has(key)) {
      const row = steps.get(key);
      const m = event.measurements || {};
      row.tokens += (m.input_tokens || 0) + (m.output_tokens || 0);
      row.cost += m.cost_usd || 0;
      row.dirty = true;
    }
    if (event.trace_id && usage && usage.trace === event.trace_id) {
      const m = event.measurements || {};
      usage.tokens += (m.input_tokens || 0) + (m.output_tokens || 0);
      usage.cost += m.cost_usd || 0;
    }
  }
  if (event.family === "tool" && event.name === "call" && usage && usage.trace === event.trace_id) usage.hops += 1;
  if (event.family === "planner" && event.name === "run" && event.measurements) {
    const m = event.measurements;
    document.getElementById("live-usage").textContent =
      `used: ${m.hops ?? 0} tool calls, ${m.llm_calls ?? 0} LLM calls, ${m.tokens ?? 0} tokens, $${(m.cost_usd ?? 0).toFixed(4)}`;
  }
  if (event.family === "planner" && event.name === "budget_exhausted") {
    document.getElementById("live-usage").textContent += ` (budget spent: ${a.reason || a.finish_reason || "?"})`;
  }
  // graph counts: flow nodes by node_name, planner tools by tool name
  if (event.family === "flow" && a.node_name) {
    const stats = nodeStat(a.node_name);
    if (event.name === "node_success") stats.count += 1;
    if (event.name === "node_error" || event.name === "node_failed" || event.name === "node_timeout") stats.errors += 1;
    const queue = event.measurements?.queue_depth_in;
    if (queue !== undefined) stats.queue = queue;
  }
  if (event.family === "tool" && event.name === "call") {
    const stats = nodeStat(a.tool || a.tool_name || "tool");
    stats.count += 1;
    if (a.error) stats.errors += 1;
    nodeStat("planner").count = Math.max(nodeStat("planner").count, 1);
  }
}

function nodeStat(id) {
  if (!nodeStats.has(id)) nodeStats.set(id, { count: 0, errors: 0, queue: 0 });
  return nodeStats.get(id);
}

function renderSteps() {
  const body = document.querySelector("#live-steps tbody");
  for (const row of steps.values()) {
    if (!row.dirty) continue;
    row.dirty = false;
    const id = `step-${row.trace}-${row.step}`;
    let tr = document.getElementById(id);
    if (!tr) {
      tr = el("tr", { id, class: "step", "data-step": row.step, "data-trace": row.trace });
      body.append(tr);
    }
    const parallel = [...row.calls.values()].some((call) => call.role !== "call");
    // A parallel plan: its branches side by side, then the join that combined them.
    const toolCell = parallel
      ? el("td", { class: "tool parallel" }, el("ul", { class: "branches" },
        ...[...row.calls.values()].map((call) => el("li", { class: call.role, title: short(call.args) },
          call.role === "join" ? "⤷ join: " : "∥ ", call.tool || "?", call.observation ? ` → ${short(call.observation, 60)}` : ""))))
      : el("td", { class: "tool" }, row.tool);
    tr.replaceChildren(
      el("td", {}, row.step + 1),
      el("td", {}, short(row.thought)),
      toolCell,
      el("td", {}, short(row.args)),
      el("td", { class: "observation" }, short(row.observation)),
      el("td", { class: "err" }, row.errors.join("; ")),
      el("td", { class: "ms" }, row.ms != null ? row.ms.toFixed(1) : ""),
      el("td", { class: "tokens" }, String(row.tokens)),
      el("td", { class: "cost" }, `$${row.cost.toFixed(4)}`),
    );
  }
}

// -- the graph ---------------------------------------------------------------------------
let graph = null;

export async function loadGraph() {
  graph = await api("/api/graph");
  const svg = document.getElementById("live-graph");
  const depth = new Map();
  const first = graph.kind === "flow" ? "OpenSea" : "planner";
  depth.set(first, 0);
  const queue = [first];
  while (queue.length) {
    const id = queue.shift();
    for (const edge of graph.edges) {
      if (edge.source === id && !depth.has(edge.target)) { depth.set(edge.target, depth.get(id) + 1); queue.push(edge.target); }
    }
  }
  for (const node of graph.nodes) if (!depth.has(node.id)) depth.set(node.id, 1);
  const layers = new Map();
  for (const node of graph.nodes) {
    const d = depth.get(node.id);
    if (!layers.has(d)) layers.set(d, []);
    layers.get(d).push(node);
  }
  const W = 150, H = 44, GX = 40, GY = 34;
  const pos = new Map();
  let width = 0;
  for (const [d, nodes] of layers) {
    nodes.forEach((node, i) => pos.set(node.id, { x: 10 + i * (W + GX), y: 10 + d * (H + GY) }));
    width = Math.max(width, nodes.length * (W + GX));
  }
  const height = 20 + layers.size * (H + GY);
  svg.setAttribute("viewBox", `0 0 ${Math.max(width, 200)} ${height}`);
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  svg.replaceChildren();
  const defs = make("defs", {});
  const marker = make("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto" });
  marker.append(make("path", { d: "M0,0 L10,5 L0,10 z", fill: "#94a3b8" }));
  defs.append(marker);
  svg.append(defs);
  for (const edge of graph.edges) {
    const a = pos.get(edge.source), b = pos.get(edge.target);
    if (!a || !b) continue;
    svg.append(make("line", { x1: a.x + W / 2, y1: a.y + H, x2: b.x + W / 2, y2: b.y }));
  }
  for (const node of graph.nodes) {
    const p = pos.get(node.id);
    const g = make("g", { "data-node": node.id, class: "graph-node" });
    g.append(make("rect", { x: p.x, y: p.y, width: W, height: H, class: node.kind }));
    g.append(make("text", { x: p.x + 8, y: p.y + 17 }, node.label));
    g.append(make("text", { x: p.x + 8, y: p.y + 34, class: "stats" }, ""));
    svg.append(g);
  }
  renderCounts();
}

function renderCounts() {
  if (!graph) return;
  for (const [id, stats] of nodeStats) {
    const g = document.querySelector(`#live-graph g[data-node="${CSS.escape(id)}"]`);
    if (!g) continue;
    g.querySelector(".stats").textContent = `n=${stats.count} q=${stats.queue} err=${stats.errors}`;
    g.querySelector("rect").classList.toggle("active", stats.count > 0);
    g.querySelector("rect").classList.toggle("failed", stats.errors > 0);
  }
}
