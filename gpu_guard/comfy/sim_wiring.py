"""Connects a simulated GPU (GPU_GUARD_PROBE=sim:PATH, gpu_guard.probes.sim) to this ComfyUI: its loaded
models, the working set of the prompt the worker runs, and ComfyUI emptying its cache."""
from __future__ import annotations

import logging

from .. import estimators
from .comfy_memory import loaded_models_bytes

_log = logging.getLogger("gpu_guard.comfy")


def attach_sim_device(probe, hook, loaded_models, device_name) -> None:
    """The device follows ComfyUI: models on its compute device, each prompt's working set (its nodes'
    VRAM_ESTIMATEs, estimated on the worker thread after the pop, outside every lock; nodes without an
    estimate add nothing) and soft_empty_cache, which returns the cached working set to the device."""
    device = probe.device
    probe.set_models_source(lambda: loaded_models_bytes(loaded_models(), device_name))
    hook.on_prompt_start = lambda prompt: device.prompt_started(estimators.estimate_prompt(prompt, unknown=0) or 0)
    hook.on_prompt_end = device.prompt_finished
    _follow_cache_emptying(device, hook.queue)


def _follow_cache_emptying(device, queue) -> None:
    try:
        import comfy.model_management as model_management
    except ImportError:
        return  # outside ComfyUI: the tests drive the device directly
    original = model_management.soft_empty_cache
    if getattr(original, "_gpu_guard_sim", False):
        return

    def soft_empty_cache(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        finally:
            if not queue.currently_running:
                # ComfyUI empties its cache right after task_done, before its worker comes back to get
                # (where the hook notes the prompt's end): the prompt's tensors are freed by then
                device.prompt_finished()
            device.cache_emptied()

    soft_empty_cache._gpu_guard_sim = True
    model_management.soft_empty_cache = soft_empty_cache
    _log.info("VRAM guard: simulated GPU follows ComfyUI's models, prompts and cache")
