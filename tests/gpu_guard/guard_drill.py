"""Drives a real ComfyUI's VRAM guard through its file probe: write readings, watch the routes.

Shared by tests/gpu_guard and bench/soak_guard.py.
"""
from __future__ import annotations

import time

from tests.harness.probe_file import ProbeFile

TOTAL_BYTES = 10_000_000_000  # ratios * 1e10 are exact integers, so 0.85 reads back as 0.85


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Polls `predicate` until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def tiny_workflow(color: int = 0) -> dict:
    """A prompt that needs no model: an 8x8 image of one colour, previewed (a distinct colour
    keeps ComfyUI's cache from skipping the work)."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


class GuardDrill:
    """A ComfyUI client plus the probe file its guard reads: a file probe (used bytes), or with `sim`
    a simulated device (foreign bytes; ComfyUI's own memory comes on top)."""

    def __init__(self, client, probe: ProbeFile, sim: bool = False):
        self.client = client
        self.probe = probe
        self.sim = sim

    def write_ratio(self, ratio: float, total_bytes: int = TOTAL_BYTES) -> None:
        if self.sim:
            self.probe.write_sim(total_bytes, round(ratio * total_bytes))
        else:
            self.probe.write_ratio(ratio, total_bytes)

    # -- guard routes
    def status(self) -> dict:
        return self.client.get_json("/gpu_guard/status")

    def config(self) -> dict:
        return self.client.get_json("/gpu_guard/config")

    def set_config(self, **settings) -> dict:
        response = self.client.post("/gpu_guard/config", settings)
        assert response.status_code == 200, f"POST /gpu_guard/config {settings}: {response.status_code} {response.text}"
        return response.json()

    # -- readings and states
    def read_ratio(self, ratio: float, timeout: float = 10.0, total_bytes: int = TOTAL_BYTES) -> dict:
        """Writes a device reading (used fraction) and waits until the guard has taken it; returns the
        status then. The guard's pressure is this minus ComfyUI's idle models (see unload_models)."""
        self.write_ratio(ratio, total_bytes)
        expected = round(ratio * total_bytes)

        def taken():
            status = self.status()
            reading = status.get("reading")
            return status if reading and reading["used_bytes"] == expected \
                and reading["total_bytes"] == total_bytes else None

        return wait_until(taken, timeout, what=f"the guard to read ratio {ratio}")

    def unload_models(self, timeout: float = 30.0) -> dict:
        """Has ComfyUI release its models (POST /free) and waits until the guard sees none idle, so the
        pressure equals the device reading (exact thresholds)."""
        def no_idle_models():
            status = self.status()
            reading = status.get("reading") or {}
            return status if reading.get("reclaimable", {}).get("idle_models_bytes", 0) == 0 else None

        if no_idle_models() is None:
            self.client.free(unload_models=True, free_memory=False)
        return wait_until(no_idle_models, timeout, what="ComfyUI's models to be released")

    def wait_state(self, state: str, timeout: float = 10.0) -> dict:
        return wait_until(lambda: (lambda s: s if s["state"] == state else None)(self.status()),
                          timeout, what=f"guard state {state!r}")

    def pause(self) -> dict:
        self.write_ratio(0.95)
        return self.wait_state("paused")

    def resume(self) -> dict:
        self.write_ratio(0.10)
        return self.wait_state("running")

    # -- queue
    def pending_ids(self) -> list:
        """Prompt ids pending in /queue, in ComfyUI's priority order."""
        pending = sorted(self.client.queue()["queue_pending"], key=lambda item: (item[0], item[1]))
        return [item[1] for item in pending]

    def held_ids(self) -> list:
        return [held["prompt_id"] for held in sorted(self.status()["held"], key=lambda h: h["position"])]

    def history_order(self, prompt_ids) -> list:
        """The given prompts in the order ComfyUI finished them (history keeps insertion order)."""
        wanted = set(prompt_ids)
        return [pid for pid in self.client.get_json("/history") if pid in wanted]

    def wait_idle(self, timeout: float = 60.0) -> None:
        wait_until(lambda: (lambda q: not q["queue_running"] and not q["queue_pending"])(self.client.queue()),
                   timeout, interval=0.05, what="an empty queue")


def post_burst(drill: "GuardDrill", count: int, first_color: int = 1000) -> list:
    """`count` concurrent POST /prompt (half of them through /api/prompt, both are guarded); returns
    the responses. Shared by the admission tests and bench/burst_guard.py."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    url = drill.client.url

    def post(i):
        path = "/prompt" if i % 2 else "/api/prompt"
        return requests.post(url + path, json={"prompt": tiny_workflow(first_color + i)}, timeout=120)

    with ThreadPoolExecutor(max_workers=min(count, 64)) as pool:
        return list(pool.map(post, range(count)))


def ddcolor_workflow(checkpoint_name: str, image_node: dict) -> dict:
    """`image_node` -> Load DDColor Model (fp32, CPU) + DDColor Colorize at 64 px -> PreviewImage."""
    return {
        "1": image_node,
        "2": {"class_type": "DDColorModelLoader",
              "inputs": {"ckpt_name": checkpoint_name, "precision": "fp32", "device": "cpu"}},
        "3": {"class_type": "DDColorColorize",
              "inputs": {"model": ["2", 0], "image": ["1", 0], "preset": "custom", "size": 64,
                         "keep_aspect": False, "ab_upsample": "nearest", "clamp_ab": False, "strength": 1.0}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
