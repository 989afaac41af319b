"""The file-driven probe and every malformed file it must reject with a clear message."""
import pytest

from gpu_guard.probes import FileProbe, ProbeError, make_probe


def read(probe_file):
    return FileProbe(probe_file.path, wall=lambda: 5.0).read()


def test_reads_used_and_total(probe_file):
    probe_file.write(used_bytes=30, total_bytes=100)
    reading = read(probe_file)
    assert (reading.used_bytes, reading.total_bytes, reading.reclaimable_bytes, reading.at) == (30, 100, 0, 5.0)


def test_reads_again_at_every_call(probe_file):
    probe = FileProbe(probe_file.path)
    probe_file.write(used_bytes=30, total_bytes=100)
    assert probe.read().used_bytes == 30
    probe_file.write(used_bytes=60, total_bytes=100)
    assert probe.read().used_bytes == 60


def test_optional_reclaimable_bytes(probe_file):
    probe_file.write(used_bytes=90, total_bytes=100, reclaimable_bytes=20)
    assert read(probe_file).ratio == pytest.approx(0.7)


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"used_bytes": 1}', "lacks total_bytes"),
    ('{"total_bytes": 1}', "lacks used_bytes"),
    ('{"used_bytes": -1, "total_bytes": 100}', "used_bytes must not be negative"),
    ('{"used_bytes": 1, "total_bytes": -100}', "total_bytes must not be negative"),
    ('{"used_bytes": 101, "total_bytes": 100}', r"used_bytes \(101\) exceeds total_bytes \(100\)"),
    ('{"used_bytes": 0, "total_bytes": 0}', "total_bytes must be > 0"),
    ('{"used_bytes": "5", "total_bytes": 100}', "used_bytes must be a whole number"),
    ('{"used_bytes": true, "total_bytes": 100}', "used_bytes must be a whole number"),
    ('{"used_bytes": 1.5, "total_bytes": 100}', "used_bytes must be a whole number"),
    ('{"used_bytes": 50, "total_bytes": 100, "reclaimable_bytes": 60}', "reclaimable_bytes \\(60\\) exceeds"),
])
def test_malformed_file_is_a_clear_probe_error(probe_file, content, message):
    probe_file.write_raw(content)
    with pytest.raises(ProbeError, match=message) as info:
        read(probe_file)
    assert probe_file.path in str(info.value)


def test_missing_file_says_how_to_create_it(probe_file):
    with pytest.raises(ProbeError, match="does not exist; create it with"):
        read(probe_file)


def test_make_probe_choices(probe_file):
    probe, note = make_probe("file:" + probe_file.path)
    assert isinstance(probe, FileProbe) and note is None
    assert make_probe("off")[0] is None
    assert make_probe("ram")[0].read().total_bytes > 0


def test_auto_on_a_host_without_gpu_is_off_with_the_reason():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA device; auto picks a GPU probe here")
    probe, note = make_probe("auto")
    assert probe is None
    assert "the guard is off on this host" in note and "torch sees no CUDA device" in note


def test_explicit_gpu_probe_that_cannot_start_fails_every_read():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA device")
    probe, note = make_probe("torch")
    assert "could not start" in note
    with pytest.raises(ProbeError, match="no CUDA device"):
        probe.read()
