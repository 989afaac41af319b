// The guard answers /prompt with HTTP 429 (error type "gpu_guard_busy") while it is paused and its hold
// queue is full. The frontend has no public hook for a failed queue call: it shows its generic
// "Prompt execution failed" dialog for any error thrown by api.queuePrompt. So the entry module wraps
// api.queuePrompt: a guard 429 becomes a clear toast and a response without prompt_id (which the
// frontend treats as "not queued"); every other error is re-thrown untouched.
import { percent } from "./format.js";

export const BUSY_ERROR_TYPE = "gpu_guard_busy";

// The guard's 429 details from the error api.queuePrompt threw, or null for any other error.
export function busyDetails(error) {
  const body = error?.response;
  if (body?.error?.type !== BUSY_ERROR_TYPE) return null;
  const retry = Number(body.error.extra_info?.retry_after_s);
  return { retryAfterS: Number.isFinite(retry) && retry > 0 ? retry : null };
}

export function busyNotice(details, pauseAt) {
  const retry = details.retryAfterS == null ? "in a little while" : `in ${details.retryAfterS} s`;
  const why = pauseAt == null ? "GPU memory is high" : `GPU memory is above ${percent(pauseAt)}`;
  return {
    kind: "error",
    title: "Server busy: prompt not queued",
    description:
      `${why} and the hold queue is full, so this prompt was not accepted. Queue it again ${retry}.`,
    lifeMs: 12000,
  };
}

const WRAPPED = Symbol.for("vram_guard.queuePrompt");

// Wraps api.queuePrompt once; onBusy(details) is called for each guard 429.
export function wrapQueuePrompt(api, onBusy) {
  const original = api.queuePrompt;
  if (typeof original !== "function" || original[WRAPPED]) return;
  async function queuePromptWithBusyNotice(...args) {
    try {
      return await original.apply(this, args);
    } catch (error) {
      const details = busyDetails(error);
      if (!details) throw error;
      onBusy(details);
      return { node_errors: {}, error: error.response.error };
    }
  }
  queuePromptWithBusyNotice[WRAPPED] = true;
  api.queuePrompt = queuePromptWithBusyNotice;
}
