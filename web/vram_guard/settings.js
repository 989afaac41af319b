// The guard's settings in ComfyUI's settings dialog. The server's config (GET/POST /gpu_guard/config)
// is the source of truth: the dialog shows its values, a change is POSTed, a refusal is shown and the
// dialog goes back to the server's value. Settings pinned by an environment variable are read-only.

const ENV_PREFIX = "GPU_GUARD_";
const CATEGORY = "VRAM Guard";

// key: the guard's config name; percent: shown as % in the dialog, stored as a ratio on the server.
export const GUARD_SETTINGS = [
  { key: "pause_at", id: "VRAMGuard.PauseAt", group: "Thresholds", name: "Pause new prompts at (% GPU memory pressure)",
    type: "number", percent: true, defaultValue: 85, attrs: { min: 1, max: 100, step: 0.5, maxFractionDigits: 1 },
    tooltip: "Prompts are held in the queue while GPU memory use is at or above this." },
  { key: "resume_at", id: "VRAMGuard.ResumeAt", group: "Thresholds", name: "Resume below (% GPU memory pressure)",
    type: "number", percent: true, defaultValue: 75, attrs: { min: 1, max: 100, step: 0.5, maxFractionDigits: 1 },
    tooltip: "Held prompts start once memory use drops below this. Must be lower than the pause threshold." },
  { key: "max_held", id: "VRAMGuard.MaxHeld", group: "Hold queue", name: "Maximum held prompts (0 = no limit)",
    type: "number", defaultValue: 0, attrs: { min: 0, step: 1 },
    tooltip: "While paused with this many prompts held, new prompts are refused (HTTP 429) instead of queued." },
  { key: "hold_timeout_s", id: "VRAMGuard.HoldTimeoutSeconds", group: "Hold queue", name: "Hold timeout (seconds, 0 = none)",
    type: "number", defaultValue: 0, attrs: { min: 0, step: 1 },
    tooltip: "How long a prompt may be held before the timeout action applies." },
  { key: "hold_timeout_action", id: "VRAMGuard.HoldTimeoutAction", group: "Hold queue", name: "After the hold timeout",
    type: "combo", defaultValue: "keep",
    options: [{ text: "keep holding", value: "keep" }, { text: "fail the prompt", value: "fail" }],
    tooltip: "keep: go on waiting (with an alert); fail: end the prompt with an error saying why." },
  { key: "fast_lane", id: "VRAMGuard.FastLane", group: "Hold queue", name: "Fast lane for prompts that fit",
    type: "boolean", defaultValue: true,
    tooltip: "While paused, let a prompt run when its estimated memory fits in what is free now." },
  { key: "poll_s", id: "VRAMGuard.PollSeconds", group: "Sensor", name: "Poll interval (seconds)",
    type: "number", defaultValue: 1, attrs: { min: 0.1, max: 60, step: 0.1, maxFractionDigits: 2 },
    tooltip: "How often the guard reads GPU memory." },
];

export function envName(key) {
  return ENV_PREFIX + key.toUpperCase();
}

export function toServer(def, value) {
  return def.percent ? Math.round(Number(value) * 10) / 1000 : value;
}

export function fromServer(def, value) {
  return def.percent ? Math.round(Number(value) * 1000) / 10 : value;
}

export class SettingsSync {
  // request(path, init) -> Promise<Response>; settings: {get(id), set(id, value)}; notify(kind, title, text)
  constructor({ request, settings, notify, debounceMs = 700 }) {
    this.request = request;
    this.settings = settings;
    this.notify = notify;
    this.debounceMs = debounceMs;
    this.server = null; // the last config the server answered
    this.pending = new Map(); // key -> timer of a change not yet POSTed
    this.applying = false; // true while the dialog is being set to the server's values
    this.params = GUARD_SETTINGS.map((def, i) => ({
      id: def.id,
      sortOrder: GUARD_SETTINGS.length - i, // the dialog lists higher first: keep this file's order
      name: def.name,
      category: [CATEGORY, def.group, def.name],
      type: def.type,
      defaultValue: def.defaultValue,
      tooltip: def.tooltip,
      attrs: { ...(def.attrs ?? {}) },
      ...(def.options ? { options: def.options } : {}),
      onChange: (value, old) => this.#changed(def, value, old),
    }));
    // read-only: the pack's version from the guard's status (its one source is pyproject.toml)
    this.versionParam = {
      id: "VRAMGuard.PackVersion", name: "Pack version", category: [CATEGORY, "About", "Pack version"],
      type: "text", defaultValue: "", attrs: { disabled: true },
      tooltip: "The version of the comfyui-ddcolor-vram-guard pack on this server.",
    };
  }

  showVersion(version) {
    if (typeof version === "string" && version) this.versionParam.name = `Pack version ${version}`;
  }

  async load() {
    let response;
    try {
      response = await this.request("/gpu_guard/config");
    } catch (error) {
      this.#markUnavailable(`the server did not answer (${error})`);
      return;
    }
    if (!response.ok) {
      this.#markUnavailable(`GET /gpu_guard/config answered ${response.status}; is the VRAM guard installed?`);
      return;
    }
    this.apply(await response.json());
  }

  // Shows the server's config in the dialog without POSTing it back.
  apply(config) {
    if (!config || typeof config !== "object") return;
    this.server = config;
    const pinned = new Set(config.pinned ?? []);
    this.params.forEach((param, i) => {
      const def = GUARD_SETTINGS[i];
      if (!(def.key in config)) {
        this.#readOnly(param, def, "not supported", `This server's VRAM guard has no ${def.key} setting.`);
        return;
      }
      if (pinned.has(def.key)) {
        this.#readOnly(param, def, `set by ${envName(def.key)}`,
          `Pinned by the environment variable ${envName(def.key)}; unset it and restart ComfyUI to change it here.`);
      }
      if (this.pending.has(def.key)) return; // the user's newer edit wins
      this.#setQuietly(def.id, fromServer(def, config[def.key]));
    });
  }

  #changed(def, value, old) {
    if (this.applying || old === undefined) return; // registration or a server sync, not a user edit
    clearTimeout(this.pending.get(def.key));
    this.pending.set(def.key, setTimeout(() => this.#post(def, value), this.debounceMs));
  }

  async #post(def, value) {
    const body = { [def.key]: toServer(def, value) };
    let response;
    let answer = null;
    try {
      response = await this.request("/gpu_guard/config", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      answer = await response.json().catch(() => null);
    } catch (error) {
      this.pending.delete(def.key);
      this.notify("error", "VRAM guard setting not saved", `The server did not answer: ${error}`);
      this.#revert(def);
      return;
    }
    this.pending.delete(def.key);
    if (response.ok) {
      this.apply(answer);
      return;
    }
    const reasons = Array.isArray(answer?.errors) ? answer.errors.join("; ") : answer?.error ?? `HTTP ${response.status}`;
    const hint = response.status === 403
      ? " Settings can be changed from a browser on the server machine, or with the guard's token."
      : "";
    this.notify("error", `VRAM guard: ${def.name} not changed`, `${reasons}.${hint}`);
    this.#revert(def);
  }

  #revert(def) {
    if (this.server && def.key in this.server) this.#setQuietly(def.id, fromServer(def, this.server[def.key]));
  }

  #setQuietly(id, value) {
    if (this.settings.get(id) === value) return;
    this.applying = true;
    try {
      // set() also stores the value in the user's settings file; a failure there is not ours to report
      Promise.resolve(this.settings.set(id, value)).catch(() => {});
    } finally {
      this.applying = false;
    }
  }

  #readOnly(param, def, why, tooltip) {
    param.attrs.disabled = true;
    param.name = `${def.name} (${why})`;
    param.tooltip = tooltip;
  }

  #markUnavailable(reason) {
    this.params.forEach((param, i) => this.#readOnly(param, GUARD_SETTINGS[i], "unavailable", `VRAM guard settings unavailable: ${reason}`));
  }
}
