"""The simulated GPU follows ComfyUI's cache emptying in ComfyUI's own order (0.3.75 main.prompt_worker):
execute, task_done, gc + soft_empty_cache, and only then the worker's next get."""
import sys
import types

import pytest

from gpu_guard.comfy.sim_wiring import attach_sim_device
from gpu_guard.probes.sim import SimProbe
from tests.gpu_guard.hook_rig import item
from tests.gpu_guard.stand_in_queue import StandInPromptQueue

GB = 10**9


class Hook:
    def __init__(self, queue):
        self.queue, self.on_prompt_start, self.on_prompt_end = queue, None, None


@pytest.fixture
def comfy_memory(monkeypatch):
    """A stand-in comfy.model_management with the soft_empty_cache the sim wiring wraps."""
    emptied = []
    comfy = types.ModuleType("comfy")
    model_management = types.ModuleType("comfy.model_management")
    model_management.soft_empty_cache = lambda *a, **k: emptied.append(True)
    comfy.model_management = model_management
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.model_management", model_management)
    return model_management, emptied


def sim_on(tmp_path, queue):
    path = tmp_path / "device.json"
    path.write_text('{"total_bytes": %d, "foreign_bytes": 0}' % (10 * GB))
    probe = SimProbe(str(path))
    hook = Hook(queue)
    attach_sim_device(probe, hook, lambda: [], "cuda:0")
    return probe, hook


def test_the_cache_emptied_after_task_done_frees_the_finished_prompts_working_set(tmp_path, comfy_memory):
    model_management, emptied = comfy_memory
    queue = StandInPromptQueue()
    probe, hook = sim_on(tmp_path, queue)
    queue.put(item(1, "a"))
    popped, number = queue.get(timeout=1.0)
    hook.on_prompt_start(popped[2])
    probe.device.allocate(7 * GB)  # the prompt's tensors
    model_management.soft_empty_cache()  # ComfyUI frees memory for a model load while the prompt runs
    assert probe.device.snapshot() == (7 * GB, 7 * GB), "a running prompt keeps its tensors"

    queue.task_done(number, {}, queue.ExecutionStatus("success", True, []))
    model_management.soft_empty_cache()  # the worker's gc right after task_done, before its next get
    assert emptied == [True, True]
    assert probe.device.snapshot() == (0, 0), "the finished prompt's memory went back to the device"
    assert probe.read().used_bytes == 0
