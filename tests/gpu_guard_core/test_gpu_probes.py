"""The NVML and torch probes' wiring, on stand-ins for the driver (this suite needs no GPU).

The stand-ins replace only the calls the probes make (pynvml's device queries, torch.cuda's device
queries); the probes' own code - device matching, the reclaimable measure, error handling - runs as is.
"""
import sys
import types

import pytest

from gpu_guard.probes import ProbeError, make_probe
from tests.gpu_guard_core.nvml_stand_in import GIB, Gpu, StandInNvml, pynvml

torch = pytest.importorskip("torch")


def FakeNvml(used=(10 * GIB, 30 * GIB), fail_read=False):
    """Two GPUs in NVML's order; the one torch uses is NVML's second."""
    lost = {"nvmlDeviceGetMemoryInfo": pynvml.NVML_ERROR_GPU_IS_LOST} if fail_read else {}
    return StandInNvml([Gpu("GPU-11111111-aaaa", 0x3B, used[0], fails=dict(lost)),
                        Gpu("GPU-22222222-bbbb", 0x86, used[1], fails=dict(lost))])


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch sees one CUDA device: NVML's second GPU; its cache holds 4 GiB reserved, 1 GiB active."""
    props = types.SimpleNamespace(uuid="22222222-bbbb", pci_domain_id=0, pci_bus_id=0x86, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda i: {"reserved_bytes.all.current": 4 * GIB,
                                                               "active_bytes.all.current": 1 * GIB})
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (50 * GIB, 80 * GIB))
    return props


def test_nvml_probe_reads_the_device_torch_uses(monkeypatch, fake_cuda):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    probe, note = make_probe("nvml")
    assert note is None and probe.name == "nvml:1 (cuda:0)"
    reading = probe.read()
    assert (reading.used_bytes, reading.total_bytes, reading.reclaimable_bytes) == (30 * GIB, 80 * GIB, 3 * GIB)
    assert reading.ratio == pytest.approx(27 / 80)


def test_auto_prefers_nvml(monkeypatch, fake_cuda):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    assert make_probe("auto")[0].name.startswith("nvml:")


def test_torch_probe_uses_mem_get_info(fake_cuda):
    probe, note = make_probe("torch")
    reading = probe.read()
    assert probe.name == "torch:cuda:0"
    assert (reading.used_bytes, reading.total_bytes, reading.reclaimable_bytes) == (30 * GIB, 80 * GIB, 3 * GIB)


def test_no_reclaimable_figure_before_cuda_is_initialised(monkeypatch, fake_cuda):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert make_probe("torch")[0].read().reclaimable_bytes == 0


def test_auto_falls_back_to_torch_when_nvml_cannot_match(monkeypatch, fake_cuda):
    fake_cuda.uuid, fake_cuda.pci_bus_id = "99999999", 0x01
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    probe, note = make_probe("auto")
    assert probe.name == "torch:cuda:0"
    assert "no NVML device matches the CUDA device" in note


def test_a_driver_failure_during_a_read_is_a_probe_error(monkeypatch, fake_cuda):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail_read=True))
    probe, _ = make_probe("nvml")
    with pytest.raises(ProbeError, match="nvmlDeviceGetMemoryInfo failed: GPU is lost"):
        probe.read()
