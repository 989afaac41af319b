// Styles of the gauge and the panel. Colours come from the frontend's palette variables so both the
// dark and the light theme stay readable; the three state colours are mid-tones that read on either.
export const STYLE_ID = "vram-guard-style";

export const CSS = `
.vram-guard-gauge {
  --vg-ok: #2f9e5a; --vg-warn: #d08a10; --vg-stop: #d64545; --vg-idle: #8a8f98;
  display: inline-flex; align-items: center; gap: 6px; height: 32px; padding: 0 8px; margin: 0 4px;
  border: 1px solid var(--border-color, #4a4a4a); border-radius: 8px; cursor: pointer;
  background: var(--comfy-input-bg, transparent); color: var(--fg-color, inherit);
  font: 12px/1 system-ui, sans-serif; white-space: nowrap;
}
.vram-guard-gauge:hover { border-color: var(--fg-color, #888); }
.vram-guard-gauge:focus-visible { outline: 2px solid var(--vg-warn); outline-offset: 1px; }
.vram-guard-gauge .vg-name { color: var(--descrip-text, inherit); font-weight: 600; letter-spacing: .04em; }
.vram-guard-gauge .vg-value { min-width: 3.2em; text-align: right; font-variant-numeric: tabular-nums; font-weight: 600; }
.vram-guard-gauge .vg-bar {
  position: relative; width: 56px; height: 8px; border-radius: 4px; overflow: visible;
  background: var(--comfy-menu-bg, #333); border: 1px solid var(--border-color, #555);
}
.vram-guard-gauge .vg-fill { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 3px; background: var(--vg-ok); }
.vram-guard-gauge .vg-device-fill { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 3px; background: var(--vg-idle); opacity: .45; }
.vram-guard-gauge .vg-device { font-size: .85em; color: var(--descrip-text, inherit); font-variant-numeric: tabular-nums; }
.vram-guard-gauge[data-state="unguarded"] .vg-state { background: var(--vg-stop); }
.vram-guard-gauge[data-state="unguarded"] { border-color: var(--vg-stop); }
.vram-guard-gauge .vg-fill.vg-over-resume { background: var(--vg-warn); }
.vram-guard-gauge .vg-fill.vg-over-pause { background: var(--vg-stop); }
.vram-guard-gauge .vg-mark { position: absolute; top: -3px; bottom: -3px; width: 2px; margin-left: -1px; }
.vram-guard-gauge .vg-mark-pause { background: var(--vg-stop); }
.vram-guard-gauge .vg-mark-resume { background: var(--vg-ok); }
.vram-guard-gauge .vg-spark { width: 96px; height: 24px; overflow: visible; border-radius: 3px; background: var(--comfy-menu-bg, transparent); }
.vram-guard-gauge .vg-spark-line { fill: none; stroke: var(--fg-color, #ccc); stroke-width: 1.3; vector-effect: non-scaling-stroke; }
.vram-guard-gauge .vg-spark-pause, .vram-guard-gauge .vg-spark-resume { stroke-width: 1; stroke-dasharray: 3 2; vector-effect: non-scaling-stroke; }
.vram-guard-gauge .vg-spark-pause { stroke: var(--vg-stop); }
.vram-guard-gauge .vg-spark-resume { stroke: var(--vg-ok); }
.vram-guard-gauge .vg-spark-mark { stroke-width: 2; vector-effect: non-scaling-stroke; }
.vram-guard-gauge .vg-spark-to-paused { stroke: var(--vg-stop); }
.vram-guard-gauge .vg-spark-to-running { stroke: var(--vg-ok); }
.vram-guard-gauge .vg-state { padding: 3px 6px; border-radius: 4px; font-weight: 600; color: #fff; background: var(--vg-idle); }
.vram-guard-gauge[data-state="running"] .vg-state { background: var(--vg-ok); }
.vram-guard-gauge[data-state="paused"] .vg-state { background: var(--vg-stop); }
.vram-guard-gauge[data-state="failing"] .vg-state { background: var(--vg-warn); }
.vram-guard-gauge[data-state="paused"] { border-color: var(--vg-stop); }
.vram-guard-floating { position: fixed; top: 8px; right: 8px; z-index: 1000; }
.vram-guard-panel { padding: 8px 12px; color: var(--fg-color, inherit); font: 13px/1.4 system-ui, sans-serif; overflow: auto; height: 100%; box-sizing: border-box; }
.vram-guard-panel .vg-panel-summary { margin: 0 0 8px; }
.vram-guard-panel .vg-operator { display: flex; gap: 8px; align-items: center; margin: 0 0 8px; }
.vram-guard-panel .vg-operator-toggle { padding: 2px 10px; cursor: pointer; }
.vram-guard-panel .vg-operator-toggle:disabled { cursor: progress; opacity: 0.6; }
.vram-guard-panel .vg-panel-empty { color: var(--descrip-text, inherit); margin: 0; }
.vram-guard-panel .vg-held-table { border-collapse: collapse; }
.vram-guard-panel .vg-held-table th, .vram-guard-panel .vg-held-table td {
  text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid var(--border-color, #555);
}
.vram-guard-panel .vg-held-table th { color: var(--descrip-text, inherit); font-weight: 600; }
.vram-guard-panel .vg-mine td { font-weight: 600; }
.vram-guard-panel .vg-mono { font-family: ui-monospace, monospace; }
`;

// Adds the style sheet once to doc's head.
export function installStyles(doc) {
  if (doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  doc.head.append(style);
}
