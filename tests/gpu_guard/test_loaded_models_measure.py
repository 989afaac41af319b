"""The measure of ComfyUI's loaded models: one weakref read per model, and only models in the memory
the probe reads (a RAM probe never subtracts models that sit on a GPU)."""
from types import SimpleNamespace

from gpu_guard.comfy.comfy_memory import loaded_models_bytes, measured_device
from gpu_guard.comfy.compute_device import ComputeDevice
from gpu_guard.probes import FileProbe, RamProbe


class DyingLoadedModel:
    """A LoadedModel whose weakly referenced model is collected right after the first look."""

    def __init__(self, size):
        self.device = "cuda:0"
        self._reads = 0
        self._size = size

    @property
    def model(self):
        self._reads += 1
        return SimpleNamespace(loaded_size=lambda: self._size) if self._reads == 1 else None

    def model_loaded_memory(self):
        return self.model.loaded_size()


def live(size, device="cuda:0"):
    return SimpleNamespace(device=device, model=SimpleNamespace(loaded_size=lambda: size),
                           model_loaded_memory=lambda: size)


def test_a_model_collected_during_the_measure_costs_only_itself():
    models = [live(100), DyingLoadedModel(200), live(300), live(999, device="cpu")]
    assert loaded_models_bytes(models, "cuda:0") == 600


def test_a_ram_probe_does_not_count_models_on_a_gpu():
    gpu, cpu = ComputeDevice("cuda", 0, "cuda:0"), ComputeDevice("cpu", None, "cpu")
    assert measured_device(RamProbe(), gpu) is None
    assert loaded_models_bytes([live(5)], measured_device(RamProbe(), gpu)) == 0
    assert measured_device(RamProbe(), cpu) == "cpu"
    assert measured_device(FileProbe("x"), gpu) == "cuda:0"
