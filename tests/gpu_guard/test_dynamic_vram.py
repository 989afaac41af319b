"""The pressure measure with ComfyUI 0.38's dynamic VRAM, against a stand-in that follows comfy-aimdo's
accounting (tests/gpu_guard/aimdo_stand_in.py): what is evictable, who evicts it, and aimdo's list of
VBARs read on ComfyUI's worker thread only."""
import threading
import types

import pytest

from gpu_guard.comfy.comfy_memory import loaded_models_bytes
from gpu_guard.comfy.dynamic_vram import Aimdo, IdleModels
from gpu_guard.comfy.neighbour_glue import mine_of
from gpu_guard.config import GuardConfig
from gpu_guard.guard import Guard
from gpu_guard.probes import Reading
from tests.gpu_guard.aimdo_stand_in import (PAGE, AimdoDevice, ClassicPatcher, Device, DynamicPatcher, LoadedModel,
                                            unload_all_models)

GIB = 1 << 30


class NvmlLikeProbe:
    """The device's used memory as NVML reports it: VBAR pages included, no torch cache."""
    name = "stand-in"

    def __init__(self, aimdo):
        self.aimdo = aimdo

    def read(self):
        return Reading(self.aimdo.used_bytes(), self.aimdo.total_bytes, 0, 0.0)


class Rig:
    def __init__(self, total=10 * GIB, foreign=5 * GIB):
        self.aimdo = AimdoDevice(total, foreign)
        self.device = Device(0)
        self.current_loaded_models = []
        self.idle = IdleModels(lambda: self.current_loaded_models, str(self.device), self.device.index,
                               Aimdo(*self.aimdo.modules()))
        self.guard = Guard(GuardConfig(), NvmlLikeProbe(self.aimdo))
        self.idle.attach(self.guard)
        self.patchers = []  # what keeps model objects alive (ComfyUI's execution cache)

    def load_dynamic(self, weights, small=0):
        patcher = DynamicPatcher(self.aimdo, self.device, weights, small)
        self.patchers.append(patcher)
        self.current_loaded_models.insert(0, LoadedModel(patcher))
        patcher.run()
        return patcher

    def between_prompts(self):
        """The worker enters get: the queue hook's on_worker_idle runs on that thread."""
        def worker():
            self.aimdo.worker = threading.current_thread()
            self.idle.measure_on_worker()
        thread = threading.Thread(target=worker, name="prompt_worker")
        thread.start()
        thread.join()

    def reading(self):
        self.guard.poll_once()
        return self.guard.reading


@pytest.fixture
def rig():
    return Rig()


def test_a_warm_dynamic_model_is_not_pressure(rig):
    rig.load_dynamic(3 * GIB, small=64 << 20)
    rig.between_prompts()
    reading = rig.reading()
    assert reading.device_ratio == pytest.approx((5 * GIB + 3 * GIB + (64 << 20)) / (10 * GIB))
    assert reading.idle_models_bytes == 3 * GIB + (64 << 20)  # VBAR pages + small weights, counted once
    assert reading.ratio == pytest.approx(0.5)  # what is left is the foreign process
    assert rig.idle.last.outside_bytes == 0


def test_pages_of_a_model_no_longer_listed_are_evictable_once_the_worker_measured(rig):
    rig.load_dynamic(3 * GIB)
    rig.current_loaded_models.clear()  # dropped from the list; the execution cache keeps the model
    # before the worker measured aimdo, they are pressure (the guard errs towards holding)
    assert rig.reading().ratio == pytest.approx(0.8)
    rig.between_prompts()
    reading = rig.reading()
    assert reading.ratio == pytest.approx(0.5)
    assert reading.idle_models_bytes == 0 and dict(reading.other_reclaimable) == {"dynamic_vram": 3 * GIB}
    assert reading.as_dict()["reclaimable"]["dynamic_vram_bytes"] == 3 * GIB
    # the measure without aimdo (the adapter's before) counts them as pressure
    assert loaded_models_bytes(rig.current_loaded_models, str(rig.device)) == 0


def test_aimdo_evicting_for_this_process_moves_used_and_evictable_together(rig):
    rig.load_dynamic(3 * GIB)
    rig.between_prompts()
    before = rig.reading()
    rig.aimdo.allocate(int(3.5 * GIB))  # the next prompt's working set: aimdo pages weights out for it
    rig.between_prompts()
    after = rig.reading()
    resident = rig.aimdo.vbars[0].loaded_size()
    assert 0 < resident < 3 * GIB  # paged out down to what the headroom allows
    assert after.idle_models_bytes == resident
    assert after.pressure_bytes == 5 * GIB + int(3.5 * GIB)  # foreign + the working set, nothing else
    assert before.pressure_bytes == 5 * GIB


def test_a_dynamic_and_a_classic_model_and_an_orphan_vbar_together(rig):
    classic = ClassicPatcher(rig.aimdo, rig.device, GIB // 2)
    rig.patchers.append(classic)
    rig.current_loaded_models.append(LoadedModel(classic))
    rig.load_dynamic(GIB)
    orphan = rig.load_dynamic(GIB)
    rig.current_loaded_models.pop(0)  # the last one loaded leaves the list
    rig.between_prompts()
    last_reading = rig.reading()
    assert last_reading.idle_models_bytes == GIB // 2 + GIB
    assert dict(last_reading.other_reclaimable)["dynamic_vram"] == orphan.loaded_size() == GIB
    assert last_reading.ratio == pytest.approx(0.5)


def test_unload_models_releases_the_listed_pages_and_the_neighbours_see_only_those(rig):
    rig.load_dynamic(2 * GIB)
    orphan = rig.load_dynamic(GIB)
    rig.current_loaded_models.pop(0)
    rig.between_prompts()
    rig.reading()
    queue = types.SimpleNamespace(currently_running={}, queue=[])
    assert mine_of(rig.guard, queue).idle_models_bytes == 2 * GIB  # the orphan is not released
    unload_all_models(rig.current_loaded_models)  # what a neighbour's request sets off
    rig.between_prompts()
    reading = rig.reading()
    assert rig.aimdo.usage == orphan.loaded_size() == GIB
    assert dict(reading.other_reclaimable)["dynamic_vram"] == GIB
    assert reading.idle_models_bytes == 0 and mine_of(rig.guard, queue).idle_models_bytes == 0


def test_the_vbar_list_is_walked_on_the_worker_thread_only(rig):
    rig.load_dynamic(GIB)
    rig.between_prompts()
    rig.guard.start()  # the poll thread reads the cached figure
    try:
        for _ in range(20):
            rig.guard.poll_once()
    finally:
        rig.guard.stop()
    assert rig.idle.residency.measured == 1
    assert rig.aimdo.violations == []


def test_without_aimdo_the_measure_is_the_loaded_models():
    """ComfyUI 0.3.75 (no comfy.memory_management, no comfy_aimdo): nothing changes."""
    aimdo = AimdoDevice(10 * GIB, 5 * GIB)
    device = Device(0)
    patcher = ClassicPatcher(aimdo, device, GIB)  # the execution cache's reference
    models = [LoadedModel(patcher)]
    idle = IdleModels(lambda: models, str(device), device.index, Aimdo())
    idle.measure_on_worker()
    assert idle.residency.bytes is None and idle() == GIB == loaded_models_bytes(models, str(device))
    assert idle.status()["active"] is False


def test_a_dead_weak_reference_counts_nothing(rig):
    patcher = rig.load_dynamic(GIB)
    rig.patchers.remove(patcher)
    rig.current_loaded_models[0]._model = lambda: None  # collected between two reads of the list
    assert rig.idle() == 0
    assert PAGE == 32 << 20
