"""A ComfyUI that does not execute on a CUDA GPU (--cpu, MPS, XPU, DirectML) on a host that has one: with
the auto probe the guard is off and says why, and it never creates a CUDA context.

Stand-ins: ComfyUI's `comfy.model_management` and `folder_paths` (only what the adapter reads), pynvml
(a host with a GPU), and torch.cuda calls that would create a context, which record the call and fail.
"""
import sys
import types

import pytest

import gpu_guard.comfy as comfy_adapter
from tests.gpu_guard_core.nvml_stand_in import GIB, Gpu, StandInNvml
from tests.harness.probe_file import ProbeFile

torch = pytest.importorskip("torch")

CONTEXT_CALLS = ("init", "_lazy_init", "current_device", "get_device_properties", "mem_get_info",
                 "memory_stats", "set_device", "synchronize", "device_count")


@pytest.fixture
def host_with_a_gpu(monkeypatch, tmp_path):
    """torch reports a CUDA GPU, NVML sees one; any call that would create a CUDA context is recorded."""
    made_context = []

    def trap(name):
        def call(*args, **kwargs):
            made_context.append(name)
            raise AssertionError(f"torch.cuda.{name} would create a CUDA context")
        return call

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in CONTEXT_CALLS:
        monkeypatch.setattr(torch.cuda, name, trap(name))
    monkeypatch.setitem(sys.modules, "pynvml", StandInNvml([Gpu("GPU-11111111-aaaa", 0x3B, 1 * GIB)]))
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_user_directory = lambda: str(tmp_path)
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    return made_context


def comfy_on(monkeypatch, device):
    """ComfyUI's model management, executing on `device`."""
    package = types.ModuleType("comfy")
    model_management = types.ModuleType("comfy.model_management")
    model_management.get_torch_device = lambda: device
    package.model_management = model_management
    monkeypatch.setitem(sys.modules, "comfy", package)
    monkeypatch.setitem(sys.modules, "comfy.model_management", model_management)


@pytest.mark.parametrize("device", [torch.device("cpu"), torch.device("mps"), torch.device("xpu", 0),
                                    torch.device("privateuseone", 0)], ids=str)
def test_auto_turns_the_guard_off_without_a_cuda_context(monkeypatch, host_with_a_gpu, device):
    comfy_on(monkeypatch, device)
    guard = comfy_adapter.build_guard(environ={})
    guard.start()
    try:
        status = guard.status()
    finally:
        guard.stop()
    assert host_with_a_gpu == [], f"the guard called torch.cuda.{host_with_a_gpu[0]}"
    assert not torch.cuda.is_initialized()
    assert status["state"] == "off"
    note = status["probe"]["note"]
    assert note.startswith(f"ComfyUI executes on {device.type}, not on a CUDA GPU") and "GPU_GUARD_PROBE" in note
    ok, reason = guard.ready()
    assert ok and reason.startswith("guard off: ComfyUI executes on")


def test_an_explicit_probe_guards_a_cpu_comfyui(monkeypatch, host_with_a_gpu, tmp_path):
    comfy_on(monkeypatch, torch.device("cpu"))
    probe = ProbeFile(tmp_path / "probe.json")
    probe.write_ratio(0.9)
    guard = comfy_adapter.build_guard(environ={"GPU_GUARD_PROBE": probe.spec})
    guard.poll_once()
    assert guard.state == "paused" and guard.status()["probe"]["note"] is None
    assert host_with_a_gpu == []


def test_on_cuda_the_probe_reads_the_device_comfyui_executes_on(monkeypatch):
    """cuda:1 for ComfyUI is NVML's first GPU here (CUDA_VISIBLE_DEVICES reorders them)."""
    comfy_on(monkeypatch, torch.device("cuda", 1))
    monkeypatch.setitem(sys.modules, "pynvml", StandInNvml([Gpu("GPU-11111111-aaaa", 0x3B, 7 * GIB),
                                                           Gpu("GPU-22222222-bbbb", 0x86, 1 * GIB)]))
    props = {0: types.SimpleNamespace(uuid="22222222-bbbb", pci_domain_id=0, pci_bus_id=0x86, pci_device_id=0),
             1: types.SimpleNamespace(uuid="11111111-aaaa", pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props[i])
    guard = comfy_adapter.build_guard(environ={})
    guard.poll_once()
    status = guard.status()
    assert status["probe"]["name"] == "nvml:0 (cuda:1)"
    assert status["reading"]["used_bytes"] == 7 * GIB
