// Text formatting shared by the gauge, the panel and the notices (pure functions, no side effects).

// "85 %" with a no-break space, so a notice never wraps between the number and its unit
export function percent(ratio, digits = 0) {
  if (typeof ratio !== "number" || !Number.isFinite(ratio)) return "–";
  return `${(ratio * 100).toFixed(digits)}\u00a0%`;
}

export function bytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "unknown";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// "1 prompt", "3 prompts"
export function count(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
