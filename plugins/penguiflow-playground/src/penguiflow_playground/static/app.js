// The playground page: navigation, Chat (a session's foreground turn, its answer streamed,
// its pauses answered), Tasks (cancel, inject context, prioritize; groups) and Memory. Live
// and History are in their own modules.
import { api, banner, el, short, streamUrl } from "./api.js";
import { loadGraph, setBudgets, startLive } from "./live.js";
import { openTrace, searchHistory } from "./history.js";
import { progressCell } from "./progress.js";

const started = performance.now();
const params = new URLSearchParams(location.search);
const sessionInput = document.getElementById("session-id");
let sessionId = params.get("session") || "playground";
sessionInput.value = sessionId;
let currentTask = null;
let currentBubble = null;
let updates = null;
let currentPause = null;

// -- navigation ---------------------------------------------------------------------------
function show(view) {
  for (const button of document.querySelectorAll("nav button")) button.classList.toggle("active", button.dataset.view === view);
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  if (view === "tasks") refreshTasks();
  if (view === "memory") refreshMemory();
  if (view === "history") searchHistory(document.getElementById("history-search")).catch(() => {});
}
for (const button of document.querySelectorAll("nav button")) button.addEventListener("click", () => show(button.dataset.view));

// -- chat ------------------------------------------------------------------------------------
function say(role, text) {
  const bubble = el("div", { class: `msg ${role}` }, text);
  const log = document.getElementById("chat-log");
  log.append(bubble);
  log.scrollTop = log.scrollHeight;
  return bubble;
}

function answerOf(result) {
  if (result == null) return null;
  if (typeof result === "string") return result;
  for (const key of ["raw_answer", "answer", "text", "content", "message"]) if (result[key] != null) return String(result[key]);
  return JSON.stringify(result);
}

document.getElementById("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("chat-input");
  const query = input.value.trim();
  if (!query) return;
  banner(null);
  say("user", query);
  input.value = "";
  try {
    const turn = await api(`/api/sessions/${sessionId}/chat`, { method: "POST", body: { query } });
    currentTask = turn.task_id;
    currentBubble = say("assistant", "…");
    currentBubble.dataset.task = turn.task_id;
    currentBubble.dataset.streamed = "";
  } catch (err) {
    say("error", String(err.message || err));
  }
});

function onUpdate(update) {
  if (update.task_id !== currentTask || !currentBubble) {
    scheduleTasks();
    return;
  }
  const content = update.content || {};
  if (update.update_type === "RESULT" && (content.channel === "answer" || content.channel === "revision") && content.text) {
    currentBubble.dataset.streamed += content.text;
    currentBubble.textContent = currentBubble.dataset.streamed;
  } else if (update.update_type === "CHECKPOINT" && content.ref) {
    showPause({ task_id: update.task_id, ...content });
  } else if (update.update_type === "STATUS_CHANGE") {
    const status = String(content.status || "").toUpperCase();
    if (status === "RUNNING") hidePause();
    if (["COMPLETE", "FAILED", "CANCELLED"].includes(status)) finishTurn(update.task_id, status);
  } else if (update.update_type === "ERROR") {
    currentBubble.classList.add("error");
    currentBubble.textContent = `The run failed: ${content.error || JSON.stringify(content)}`;
  }
  scheduleTasks();
}

async function finishTurn(taskId, status) {
  hidePause();
  const bubble = currentBubble;
  const task = await api(`/api/sessions/${sessionId}/tasks/${taskId}`);
  if (status === "COMPLETE") {
    if (!bubble.dataset.streamed) bubble.textContent = answerOf(task.result) ?? "(no answer)";
  } else {
    bubble.classList.add("error");
    bubble.textContent = `The run ended ${status.toLowerCase()}: ${task.error || "no detail"}`;
  }
  bubble.dataset.done = status;
  currentTask = null;
}

function showPause(pause) {
  currentPause = pause;
  document.getElementById("pause-box").hidden = false;
  document.getElementById("pause-prompt").textContent = `${pause.prompt || ""} (${pause.reason || pause.kind || "pause"})`;
  document.getElementById("pause-payload").textContent = JSON.stringify(pause.payload ?? {}, null, 2);
}

function hidePause() {
  currentPause = null;
  document.getElementById("pause-box").hidden = true;
}

async function resolvePause(action) {
  if (!currentPause) return;
  const text = document.getElementById("pause-text").value;
  try {
    await api(`/api/sessions/${sessionId}/pauses/${currentPause.task_id}/${action}`, { method: "POST", body: { ref: currentPause.ref, text: text || null } });
    document.getElementById("pause-text").value = "";
    hidePause();
  } catch (err) { /* the banner says why */ }
}
document.querySelector(".pause-approve").addEventListener("click", () => resolvePause("approve"));
document.querySelector(".pause-reject").addEventListener("click", () => resolvePause("reject"));
document.querySelector(".pause-answer").addEventListener("click", () => resolvePause("answer"));

async function restorePauses() {
  const data = await api(`/api/sessions/${sessionId}/pauses`);
  if (data.pauses.length) {
    const pause = data.pauses[data.pauses.length - 1];
    currentTask = pause.task_id;
    currentBubble = say("assistant", "(waiting for your decision)");
    currentBubble.dataset.streamed = "";
    showPause(pause);
  }
}

function subscribe() {
  if (updates) updates.close();
  updates = new EventSource(streamUrl(`/api/sessions/${sessionId}/events`));
  updates.onmessage = (message) => onUpdate(JSON.parse(message.data));
  updates.onerror = () => banner(updates.readyState === EventSource.CLOSED ? "The update stream closed; reload the page." : null);
  updates.onopen = () => banner(null);
}

// -- tasks -----------------------------------------------------------------------------------
let tasksTimer = null;
function scheduleTasks() {
  if (document.getElementById("view-tasks").hidden || tasksTimer) return;
  tasksTimer = setTimeout(() => { tasksTimer = null; refreshTasks(); }, 150);
}

async function steer(taskId, eventType, payload) {
  await api(`/api/sessions/${sessionId}/steer`, { method: "POST", body: { task_id: taskId, event_type: eventType, payload } });
  refreshTasks();
}

async function refreshTasks() {
  const data = await api(`/api/sessions/${sessionId}/tasks`);
  const body = document.querySelector("#tasks-table tbody");
  body.replaceChildren(...data.tasks.map((task) => {
    const note = el("input", { class: "task-note", placeholder: "context to inject", size: "16" });
    const priority = el("input", { class: "task-priority", type: "number", value: String(task.priority), style: "width:4rem" });
    const running = !["COMPLETE", "FAILED", "CANCELLED"].includes(task.status);
    return el("tr", { "data-task-id": task.task_id, "data-status": task.status },
      el("td", { title: task.task_id }, el("code", {}, task.task_id.slice(0, 12))),
      el("td", { class: "task-type" }, task.task_type),
      el("td", { class: `status-${task.status} task-status` }, task.status),
      el("td", {}, task.priority),
      el("td", {}, short(task.description, 80)),
      progressCell(task.progress),
      el("td", {},
        running ? el("button", { class: "task-cancel", onclick: () => api(`/api/sessions/${sessionId}/tasks/${task.task_id}/cancel`, { method: "POST", body: { reason: "cancelled from the playground" } }).then(refreshTasks) }, "Cancel") : "",
        running ? note : "", running ? el("button", { class: "task-inject", onclick: () => note.value && steer(task.task_id, "INJECT_CONTEXT", { text: note.value }) }, "Inject") : "",
        running ? priority : "", running ? el("button", { class: "task-prioritize", onclick: () => steer(task.task_id, "PRIORITIZE", { priority: Number(priority.value) }) }, "Prioritize") : ""));
  }));
  const groups = await api(`/api/sessions/${sessionId}/groups`);
  document.getElementById("groups-empty").hidden = groups.groups.length > 0;
  document.getElementById("groups").replaceChildren(...groups.groups.map(groupItem));
}

// A group: its name and status, how many of its tasks ended (a bar), and its members.
function groupItem(group) {
  const tasks = group.task_ids.length;
  const ended = group.completed_task_ids.length + group.failed_task_ids.length;
  const failed = group.failed_task_ids.length ? `, ${group.failed_task_ids.length} failed` : "";
  return el("li", { class: "group", "data-group-id": group.group_id },
    el("strong", {}, group.name), ` (${group.status}) `,
    el("progress", { class: "group-progress", value: String(ended), max: String(Math.max(tasks, 1)) }),
    `${tasks} ${tasks === 1 ? "task" : "tasks"}, ${group.completed_task_ids.length} complete${failed}: `,
    ...group.task_ids.map((id, i) => el("code", { title: id }, `${i ? " " : ""}${id.slice(0, 12)}`)));
}
document.getElementById("tasks-refresh").addEventListener("click", refreshTasks);

// -- memory ----------------------------------------------------------------------------------
async function refreshMemory() {
  const data = await api(`/api/sessions/${sessionId}/memory`);
  document.getElementById("memory-version").textContent = String(data.context_version);
  document.getElementById("memory-hash").textContent = data.context_hash ?? "";
  document.getElementById("memory-context").textContent = JSON.stringify(data.llm_context, null, 2);
  document.getElementById("memory-json").textContent = data.memory ? JSON.stringify(data.memory, null, 2) : "(no memory saved for this session's key)";
}
document.getElementById("memory-refresh").addEventListener("click", refreshMemory);

// -- history ---------------------------------------------------------------------------------
document.getElementById("history-search").addEventListener("submit", (event) => {
  event.preventDefault();
  searchHistory(event.target).catch(() => {});
});

// -- start -----------------------------------------------------------------------------------
function openSession() {
  subscribe();
  startLive(sessionId);
  restorePauses().catch(() => {});
}
sessionInput.addEventListener("change", () => {
  sessionId = sessionInput.value.trim() || "playground";
  document.getElementById("chat-log").replaceChildren();
  hidePause();
  openSession();
});

async function boot() {
  try {
    const info = await api("/api/info");
    document.getElementById("agent-info").textContent = info.label;
    setBudgets(info.budgets);
    await loadGraph();
    openSession();
  } catch (err) {
    document.getElementById("agent-info").textContent = "not connected";
  }
  window.__pg.loadMs = performance.now() - started;
  window.__pg.ready = true;
  document.body.dataset.ready = "1";
  const trace = params.get("trace");
  if (trace) { show("history"); openTrace(trace).catch(() => {}); }
}
boot();
