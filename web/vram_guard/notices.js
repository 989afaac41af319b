// Decides which hold/resume notices this browser should see. Pure state machine: it is fed the guard's
// held lists and status objects and returns the notices to show; the entry module puts them on screen.
import { count, percent } from "./format.js";

export class HoldNotices {
  // isMine(clientId) -> whether a held prompt was queued from this browser tab
  constructor(isMine) {
    this.isMine = isMine;
    this.thresholds = { pause_at: null, resume_at: null };
    this.ratio = null;
    this.announced = new Set(); // ids of this browser's prompts already announced as held
    this.operatorPause = null; // {by, reason, at} while an operator paused the guard
    this.operatorHeld = false; // the announced prompts were held by the operator's pause
  }

  // A status object (from the websocket event or the poll). Returns the notices it causes.
  status(status) {
    if (!status) return [];
    if (status.thresholds) this.thresholds = status.thresholds;
    this.ratio = status.reading?.ratio ?? this.ratio;
    if ("operator_pause" in status) this.operatorPause = status.operator_pause;
    const notices = Array.isArray(status.held) ? this.held(status.held) : [];
    if (status.state !== "paused" && this.announced.size > 0) {
      notices.push(this.#resumed(status));
      this.announced.clear();
      this.operatorHeld = false;
    }
    return notices;
  }

  // A held list (from the gpu_guard.held event or inside a status). Returns the notices it causes.
  held(held) {
    const notices = [];
    const total = held.length;
    for (const entry of held) {
      if (!this.isMine(entry.client_id) || this.announced.has(entry.prompt_id)) continue;
      this.announced.add(entry.prompt_id);
      notices.push(this.#heldNotice(entry, total));
    }
    return notices;
  }

  #heldNotice(entry, total) {
    const paused = this.operatorPause;
    if (paused) {
      this.operatorHeld = true;
      const why = paused.reason ? `: ${paused.reason}` : "";
      return {
        kind: "warning",
        title: "Prompt queued: the server is paused",
        description:
          `Paused by ${paused.by}${why}. Your prompt is number ${entry.position} of ${total} in the hold queue ` +
          "and will start by itself once the server is resumed.",
        lifeMs: 10000,
      };
    }
    const { pause_at, resume_at } = this.thresholds;
    const now = this.ratio == null ? "" : ` (now ${percent(this.ratio)})`;
    return {
      kind: "warning",
      title: "Prompt queued: GPU memory is high",
      description:
        `GPU memory is above ${percent(pause_at)}${now}. Your prompt is number ${entry.position} of ${total} ` +
        `in the hold queue and will start by itself once memory is below ${percent(resume_at)}.`,
      lifeMs: 10000,
    };
  }

  #resumed(status) {
    const now = status.reading?.ratio == null ? "" : ` (now ${percent(status.reading.ratio)})`;
    const what = status.state === "off" ? "The VRAM guard is off" : `GPU memory is below ${percent(this.thresholds.resume_at)}${now}`;
    if (this.operatorHeld) {
      return {
        kind: "success",
        title: "Server resumed",
        description: `The operator's pause ended; your ${count(this.announced.size, "held prompt")} will start now.`,
        lifeMs: 8000,
      };
    }
    return {
      kind: "success",
      title: "GPU memory available: resuming",
      description: `${what}; your ${count(this.announced.size, "held prompt")} will start now.`,
      lifeMs: 8000,
    };
  }
}

const ALERT_TITLES = {
  held_too_long: "VRAM guard: a prompt has been held for a long time",
  sensor_failing: "VRAM guard: the GPU memory sensor is failing",
};

// The notice for a gpu_guard.alert event ({kind, message}).
export function alertNotice(alert) {
  return {
    kind: "warning",
    title: ALERT_TITLES[alert?.kind] ?? "VRAM guard",
    description: String(alert?.message ?? ""),
    lifeMs: 15000,
  };
}

// A prompt that ran out of GPU memory and was put back by the guard (the gpu_guard.oom_rescue event):
// it stands in for ComfyUI's error dialog, which the server does not send for a rescued prompt.
export function oomRescueNotice(rescue) {
  const attempt = Number(rescue?.attempt) || 1;
  const most = Number(rescue?.max_attempts) || attempt;
  const where = rescue?.node_type ? ` in ${rescue.node_type}` : "";
  return {
    kind: "warning",
    title: "Prompt held: out of GPU memory",
    description: `${String(rescue?.message ?? "ran out of GPU memory; held and will run again")}${where} ` +
      `(rescue ${attempt} of ${most})`,
    lifeMs: 15000,
  };
}
