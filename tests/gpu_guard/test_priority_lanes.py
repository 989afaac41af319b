"""VIP lanes on a real ComfyUI: while paused with max_held 5 for the normal class, a VIP prompt is
accepted when a 6th normal one gets 429, runs first on resume, and aging and enforcement hold."""
import time

import pytest

from gpu_guard.priority import token_sha256
from tests.gpu_guard.guard_drill import tiny_workflow, wait_until

pytestmark = pytest.mark.comfyui

VIP_TOKEN = "vip-token-for-the-drill-0123"
VIP = {"Authorization": f"Bearer {VIP_TOKEN}"}
CLASSES = [{"name": "vip", "token_sha256": token_sha256(VIP_TOKEN), "max_held": 3}]


@pytest.fixture
def lanes(drill):
    drill.set_config(priority_classes=CLASSES, max_held=5, priority_enforce=True, priority_max_wait_s=300)
    yield drill
    drill.client.post("/queue", {"clear": True})
    drill.set_config(priority_classes=[], priority_enforce=False, priority_max_wait_s=300)


def post(drill, color, headers=None, **fields):
    return drill.client.post("/prompt", {"prompt": tiny_workflow(color), **fields}, headers=headers or {})


def metric(drill, line_start: str) -> float:
    """The value of one sample of /gpu_guard/metrics (0 when absent); counters count for the server's life."""
    for line in drill.client.get("/gpu_guard/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


REJECTED_NORMAL = 'gpu_guard_class_submissions_total{answer="rejected",priority_class="normal"}'
ACCEPTED_VIP = 'gpu_guard_class_submissions_total{answer="accepted",priority_class="vip"}'


def test_a_vip_is_accepted_past_a_full_normal_queue_and_runs_first_on_resume(lanes):
    drill = lanes
    rejected_before, accepted_before = metric(drill, REJECTED_NORMAL), metric(drill, ACCEPTED_VIP)
    drill.pause()
    normal = [post(drill, 4000 + i).json()["prompt_id"] for i in range(5)]
    sixth = post(drill, 4005)
    assert sixth.status_code == 429 and sixth.headers["Retry-After"] == "10"
    assert "its hold queue is full (5 held, max_held=5)" in sixth.json()["error"]["message"]
    vip = post(drill, 4006, VIP)
    assert vip.status_code == 200
    vip_id = vip.json()["prompt_id"]
    assert vip.json()["number"] < 0
    wait_until(lambda: len(drill.status()["held"]) == 6, what="six held prompts")
    status = drill.status()
    assert [(h["prompt_id"], h["priority_class"]) for h in status["held"]] == \
        [(vip_id, "vip")] + [(pid, "normal") for pid in normal]
    classes = {c["name"]: c for c in status["priority"]["classes"]}
    assert (classes["vip"]["held"], classes["normal"]["held"]) == (1, 5)
    assert metric(drill, 'gpu_guard_class_held_prompts{priority_class="vip"}') == 1
    assert metric(drill, REJECTED_NORMAL) - rejected_before == 1
    assert metric(drill, ACCEPTED_VIP) - accepted_before == 1
    drill.resume()
    for prompt_id in [vip_id, *normal]:
        drill.client.wait_history(prompt_id, timeout=60)
    assert drill.history_order([vip_id, *normal]) == [vip_id, *normal]


def test_a_normal_prompt_past_priority_max_wait_is_not_overtaken(lanes):
    drill = lanes
    drill.set_config(priority_max_wait_s=1)
    drill.pause()
    aged = post(drill, 4100).json()["prompt_id"]
    time.sleep(1.5)
    vip = post(drill, 4101, VIP).json()["prompt_id"]
    fresh = post(drill, 4102).json()["prompt_id"]  # not aged yet when the VIP runs: it waits
    drill.resume()
    for prompt_id in (aged, vip, fresh):
        drill.client.wait_history(prompt_id, timeout=60)
    assert drill.history_order([aged, vip, fresh]) == [aged, vip, fresh]


@pytest.mark.parametrize("enforce, expected", [(True, "in order"), (False, "jumps")])
def test_front_without_a_token_is_ignored_under_enforcement(lanes, enforce, expected):
    drill = lanes
    drill.set_config(priority_enforce=enforce)
    drill.pause()
    first = post(drill, 4200 + enforce).json()["prompt_id"]
    jumper = post(drill, 4210 + enforce, front=True)
    assert jumper.status_code == 200
    assert jumper.headers.get("X-GPU-Guard-Ignored") == ("front" if enforce else None)
    claimed = post(drill, 4220 + enforce, extra_data={"gpu_guard_class": "vip"})  # a class is never claimed
    drill.resume()
    ids = [first, jumper.json()["prompt_id"], claimed.json()["prompt_id"]]
    for prompt_id in ids:
        drill.client.wait_history(prompt_id, timeout=60)
    order = drill.history_order(ids)
    assert order == (ids if expected == "in order" else [ids[1], ids[0], ids[2]])
    assert "gpu_guard_class" not in drill.client.history(ids[2])["prompt"][3]
