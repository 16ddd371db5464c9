// A task's progress as people read it. Tasks report whatever JSON they like; the common
// shapes are a label with a count (`{"label": "step_start", "current": 3, "details": ...}`,
// what a planner's turn reports) and a count out of a total (`{"done": 3, "total": 10}`).
// The cell shows the label, "3/10" with a bar when the total is known, or "step 3"; the
// whole value stays in the tooltip.
import { el, short } from "./api.js";

const COUNT_KEYS = ["current", "done", "completed", "count", "step"];
const TOTAL_KEYS = ["total", "of", "max"];
const LABEL_KEYS = ["label", "stage", "message", "status"];

function first(value, keys, type) {
  for (const key of keys) if (typeof value[key] === type) return value[key];
  return null;
}

// The planner's step moments read "step 3" (started) and "step 3 done".
function labelText(label, count) {
  if (label === "step_start" || label === "step") return count === null ? "step" : `step ${count}`;
  if (label === "step_complete") return count === null ? "step done" : `step ${count} done`;
  return label.replaceAll("_", " ");
}

export function progressParts(progress) {
  if (progress === null || progress === undefined || progress === "") return { text: "" };
  if (typeof progress !== "object" || Array.isArray(progress)) return { text: short(progress, 80) };
  const count = first(progress, COUNT_KEYS, "number");
  const total = first(progress, TOTAL_KEYS, "number");
  const label = first(progress, LABEL_KEYS, "string");
  if (count === null && label === null) {
    // Unknown shape: its plain fields as "key: value", nested ones left to the tooltip.
    const plain = Object.entries(progress).filter(([, v]) => v === null || typeof v !== "object");
    return { text: plain.length ? plain.map(([k, v]) => `${k}: ${v}`).join(", ") : short(progress, 80) };
  }
  if (total !== null && total > 0 && count !== null) {
    const text = `${label === null ? "" : `${labelText(label, null)} `}${count}/${total}`;
    return { text, value: Math.min(count, total), max: total };
  }
  if (label !== null) {
    const stepLike = label.startsWith("step");
    return { text: stepLike || count === null ? labelText(label, count) : `${labelText(label, count)} ${count}` };
  }
  return { text: `${count}` };
}

export function progressCell(progress) {
  const parts = progressParts(progress);
  const cell = el("td", { class: "progress", title: progress == null ? "" : JSON.stringify(progress) }, parts.text);
  if (parts.max !== undefined) {
    cell.append(el("progress", { value: String(parts.value), max: String(parts.max) }));
  }
  return cell;
}
