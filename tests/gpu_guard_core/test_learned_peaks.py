"""Peaks learned per workflow (gpu_guard.learned_peaks): the signature, the bounded table and its file,
and the figure the fast lane uses (issue 19)."""
import json

import pytest

from gpu_guard import HOLD, LANE_FAST, QueueEntry, estimators, learned_peaks
from gpu_guard.learned_peaks import LearnedPeaks, signature
from gpu_guard.oom_rescue import final_words, fits, oom_error, tried_bytes
from gpu_guard.probes import Reading

GIB = 1 << 30


def graph(size=512, seed=1, text="a photo of a cat", model="ddcolor_paper_tiny.pth"):
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
            "2": {"class_type": "TestSizedNode", "inputs": {"gib": 1, "size": size, "seed": seed, "text": text,
                                                            "model": model, "image": ["1", 0]}}}


def test_the_signature_follows_what_drives_memory_only():
    base = signature(graph())
    assert base == signature(graph(seed=99)) == signature(graph(text="another long caption here"))
    assert base != signature(graph(size=1024))
    assert base != signature(graph(model="ddcolor_paper.pth"))
    reordered = dict(reversed(list(graph().items())))
    assert signature(reordered) == base
    assert signature({}) is None and signature({"1": {"inputs": {}}}) is None and signature("x") is None


def test_the_table_is_a_bounded_lru_persisted_with_hashes_only(tmp_path):
    path = tmp_path / learned_peaks.FILE_NAME
    table = LearnedPeaks(str(path), max_entries=2)
    table.record("a", 100)
    table.record("b", 200)
    assert table.get("a") == 100  # a is now the most recently used
    table.record("c", 300)  # b goes
    assert (table.get("b"), len(table)) == (None, 2)
    assert table.record("a", 50) == 50  # a success: the latest measure
    assert table.record("a", 40, at_least=True) == 50  # an OOM never lowers it
    again = LearnedPeaks(str(path), max_entries=10).load()
    assert again.get("a") == 50 and again.get("c") == 300 and again.get("b") is None
    assert set(json.loads(path.read_text())) == {"version", "entries"}


def test_a_broken_file_starts_empty_with_a_note(tmp_path):
    path = tmp_path / learned_peaks.FILE_NAME
    path.write_text("{not json")
    table = LearnedPeaks(str(path)).load()
    assert len(table) == 0 and "could not be read" in table.note
    table.record("a", 1)
    assert LearnedPeaks(str(path)).load().get("a") == 1


@pytest.fixture
def sized_node():
    estimators.register("TestSizedNode", lambda inputs, prompt: int(inputs["gib"] * GIB))
    table = LearnedPeaks(None)
    learned_peaks.install(table)
    yield table
    learned_peaks.install(None)
    estimators.unregister("TestSizedNode")


def test_need_is_the_learned_peak_else_the_estimate(sized_node):
    assert learned_peaks.need_of(graph()) == (GIB, learned_peaks.ESTIMATED)
    sized_node.record(signature(graph()), 7 * GIB)
    assert learned_peaks.need_of(graph()) == (7 * GIB, learned_peaks.LEARNED)
    assert learned_peaks.need_of({"1": {"class_type": "NoEstimate", "inputs": {}}}) == (None, learned_peaks.UNKNOWN)


def test_the_fast_lane_uses_the_learned_peak(make_guard, probe_file, sized_node):
    guard = make_guard(fast_lane_margin=0)
    probe_file.write(ratio=0.9)
    guard.poll_once()
    probe_file.write(ratio=0.8)
    guard.poll_once()
    assert guard.state == "paused"
    assert guard.decide(QueueEntry("by-estimate", 1, graph(size=256))).lane == LANE_FAST  # 1 GiB fits under 85 %
    sized_node.record(signature(graph()), 7 * GIB)  # 80 + 7 GiB: over the mark
    verdict = guard.decide(QueueEntry("learned", 2, graph()))
    assert verdict.kind == HOLD
    held = guard.status()["held"][0]
    assert (held["estimated_bytes"], held["learned_bytes"], held["need_source"]) == (7 * GIB, 7 * GIB, "learned")


def test_oom_words_and_figures():
    messages = [("execution_start", {}), ("execution_error", {"exception_type": "torch.OutOfMemoryError",
                                                               "exception_message": "Tried to allocate 2.00 GiB"})]
    assert oom_error(messages, frozenset({"torch.OutOfMemoryError"}))["exception_type"] == "torch.OutOfMemoryError"
    assert oom_error(messages, frozenset({"other"})) is None
    assert tried_bytes("CUDA out of memory. Tried to allocate 2.00 GiB") == 2 * GIB
    assert tried_bytes("no figure") == 0
    reading = Reading(3 * 10**9, 10 * 10**9, 0, 0.0)
    assert fits(7 * 10**9, reading) and not fits(7 * 10**9 + 1, reading) and fits(None, reading)
    text = final_words(9 * 10**9, learned_peaks.LEARNED, reading, 3, True)
    assert text.startswith("This prompt ran out of GPU memory: it needs about 9.0 GB (learned from its runs), "
                           "and the GPU had 7.0 GB free of 10.0 GB. It ran 3 times")
    assert "(oom_rescue is off)" in final_words(None, learned_peaks.UNKNOWN, None, 1, False)
