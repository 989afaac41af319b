// The "Held prompts" panel: what the guard is holding, how long each has waited, its estimated cost and
// priority class, and, for a user allowed to change the guard's config, the operator's pause/resume.
import { bytes, count, duration, percent } from "./format.js";

function cell(doc, tag, text, className) {
  const node = doc.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

// The operator's hold (POST /gpu_guard/pause | resume): a button, and who paused and when.
function operatorControl(doc, status, control, onToggle) {
  const paused = status.operator_pause;
  const box = doc.createElement("div");
  box.className = "vg-operator";
  const button = cell(doc, "button", paused ? "Resume prompts" : "Pause prompts", "vg-operator-toggle");
  button.type = "button";
  button.disabled = Boolean(control.busy);
  button.dataset.action = paused ? "resume" : "pause";
  button.title = paused
    ? "End the operator's pause; prompts run again unless GPU memory pressure holds them"
    : "Hold every queued and new prompt (as a memory pause does) until resumed, e.g. for maintenance";
  button.addEventListener("click", () => onToggle?.(!paused));
  box.append(button);
  if (paused) {
    const when = new Date(paused.at * 1000).toLocaleTimeString();
    const why = paused.reason ? `: ${paused.reason}` : "";
    box.append(cell(doc, "span", `Paused by ${paused.by} at ${when}${why}`, "vg-operator-note"));
  }
  return box;
}

// view: { status, held, elapsedS (seconds since the held list arrived), isMine(clientId),
//         problem (why there is no status, or null),
//         control: { canChange (this user may change the guard's config), busy } or null,
//         onOperatorToggle(pause: boolean) }
// "pending": the server has not made the estimate yet (it does so outside its lock, a moment later)
function estimateText(entry) {
  if (entry.estimated_bytes != null) return bytes(entry.estimated_bytes);
  return entry.need_source === "pending" ? "estimating" : "unknown";
}

export function renderHeldPanel(container, view) {
  const doc = container.ownerDocument;
  const { status, held = [], elapsedS = 0, isMine, problem, control, onOperatorToggle } = view;
  const root = doc.createElement("div");
  root.className = "vram-guard-panel";

  const summary = doc.createElement("p");
  summary.className = "vg-panel-summary";
  if (!status) {
    summary.textContent = problem ? `VRAM guard unavailable: ${problem}` : "Waiting for the VRAM guard's status…";
  } else {
    const t = status.thresholds ?? {};
    const used = status.reading ? `GPU memory pressure ${percent(status.reading.ratio, 1)} (GPU used ${percent(status.reading.device_ratio, 1)})` : "no memory reading";
    summary.textContent =
      `Guard ${status.state}: ${used}; pauses at ${percent(t.pause_at)}, resumes below ${percent(t.resume_at)}. ` +
      `${count(held.length, "prompt")} held.`;
  }
  root.append(summary);
  if (status && control?.canChange) root.append(operatorControl(doc, status, control, onOperatorToggle));

  if (held.length === 0) {
    root.append(cell(doc, "p", "No prompts are held.", "vg-panel-empty"));
  } else {
    const table = doc.createElement("table");
    table.className = "vg-held-table";
    const head = doc.createElement("tr");
    for (const title of ["#", "Prompt", "From", "Waiting", "Estimated memory", "Class"]) head.append(cell(doc, "th", title));
    table.append(head);
    for (const entry of held) {
      const row = doc.createElement("tr");
      row.dataset.promptId = entry.prompt_id;
      const mine = isMine?.(entry.client_id);
      row.append(
        cell(doc, "td", String(entry.position)),
        cell(doc, "td", String(entry.prompt_id).slice(0, 8), "vg-mono"),
        cell(doc, "td", mine ? "this browser" : "another client"),
        cell(doc, "td", duration((entry.waited_s ?? 0) + elapsedS)),
        cell(doc, "td", estimateText(entry)),
        cell(doc, "td", entry.priority_class ?? "normal"),
      );
      if (mine) row.classList.add("vg-mine");
      table.append(row);
    }
    root.append(table);
  }
  container.replaceChildren(root);
}
