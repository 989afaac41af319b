"""While paused, a prompt further back runs when its estimate keeps the pressure under the pause mark;
a prompt of unknown cost at the front stays held (real ComfyUI, DDColor's VRAM_ESTIMATE)."""
from pathlib import Path

import pytest

from tests.gpu_guard.guard_drill import ddcolor_workflow, tiny_workflow, wait_until

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "sample_astronaut.png"
GB = 1_000_000_000


def ddcolor_from_file(image_name, checkpoint_name):
    return ddcolor_workflow(checkpoint_name, {"class_type": "LoadImage", "inputs": {"image": image_name}})


def read_bytes(drill, used, total):
    drill.probe.write(used, total)
    wait_until(lambda: (drill.status()["reading"] or {}).get("used_bytes") == used, what="the new reading")


def test_fast_lane_passes_an_unknown_cost_prompt_only_when_the_estimate_fits(drill):
    server = drill.client
    if not server.checkpoint_name:
        pytest.skip("no synthetic DDColor checkpoint could be made")
    image = server.upload_image(SAMPLE)["name"]
    fast_before = drill.status()["adapter"]["fast_lane_runs"]

    read_bytes(drill, 95 * GB, 100 * GB)  # paused, 5 GB free: above the pause mark nothing runs
    assert drill.status()["state"] == "paused"
    unknown = server.post_prompt(tiny_workflow(8000))  # EmptyImage has no estimate: never fast
    fits = server.post_prompt(ddcolor_from_file(image, server.checkpoint_name))
    wait_until(lambda: fits in drill.held_ids(), what="the DDColor prompt to be held at 95 %")
    read_bytes(drill, 94 * GB, 100 * GB)  # a fresh reading, still over the mark: still held
    assert server.history(fits) is None

    read_bytes(drill, 80 * GB, 100 * GB)  # in the hysteresis band: paused, 5 GB under the mark
    assert server.wait_history(fits, timeout=120)["status"]["status_str"] == "success"
    status = drill.status()
    assert status["state"] == "paused", "it ran in the fast lane, not because the guard resumed"
    assert status["adapter"]["fast_lane_runs"] == fast_before + 1
    assert drill.pending_ids() == [unknown] and server.history(unknown) is None

    read_bytes(drill, 84_900_000_000, 100 * GB)  # about 0.3 GB under the mark: the estimate no longer fits
    too_big = server.post_prompt(ddcolor_from_file(image, server.checkpoint_name))
    wait_until(lambda: too_big in drill.held_ids(), what="the second DDColor prompt to be held")
    read_bytes(drill, 84_800_000_000, 100 * GB)  # a fresh reading: still too little
    assert server.history(too_big) is None
    assert drill.status()["adapter"]["fast_lane_runs"] == fast_before + 1

    drill.resume()
    for pid in (unknown, too_big):
        assert server.wait_history(pid, timeout=120)["status"]["status_str"] == "success"
