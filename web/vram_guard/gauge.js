// The compact VRAM gauge for the top bar: the pressure the guard acts on and the device's used memory
// (what nvidia-smi says), a bar with both and the pause and resume thresholds marked, the guard's
// state, and a sparkline of the recent pressure with the pause/resume transitions.
import { count, percent } from "./format.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const SPARK_W = 96;
const SPARK_H = 24;
export const SPARK_WINDOW_S = 300; // the sparkline shows at most the last five minutes...
const SPARK_MIN_WINDOW_S = 30; // ...and at least 30 s, so a young history still reads as a line
const SPARK_MAX_POINTS = 240; // about two points per pixel is all the line can show

function el(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function svg(doc, tag, attrs) {
  const node = doc.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

const clamp01 = (v) => Math.min(1, Math.max(0, v));
const yOf = (ratio) => (SPARK_H * (1 - clamp01(ratio))).toFixed(1);

// Builds the sparkline's children for a history of [t, ratio] pairs (server time, seconds).
function drawSparkline(doc, spark, status) {
  spark.replaceChildren();
  const history = (status?.history ?? []).filter((p) => Array.isArray(p) && Number.isFinite(p[1]));
  const end = history.length ? history[history.length - 1][0] : status?.reading?.at;
  if (!Number.isFinite(end)) return;
  const span = history.length ? end - history[0][0] : 0;
  const window = Math.min(SPARK_WINDOW_S, Math.max(SPARK_MIN_WINDOW_S, span));
  const start = end - window;
  const xOf = (t) => ((SPARK_W * (t - start)) / window).toFixed(1);
  const thresholds = status.thresholds ?? {};
  for (const [name, ratio] of [["pause", thresholds.pause_at], ["resume", thresholds.resume_at]]) {
    if (!Number.isFinite(ratio)) continue;
    spark.append(svg(doc, "line", { class: `vg-spark-${name}`, x1: 0, x2: SPARK_W, y1: yOf(ratio), y2: yOf(ratio) }));
  }
  for (const tr of status.transitions ?? []) {
    if (!Number.isFinite(tr.at) || tr.at < start) continue;
    const mark = svg(doc, "line", { class: `vg-spark-mark vg-spark-to-${tr.to}`, x1: xOf(tr.at), x2: xOf(tr.at), y1: 0, y2: SPARK_H });
    mark.append(svg(doc, "title", {}));
    mark.firstChild.textContent = `${tr.from} → ${tr.to} at ${percent(tr.ratio)}`;
    spark.append(mark);
  }
  const recent = history.filter(([t]) => t >= start);
  const step = Math.ceil(recent.length / SPARK_MAX_POINTS);
  const points = recent.filter((_, i) => i % step === 0 || i === recent.length - 1).map(([t, r]) => `${xOf(t)},${yOf(r)}`);
  if (points.length) spark.append(svg(doc, "polyline", { class: "vg-spark-line", points: points.join(" ") }));
}

// The two figures and why they differ: ComfyUI evicts its own idle models and torch cache by itself
// when the next prompt needs the room, so the guard does not wait for them.
function readingLines(reading) {
  if (!reading) return ["No memory reading"];
  const lines = [`Pressure (what the guard acts on): ${percent(reading.ratio, 1)}`];
  if (!Number.isFinite(reading.device_ratio)) return lines;
  lines.push(`GPU memory used (as nvidia-smi shows it): ${percent(reading.device_ratio, 1)}`);
  const parts = reading.reclaimable ?? {};
  const total = reading.total_bytes;
  if (total > 0 && (parts.torch_cache_bytes || parts.idle_models_bytes)) {
    lines.push(`The difference is ComfyUI's own: idle models ${percent(parts.idle_models_bytes / total, 1)}, ` +
      `torch cache ${percent(parts.torch_cache_bytes / total, 1)}. ComfyUI frees these itself when the next ` +
      "prompt needs the room, so they are not pressure.");
  }
  return lines;
}

function describe(status, held, problem) {
  if (!status) {
    return problem
      ? { state: "unavailable", label: "unavailable", tip: `VRAM guard unavailable: ${problem}` }
      : { state: "unknown", label: "no data", tip: "VRAM guard: waiting for the server" };
  }
  const { state, reading, thresholds = {}, probe = {}, unguarded = {} } = status;
  const lines = [`VRAM guard: ${state}`];
  if (unguarded.active) lines.push(`QUEUE UNGUARDED: the guard's queue hook failed (${unguarded.error}); prompts run without it`);
  lines.push(...readingLines(reading));
  if (probe.ok === false) lines.push(`Sensor failing: ${probe.error ?? "no reading"}`);
  if (probe.note) lines.push(probe.note); // e.g. why the guard is off on this host
  lines.push(`Pauses at ${percent(thresholds.pause_at)}, resumes below ${percent(thresholds.resume_at)}`);
  lines.push(`${count(held.length, "prompt")} held. Click for details.`);
  let label = state === "paused" ? `paused · ${held.length} held` : state;
  let shown = state;
  if (probe.ok === false) [label, shown] = ["sensor failing", "failing"];
  if (unguarded.active) [label, shown] = ["UNGUARDED", "unguarded"];
  return { state: shown, label, tip: lines.join("\n") };
}

export function createGauge(doc, onClick) {
  const root = el(doc, "button", "vram-guard-gauge");
  root.type = "button";
  root.dataset.state = "unknown";
  root.setAttribute("aria-label", "VRAM guard");
  const name = el(doc, "span", "vg-name", "VRAM");
  const value = el(doc, "span", "vg-value", "–");
  const device = el(doc, "span", "vg-device", "");
  const bar = el(doc, "span", "vg-bar");
  const deviceFill = el(doc, "span", "vg-device-fill");
  const fill = el(doc, "span", "vg-fill");
  const pauseMark = el(doc, "span", "vg-mark vg-mark-pause");
  const resumeMark = el(doc, "span", "vg-mark vg-mark-resume");
  bar.append(deviceFill, fill, resumeMark, pauseMark);
  const spark = svg(doc, "svg", { class: "vg-spark", viewBox: `0 0 ${SPARK_W} ${SPARK_H}`, preserveAspectRatio: "none" });
  const stateLabel = el(doc, "span", "vg-state", "…");
  root.append(name, value, device, bar, spark, stateLabel);
  if (onClick) root.addEventListener("click", onClick);

  // problem: why there is no status (e.g. the guard's routes are missing), or null
  function update(status, held = [], problem = null) {
    const info = describe(status, held, problem);
    root.dataset.state = info.state;
    root.title = info.tip;
    root.setAttribute("aria-label", info.tip.replace(/\n/g, ". "));
    stateLabel.textContent = info.label;
    const ratio = status?.reading?.ratio;
    value.textContent = percent(ratio);
    fill.style.width = `${(100 * clamp01(Number.isFinite(ratio) ? ratio : 0)).toFixed(1)}%`;
    const deviceRatio = status?.reading?.device_ratio;
    const differs = Number.isFinite(deviceRatio) && Number.isFinite(ratio) && deviceRatio - ratio >= 0.005;
    device.textContent = differs ? `GPU ${percent(deviceRatio)}` : "";
    device.hidden = !differs;
    deviceFill.style.width = `${(100 * clamp01(Number.isFinite(deviceRatio) ? deviceRatio : 0)).toFixed(1)}%`;
    const t = status?.thresholds ?? {};
    fill.classList.toggle("vg-over-pause", Number.isFinite(ratio) && ratio >= t.pause_at);
    fill.classList.toggle("vg-over-resume", Number.isFinite(ratio) && ratio >= t.resume_at && ratio < t.pause_at);
    for (const [mark, r] of [[pauseMark, t.pause_at], [resumeMark, t.resume_at]]) {
      mark.hidden = !Number.isFinite(r);
      if (Number.isFinite(r)) mark.style.left = `${(100 * clamp01(r)).toFixed(1)}%`;
    }
    drawSparkline(doc, spark, status);
  }

  return { element: root, update };
}
