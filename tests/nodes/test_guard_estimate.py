"""The VRAM guard gets the colorize node's memory estimate for a queued DDColor prompt."""
import time
import uuid

import torch

from ddcolor_model import PRESETS, estimate_peak_bytes
from tests.nodes.comfy_io import api_workflow, as_shipped, node_of, run


def fresh(workflow):
    node_of(workflow, "SaveImage")["inputs"]["filename_prefix"] = f"test_guard_{uuid.uuid4().hex[:8]}"
    return workflow


def wait_guard(comfy, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        status = comfy.get_json("/gpu_guard/status")
        if predicate(status):
            return status
        assert time.monotonic() < deadline, f"guard status never matched: {status}"
        time.sleep(0.2)


def test_held_ddcolor_prompt_carries_the_colorize_estimate(comfy, checkpoint_name, probe):
    workflow = as_shipped(comfy, api_workflow("person"), checkpoint_name)
    # run it once so the loader has seen the checkpoint and the estimate can use its variant (tiny)
    assert run(comfy, fresh(workflow))["status"]["status_str"] == "success"

    probe.write_ratio(0.97)
    wait_guard(comfy, lambda s: s["state"] == "paused")
    prompt_id = comfy.post_prompt(fresh(workflow))
    # the poll thread estimates a held prompt a moment after it joins ("pending" until then)
    status = wait_guard(comfy, lambda s: any(h["prompt_id"] == prompt_id and h["need_source"] != "pending"
                                             for h in s["held"]))
    held = next(h for h in status["held"] if h["prompt_id"] == prompt_id)
    assert held["estimated_bytes"] == estimate_peak_bytes("tiny", PRESETS["person"].default, 1, torch.float32)

    probe.write_low()
    assert comfy.wait_history(prompt_id, timeout=300)["status"]["status_str"] == "success"
