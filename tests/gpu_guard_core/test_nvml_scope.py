"""Which NVML device the probe reads: MIG instances through NVML's MIG handles, and GPUs that NVML
cannot identify are skipped instead of failing the probe (stand-in pynvml, see nvml_stand_in)."""
import sys
import types

import pytest

from gpu_guard.probes import ProbeError, make_probe
from tests.gpu_guard_core.nvml_stand_in import GIB, Gpu, Mig, StandInNvml, pynvml

torch = pytest.importorskip("torch")

MIG_A = "MIG-aaaaaaaa-0000-1111-2222-333333333333"
MIG_B = "MIG-bbbbbbbb-0000-1111-2222-333333333333"
LOST = pynvml.NVML_ERROR_GPU_IS_LOST


@pytest.fixture
def cuda_device(monkeypatch):
    """torch sees one CUDA device, cuda:0; set .uuid and .pci_bus_id to say which one it is."""
    props = types.SimpleNamespace(uuid=None, pci_domain_id=0, pci_bus_id=None, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (15 * GIB, 20 * GIB))
    return props


def install(monkeypatch, gpus):
    nvml = StandInNvml(gpus)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    return nvml


def mig_gpu():
    """An 80 GiB GPU in MIG mode: slot 0 and slot 2 hold 20 GiB instances, slot 1 is empty."""
    return Gpu("GPU-99999999-0000-1111-2222-333333333333", 0x3B, used=70 * GIB,
               mig=[Mig(MIG_A, 2 * GIB, 20 * GIB), None, Mig(MIG_B, 5 * GIB, 20 * GIB)])


# -- MIG ------------------------------------------------------------------------------------------------

def test_a_mig_instance_is_read_through_its_mig_handle(monkeypatch, cuda_device):
    # torch's props.uuid of a MIG slice is the MIG device's UUID; its PCI address is the parent's
    cuda_device.uuid, cuda_device.pci_bus_id = MIG_B[len("MIG-"):], 0x3B
    install(monkeypatch, [mig_gpu()])
    probe, note = make_probe("nvml")
    assert note is None and probe.name == "nvml:0/mig2 (cuda:0)"
    reading = probe.read()
    assert (reading.used_bytes, reading.total_bytes) == (5 * GIB, 20 * GIB), "read the MIG slice, not the GPU"


def test_mig_on_a_second_gpu_next_to_a_plain_one(monkeypatch, cuda_device):
    cuda_device.uuid, cuda_device.pci_bus_id = MIG_A[len("MIG-"):], 0x3B
    install(monkeypatch, [Gpu("GPU-11111111-aaaa", 0x86, 1 * GIB), mig_gpu()])
    probe, _ = make_probe("nvml")
    assert probe.name == "nvml:1/mig0 (cuda:0)"
    assert probe.read().used_bytes == 2 * GIB


def test_a_mig_gpu_is_never_matched_by_its_pci_address(monkeypatch, cuda_device):
    """A UUID that matches no MIG instance must not fall back to the parent GPU's address, whose memory
    is the whole GPU: the nvml probe refuses, and auto uses torch (which reads the slice)."""
    cuda_device.uuid, cuda_device.pci_bus_id = "cccccccc-0000-1111-2222-333333333333", 0x3B
    install(monkeypatch, [mig_gpu()])
    with pytest.raises(ProbeError, match="no NVML device matches the CUDA device"):
        from gpu_guard.probes.cuda import NvmlProbe
        NvmlProbe()
    probe, note = make_probe("auto")
    assert probe.name == "torch:cuda:0" and "no NVML device matches" in note
    assert probe.read().total_bytes == 20 * GIB


def test_a_gpu_with_mig_disabled_is_an_ordinary_gpu(monkeypatch, cuda_device):
    cuda_device.uuid, cuda_device.pci_bus_id = "99999999-0000-1111-2222-333333333333", 0x3B
    gpu = mig_gpu()
    gpu.mig_mode_off = True
    install(monkeypatch, [gpu])
    probe, _ = make_probe("nvml")
    assert probe.name == "nvml:0 (cuda:0)" and probe.read().total_bytes == 80 * GIB


# -- GPUs NVML cannot identify ----------------------------------------------------------------------------

def test_a_gpu_that_fails_uuid_and_pci_is_skipped(monkeypatch, cuda_device):
    cuda_device.uuid, cuda_device.pci_bus_id = "22222222-bbbb", 0x86
    broken = Gpu("GPU-11111111-aaaa", 0x3B, 1 * GIB,
                 fails={"nvmlDeviceGetUUID": LOST, "nvmlDeviceGetPciInfo": LOST})
    install(monkeypatch, [broken, Gpu("GPU-22222222-bbbb", 0x86, 30 * GIB)])
    probe, note = make_probe("nvml")
    assert probe.name == "nvml:1 (cuda:0)" and probe.read().used_bytes == 30 * GIB
    assert note == ("NVML: GPU 0 skipped: nvmlDeviceGetUUID failed (GPU is lost); "
                    "nvmlDeviceGetPciInfo failed (GPU is lost)")


def test_a_gpu_whose_handle_cannot_be_had_is_skipped(monkeypatch, cuda_device):
    cuda_device.uuid, cuda_device.pci_bus_id = "22222222-bbbb", 0x86
    install(monkeypatch, [Gpu("GPU-11111111-aaaa", 0x3B, 1 * GIB,
                              fails={"nvmlDeviceGetHandleByIndex": pynvml.NVML_ERROR_NO_PERMISSION}),
                          Gpu("GPU-22222222-bbbb", 0x86, 30 * GIB)])
    probe, note = make_probe("auto")
    assert probe.name == "nvml:1 (cuda:0)"
    assert "GPU 0 skipped: nvmlDeviceGetHandleByIndex failed (Insufficient Permissions)" in note


def test_one_readable_id_is_enough_to_match(monkeypatch, cuda_device):
    """The device torch uses fails GetUUID: its PCI address still finds it; the other fails GetPciInfo
    and is still known by its UUID."""
    cuda_device.uuid, cuda_device.pci_bus_id = "22222222-bbbb", 0x86
    install(monkeypatch, [Gpu("GPU-11111111-aaaa", 0x3B, 1 * GIB, fails={"nvmlDeviceGetPciInfo": LOST}),
                          Gpu("GPU-22222222-bbbb", 0x86, 30 * GIB, fails={"nvmlDeviceGetUUID": LOST})])
    probe, note = make_probe("nvml")
    assert probe.name == "nvml:1 (cuda:0)" and note is None


def test_when_no_device_matches_the_error_says_what_was_skipped(monkeypatch, cuda_device):
    cuda_device.uuid, cuda_device.pci_bus_id = "11111111-aaaa", 0x3B
    install(monkeypatch, [Gpu("GPU-11111111-aaaa", 0x3B, 1 * GIB,
                              fails={"nvmlDeviceGetUUID": LOST, "nvmlDeviceGetPciInfo": LOST})])
    probe, note = make_probe("nvml")
    with pytest.raises(ProbeError, match="GPU 0 skipped: nvmlDeviceGetUUID failed"):
        probe.read()
    assert "GPU_GUARD_PROBE=torch" in note
