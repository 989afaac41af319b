"""Matching torch's CUDA device to NVML's numbering by UUID, then by PCI address."""
import pytest

from gpu_guard.probes import DeviceIds, ProbeError, match_nvml_index, normalize_uuid

NVML = [
    DeviceIds("GPU-aaaaaaaa-0000-0000-0000-000000000001", 0, 0x3B, 0),
    DeviceIds("GPU-bbbbbbbb-0000-0000-0000-000000000002", 0, 0x5E, 0),
    DeviceIds(b"GPU-cccccccc-0000-0000-0000-000000000003", 0, 0x86, 0),
]


def test_uuid_prefix_and_case_are_ignored():
    assert normalize_uuid("GPU-ABCD") == "abcd"
    assert normalize_uuid(b"GPU-abcd") == "abcd"
    assert normalize_uuid("MIG-abcd") == "abcd"
    assert normalize_uuid("") is None
    assert normalize_uuid(None) is None


def test_match_by_uuid_even_when_the_indices_differ():
    # CUDA_VISIBLE_DEVICES=2 makes NVML's device 2 torch's cuda:0.
    cuda0 = DeviceIds("cccccccc-0000-0000-0000-000000000003", 0, 0x86, 0)
    assert match_nvml_index(cuda0, NVML) == 2


def test_uuid_wins_over_a_conflicting_pci_address():
    cuda = DeviceIds("bbbbbbbb-0000-0000-0000-000000000002", 0, 0x3B, 0)
    assert match_nvml_index(cuda, NVML) == 1


def test_match_by_pci_address_without_uuid():
    assert match_nvml_index(DeviceIds(None, 0, 0x5E, 0), NVML) == 1


def test_pci_fallback_when_the_uuid_is_unknown_to_nvml():
    assert match_nvml_index(DeviceIds("dddddddd", 0, 0x86, 0), NVML) == 2


def test_no_match_names_both_sides_and_the_fix():
    with pytest.raises(ProbeError) as info:
        match_nvml_index(DeviceIds("dddddddd", 0, 0x99, 0), NVML)
    message = str(info.value)
    assert "dddddddd" in message and "0000:99:00" in message
    assert "GPU-aaaaaaaa" in message and "GPU_GUARD_PROBE=torch" in message


def test_ambiguous_pci_address_is_not_guessed():
    twins = [DeviceIds(None, 0, 1, 0), DeviceIds(None, 0, 1, 0)]
    with pytest.raises(ProbeError):
        match_nvml_index(DeviceIds(None, 0, 1, 0), twins)
