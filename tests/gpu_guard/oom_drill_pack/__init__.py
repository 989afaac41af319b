"""A node pack for the OOM rescue drills: ComfyUI loads it from a server's custom_nodes folder.

`OomDrillRun` appends "start <tag>" / "end <tag>" to the file named by JOURNAL_DRILL_LOG (the journal
drill's run log, so one log counts every run across restarts). It raises torch's OutOfMemoryError
on its first `fail_runs` runs (-1: always), counted from that log. With `extra_bytes` it allocates
that much on the simulated GPU (GPU_GUARD_PROBE=sim:PATH) beyond its estimate, and runs out of memory
when the device has not got it free, as a real allocation would. Its VRAM_ESTIMATE is `estimate_bytes`.
"""
import os
import sys

import torch


def _note(line):
    if not os.environ.get("JOURNAL_DRILL_LOG"):
        return  # a server without the run log (the frontend tests): the node only fails as told
    with open(os.environ["JOURNAL_DRILL_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def _starts(tag):
    if not os.environ.get("JOURNAL_DRILL_LOG"):
        return 1  # without a log every run is the first
    try:
        with open(os.environ["JOURNAL_DRILL_LOG"], encoding="utf-8") as log:
            return sum(1 for line in log if line.rstrip("\n") == f"start {tag}")
    except FileNotFoundError:
        return 0


def _sim_probe():
    """The guard's simulated GPU, found through the pack's installed adapter (None without one)."""
    for name, module in list(sys.modules.items()):
        if name.endswith("gpu_guard.comfy") and hasattr(module, "installed_adapter"):
            adapter = module.installed_adapter()
            probe = adapter.guard.probe if adapter is not None else None
            if getattr(probe, "follows_comfy", False):
                return probe
    return None


class OomDrillRun:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        big = {"default": 0, "min": -1, "max": 1 << 50}
        return {"required": {"tag": ("STRING", {"default": ""}), "fail_runs": ("INT", dict(big)),
                             "extra_bytes": ("INT", dict(big)), "estimate_bytes": ("INT", dict(big))}}

    @classmethod
    def VRAM_ESTIMATE(cls, inputs, prompt):
        return int(inputs.get("estimate_bytes") or 0)

    def run(self, tag, fail_runs, extra_bytes, estimate_bytes):
        _note(f"start {tag}")
        if fail_runs < 0 or _starts(tag) <= fail_runs:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (OOM drill)")
        probe = _sim_probe()
        if extra_bytes > 0 and probe is not None:
            reading = probe.read()
            free = reading.total_bytes - reading.used_bytes + reading.reclaimable_bytes
            if extra_bytes > free:
                raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {extra_bytes} B "
                                             f"({free} B free on the simulated GPU)")
            probe.device.allocate(extra_bytes)
        _note(f"end {tag}")
        return {}


class OomDrillAllocate:
    """Takes `bytes` of real device memory on ComfyUI's torch device for a moment (scripts/gpu_oom_rescue.py):
    past the free memory of a GPU, torch raises its own OutOfMemoryError."""
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "run"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING", {"default": ""}), "bytes": ("INT", {"default": 0, "min": 0, "max": 1 << 50})}}

    def run(self, tag, bytes):
        import comfy.model_management as model_management

        _note(f"start {tag}")
        block = torch.empty(bytes, dtype=torch.uint8, device=model_management.get_torch_device())
        block.fill_(1)  # touch it: the memory is really in use
        del block
        _note(f"end {tag}")
        return {}


NODE_CLASS_MAPPINGS = {"OomDrillRun": OomDrillRun, "OomDrillAllocate": OomDrillAllocate}
