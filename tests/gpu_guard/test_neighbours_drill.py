"""Two real ComfyUI servers on one simulated GPU (sim:PATH): A keeps its model loaded after the
person workflow; B reads 0.90 only because of A's idle model, holds a prompt, asks A, A unloads and
B's prompt runs. Then A loads its model again and runs a prompt that blocks (busy, it releases
nothing), B pauses on A's memory and holds a prompt, and A is killed with SIGKILL: B does not wait on
the dead neighbour (its memory is gone from the device at once, its claim within a registry tick).

The device is sized from A's model (A's model is a quarter of it), so that B's pressure is 0.90 with
A's model and 0.65 (below resume_at) without it, while A's own pressure is 0.65 throughout.
"""
import json
import os
import signal
import time

import pytest

from tests.gpu_guard.blocking_node import blocking_workflow, install_blocking_node
from tests.gpu_guard.conftest import start_guarded_server
from tests.gpu_guard.guard_drill import tiny_workflow, wait_until
from tests.nodes.comfy_io import api_workflow, as_shipped, node_of

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

POLL_S = "0.05"


def write_device(path, total_bytes, foreign_bytes):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"total_bytes": int(total_bytes), "foreign_bytes": int(foreign_bytes)}, f)
    os.replace(tmp, path)


def status(server):
    return server.get_json("/gpu_guard/status")


def idle_bytes(server):
    reading = status(server)["reading"] or {}
    return reading.get("reclaimable", {}).get("idle_models_bytes", 0)


def model_only(server):
    """The model's bytes once ComfyUI's periodic garbage collection (every 10 s after prompts, with
    soft_empty_cache) has returned the finished prompts' cache: the idle model alone, else None."""
    reclaimable = (status(server)["reading"] or {}).get("reclaimable", {})
    idle, cache = reclaimable.get("idle_models_bytes", 0), reclaimable.get("torch_cache_bytes", 0)
    return idle if idle and not cache else None


@pytest.fixture
def pair(tmp_path, synthetic_checkpoint):
    if synthetic_checkpoint is None:
        pytest.skip("no synthetic DDColor checkpoint could be made, so no model can be loaded")
    device = tmp_path / "device.json"
    write_device(device, 2 << 30, 0)
    registry = tmp_path / "neighbours"
    env = {"GPU_GUARD_PROBE": f"sim:{device}", "GPU_GUARD_POLL_S": POLL_S,
           "GPU_GUARD_NEIGHBOURS_DIR": str(registry)}
    install_blocking_node(tmp_path / "a")
    a = start_guarded_server(tmp_path / "a", "neighbour_a", env, checkpoint=synthetic_checkpoint)
    b = None
    try:
        b = start_guarded_server(tmp_path / "b", "neighbour_b", env)
        yield a, b, device, registry, tmp_path / "release"
    finally:
        (tmp_path / "release").touch()
        for server in (a, b):
            if server is not None:
                server.stop()


def run_person(server, prefix, strength=1.0):
    """The person workflow; another strength makes ComfyUI run the colorize node (and load the model)
    again instead of answering from its cache."""
    workflow = as_shipped(server, api_workflow("person"), server.checkpoint_name)
    node_of(workflow, "SaveImage")["inputs"]["filename_prefix"] = prefix
    node_of(workflow, "DDColorColorize")["inputs"]["strength"] = strength
    prompt_id = server.post_prompt(workflow)
    assert server.wait_history(prompt_id, timeout=300)["status"]["status_str"] == "success"


def test_an_idle_neighbour_releases_for_a_holding_guard_and_a_killed_one_is_not_waited_on(pair):
    a, b, device, registry, release = pair

    # A runs the person workflow and keeps its model. The same prompt again is served from ComfyUI's
    # cache (a different graph would drop the model with the old outputs); ComfyUI's periodic
    # collection after it empties the cache the first run left
    run_person(a, "neighbour_a")
    run_person(a, "neighbour_a")
    model = wait_until(lambda: model_only(a), timeout=40, what="A to hold its model and no cache")
    model_at = time.time()
    assert 150e6 < model < 300e6
    total = model * 4
    written_at = time.time()
    write_device(device, total, 0.90 * total - model)  # B: 0.90 with A's model, 0.65 without it
    wait_until(lambda: status(b)["state"] == "paused", timeout=30, what="B to pause on A's idle model")
    # A publishes its claim every half second: wait for one published after A held its model alone
    # (ComfyUI empties the cache right after the prompt, which can be before A's next publish)
    # (`asked_at` is taken before the request, so asked_at - age_s is no later than the claim's time)
    seen_by_b = wait_until(lambda: (lambda asked_at, seen: seen if seen and asked_at - seen[0]["age_s"] >= model_at
                                    else None)(time.time(), status(b)["neighbours"]["neighbours"]),
                           timeout=10, what="B to see A's claim from after its prompts")
    assert [(n["pid"], n["idle_models_bytes"], n["busy"]) for n in seen_by_b] == [(a.pid, model, False)]
    # A's status shows its poll thread's last reading: wait for one taken after the write (B pausing says
    # nothing about when A polled; on a loaded host A read the old file in CI)
    a_status = wait_until(lambda: (lambda s: s if s["reading"]["at"] >= written_at else None)(status(a)),
                          timeout=10, what="A to read the device after the write")
    assert a_status["state"] == "running" and a_status["reading"]["ratio"] == pytest.approx(0.65, abs=0.01)
    assert a_status["neighbours"]["releases_done"] == 0

    # B holds a prompt, asks A; A unloads; B's prompt runs
    held_at = time.monotonic()
    prompt = b.post_prompt(tiny_workflow(color=1))
    wait_until(lambda: status(b)["held"], timeout=10, what="B to hold its prompt")
    assert b.wait_history(prompt, timeout=60)["status"]["status_str"] == "success"
    ran_after = time.monotonic() - held_at
    b_status = status(b)
    assert b_status["neighbours"]["asks_sent"] >= 1 and b_status["neighbours"]["last_ask"]["pid"] == a.pid
    a_status = wait_until(lambda: (lambda s: s if s["neighbours"]["releases_done"] == 1 else None)(status(a)),
                          timeout=10, what="A to report its release")
    assert a_status["neighbours"]["last_release"]["for"] == b_status["neighbours"]["me"]["name"]
    assert wait_until(lambda: idle_bytes(a) == 0 or None, timeout=10, what="A's model to be gone") is True
    assert b_status["state"] == "running"

    # A loads its model again and then runs a prompt that blocks: busy, it releases nothing
    run_person(a, "neighbour_a", strength=0.9)
    wait_until(lambda: idle_bytes(a), timeout=30, what="A to hold its model again")
    blocked = a.post_prompt(blocking_workflow(release))
    wait_until(lambda: status(a)["worker"]["phase"] == "running", timeout=10, what="A to run the blocking prompt")
    wait_until(lambda: status(b)["state"] == "paused", timeout=30, what="B to pause again")
    second = b.post_prompt(tiny_workflow(color=2))
    wait_until(lambda: status(b)["held"], timeout=10, what="B to hold its second prompt")
    wait_until(lambda: status(b)["neighbours"]["neighbours"][0]["busy"] is True, timeout=10,
               what="B to see A busy (A publishes every half second)")

    os.kill(a.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert b.wait_history(second, timeout=60)["status"]["status_str"] == "success"
    after_kill = time.monotonic() - killed_at
    b_status = wait_until(lambda: (lambda s: s if not s["neighbours"]["neighbours"] else None)(status(b)),
                          timeout=5, what="A's claim to go (pid + start time, not the 10 s heartbeat)")
    names = os.listdir(b_status["neighbours"]["dir"])
    assert names == [n for n in names if n.startswith(f"{b.pid}-") and n.endswith(".claim.json")]
    assert after_kill < 10, f"B waited {after_kill:.1f} s after A was killed"
    print(f"\nB's held prompt ran {ran_after:.2f} s after it was queued (ask, unload, resume); "
          f"{after_kill:.2f} s after A was killed")
    assert blocked  # A's blocking prompt died with A
