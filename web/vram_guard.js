// VRAM guard in the ComfyUI frontend: a gauge in the top bar, hold/resume/busy notices, the guard's
// settings in the settings dialog and a bottom-panel tab listing the held prompts.
// Entry module: the only file here that touches the app; the modules in ./vram_guard/ are side-effect free.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { busyNotice, wrapQueuePrompt } from "./vram_guard/busy.js";
import { createGauge } from "./vram_guard/gauge.js";
import { renderHeldPanel } from "./vram_guard/held_panel.js";
import { HoldNotices, alertNotice, oomRescueNotice } from "./vram_guard/notices.js";
import { SettingsSync } from "./vram_guard/settings.js";
import { installStyles } from "./vram_guard/styles.js";
import { makeToaster } from "./vram_guard/toasts.js";

const PANEL_ID = "vram-guard-held";
const POLL_MS = 4000; // fallback poll; the websocket events carry every transition as it happens
const BUSY_TOAST_GAP_MS = 3000; // one busy notice per burst (a batch gets one 429 per prompt)

const isMine = (clientId) => clientId != null && (clientId === api.clientId || clientId === api.initialClientId);

const view = { status: null, held: [], heldAt: Date.now(), problem: null };
const notices = new HoldNotices(isMine);
let gauge = null;
let panelContainer = null;
// the extension manager appears during the app's start-up: look it up when a notice is shown
const toast = (...args) => makeToaster(app.extensionManager?.toast)(...args);
let lastBusyToast = 0;
let statusSeq = 0; // bumps on every websocket status so an older poll answer cannot overwrite it

const settingsSync = new SettingsSync({
  request: (path, init) => api.fetchApi(path, init),
  settings: {
    get: (id) => app.extensionManager.setting.get(id),
    set: (id, value) => app.extensionManager.setting.set(id, value),
  },
  notify: (kind, title, text) => toast(kind, title, text, 12000),
});

// The operator's pause/resume button in the held panel, for users allowed to change the config.
const operator = { canChange: false, busy: false };

async function loadOperatorAccess() {
  try {
    const response = await api.fetchApi("/gpu_guard/operator");
    operator.canChange = response.ok && (await response.json()).can_change === true;
  } catch {
    operator.canChange = false;
  }
  render();
}

async function toggleOperatorPause(pause) {
  operator.busy = true;
  render();
  try {
    const response = await api.fetchApi(pause ? "/gpu_guard/pause" : "/gpu_guard/resume", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ by: "web UI" }),
    });
    if (!response.ok) {
      const answer = await response.json().catch(() => null);
      const why = Array.isArray(answer?.errors) ? answer.errors.join("; ") : `HTTP ${response.status}`;
      toast("error", `VRAM guard: ${pause ? "pause" : "resume"} refused`, why, 12000);
    }
  } catch (error) {
    toast("error", "VRAM guard: the server did not answer", String(error), 12000);
  } finally {
    operator.busy = false;
    await poll();
  }
}

function render() {
  gauge?.update(view.status, view.held, view.problem);
  if (panelContainer?.isConnected) {
    renderHeldPanel(panelContainer, { ...view, elapsedS: (Date.now() - view.heldAt) / 1000, isMine,
                                      control: operator, onOperatorToggle: toggleOperatorPause });
  }
}

function showAll(list) {
  for (const n of list) toast(n.kind, n.title, n.description, n.lifeMs);
}

function onHeld(held) {
  if (!Array.isArray(held)) return;
  view.held = held;
  view.heldAt = Date.now();
  showAll(notices.held(held));
  render();
}

function onStatus(status) {
  if (!status || typeof status !== "object") return;
  view.status = status;
  if (Array.isArray(status.held)) {
    view.held = status.held;
    view.heldAt = Date.now();
  }
  settingsSync.showVersion(status.version);
  showAll(notices.status(status));
  // after setup's load only: before it the settings are not registered yet
  if (status.config && settingsSync.server) settingsSync.apply(status.config);
  render();
}

async function poll() {
  const seq = statusSeq;
  try {
    // our client id: the status names only our own held prompts' client ids
    const response = await api.fetchApi(`/gpu_guard/status?client_id=${encodeURIComponent(api.clientId ?? "")}`);
    if (!response.ok) {
      view.status = null;
      view.problem = `GET /gpu_guard/status answered ${response.status}; is the VRAM guard installed? (see the server log)`;
      render();
      return;
    }
    const status = await response.json();
    view.problem = null;
    if (seq === statusSeq) onStatus(status);
  } catch {
    // the server is away (restarting); the next poll or websocket event brings the gauge back
  }
}

function onBusy(details) {
  const now = Date.now();
  if (now - lastBusyToast < BUSY_TOAST_GAP_MS) return;
  lastBusyToast = now;
  showAll([busyNotice(details, view.status?.thresholds?.pause_at)]);
  void poll();
}

function togglePanel() {
  app.extensionManager.command?.execute?.(`Workspace.ToggleBottomPanelTab.${PANEL_ID}`);
}

// The top bar keeps a container for extension elements (app.menu.settingsGroup); a frontend without
// it gets the gauge as a small floating element instead.
function mountGauge() {
  gauge = createGauge(document, togglePanel);
  const group = app.menu?.settingsGroup?.element;
  if (group) {
    group.append(gauge.element);
  } else {
    gauge.element.classList.add("vram-guard-floating");
    document.body.append(gauge.element);
  }
}

// Listening from the moment the module loads: the websocket opens before the extensions' setup, and
// the frontend warns about event types that nobody listens to.
api.addEventListener("gpu_guard.status", (event) => {
  statusSeq += 1;
  onStatus(event.detail);
});
api.addEventListener("gpu_guard.held", (event) => onHeld(event.detail?.held));
api.addEventListener("gpu_guard.alert", (event) => showAll([alertNotice(event.detail)]));
api.addEventListener("gpu_guard.oom_rescue", (event) => showAll([oomRescueNotice(event.detail)]));
// after a reconnect the events missed while away are not replayed: ask for the state at once
api.addEventListener("reconnected", () => {
  void poll();
  void loadOperatorAccess();
});

app.registerExtension({
  name: "ddcolor_vram_guard.vram_guard",
  settings: [...settingsSync.params, settingsSync.versionParam],
  bottomPanelTabs: [
    {
      id: PANEL_ID,
      title: "Held prompts",
      type: "custom",
      render(container) {
        panelContainer = container;
        render();
      },
      destroy() {
        panelContainer = null;
      },
    },
  ],
  commands: [
    { id: "VRAMGuard.ShowHeldPrompts", label: "Show VRAM guard held prompts", icon: "pi pi-server", function: togglePanel },
  ],
  async setup() {
    installStyles(document);
    mountGauge();
    wrapQueuePrompt(api, onBusy);
    setInterval(() => void poll(), POLL_MS);
    // the panel's waiting times tick between updates
    setInterval(() => panelContainer?.isConnected && render(), 1000);
    render();
    await Promise.all([poll(), settingsSync.load(), loadOperatorAccess()]);
  },
});
