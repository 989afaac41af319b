"""The fast lane: while paused, a prompt whose estimate (plus margin) keeps the pressure under pause_at may run."""
import pytest

from gpu_guard import HOLD, LANE_FAST, RUN, QueueEntry, estimators

GIB = 1 << 30


@pytest.fixture
def sized_node():
    """A node class whose estimator returns its "gib" input in bytes."""
    estimators.register("TestSizedNode", lambda inputs, prompt: int(inputs["gib"] * GIB))
    yield "TestSizedNode"
    estimators.unregister("TestSizedNode")


def graph(gib, extra=None):
    nodes = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
             "2": {"class_type": "TestSizedNode", "inputs": {"gib": gib, "image": ["1", 0]}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}
    nodes.update(extra or {})
    return nodes


@pytest.fixture
def paused_in_band(make_guard, probe_file):
    """A guard that paused at 90 % and now reads 80 % pressure of 100 GiB: still paused (hysteresis),
    5 GiB below the pause mark."""
    def make(**settings):
        guard = make_guard(**settings)
        probe_file.write(ratio=0.9)
        guard.poll_once()
        probe_file.write(ratio=0.8)
        guard.poll_once()
        assert guard.state == "paused"
        return guard

    return make


def test_prompt_that_stays_under_the_pause_mark_with_margin_runs_fast(paused_in_band, sized_node):
    guard = paused_in_band(fast_lane_margin=0.25)
    verdict = guard.decide(QueueEntry("small", 1, graph(3.9)))  # 80 + 3.9 * 1.25 = 84.9 GiB < 85 GiB
    assert (verdict.kind, verdict.lane, verdict.estimated_bytes) == (RUN, LANE_FAST, int(3.9 * GIB))
    assert guard.metrics.admitted.labels(LANE_FAST)._value.get() == 1


def test_prompt_that_would_reach_the_pause_mark_is_held(paused_in_band, sized_node):
    guard = paused_in_band(fast_lane_margin=0.25)
    verdict = guard.decide(QueueEntry("big", 1, graph(4)))  # 80 + 4 * 1.25 = 85 GiB: not under pause_at
    assert verdict.kind == HOLD and verdict.estimated_bytes == 4 * GIB
    assert guard.status()["held"][0]["estimated_bytes"] == 4 * GIB


def test_nothing_runs_fast_above_the_pause_mark_even_if_it_fits_in_free_memory(make_guard, probe_file,
                                                                               sized_node):
    # 10 GiB free at 90 %: a 1 GiB prompt fits in the free memory, but would keep the GPU over the mark
    guard = make_guard(fast_lane_margin=0)
    probe_file.write(ratio=0.9)
    guard.poll_once()
    assert guard.decide(QueueEntry("p", 1, graph(1))).kind == HOLD


def test_reclaimable_memory_does_not_count_as_pressure_for_the_fast_lane(make_guard, probe_file, sized_node):
    guard = make_guard(fast_lane_margin=0)
    guard.set_idle_models_source(lambda: 6 * GIB)  # ComfyUI's idle models: evictable by ComfyUI itself
    probe_file.write(used_bytes=96 * GIB, total_bytes=100 * GIB, reclaimable_bytes=4 * GIB)
    guard.poll_once()  # pressure 96 - 4 - 6 = 86 GiB: paused
    assert guard.state == "paused"
    probe_file.write(used_bytes=92 * GIB, total_bytes=100 * GIB, reclaimable_bytes=4 * GIB)
    guard.poll_once()  # pressure 82 GiB: still paused, 3 GiB under the mark
    assert guard.reading.pressure_bytes == 82 * GIB
    assert guard.decide(QueueEntry("p", 1, graph(2.9))).lane == LANE_FAST


def test_the_head_of_the_held_queue_is_not_overtaken_after_max_overtake(paused_in_band, sized_node, clock):
    guard = paused_in_band(fast_lane_margin=0, fast_lane_max_overtake_s=60)
    big, small = QueueEntry("big", 1, graph(50)), QueueEntry("small", 2, graph(1))
    guard.note_pending([big, small])
    clock.advance(59)
    assert guard.decide(small).lane == LANE_FAST  # the head has waited 59 s: may still be overtaken
    guard.note_pending([big, QueueEntry("small2", 3, graph(1))])
    clock.advance(2)
    guard.poll_once()  # a fresh reading
    assert guard.decide(QueueEntry("small2", 3, graph(1))).kind == HOLD  # the head waited 61 s


def test_no_overtake_limit_when_max_overtake_is_zero(paused_in_band, sized_node, clock):
    guard = paused_in_band(fast_lane_margin=0, fast_lane_max_overtake_s=0)
    guard.note_pending([QueueEntry("big", 1, graph(50)), QueueEntry("small", 2, graph(1))])
    clock.advance(3600)
    assert guard.decide(QueueEntry("small", 2, graph(1))).lane == LANE_FAST


def test_unknown_node_is_never_fast(paused_in_band, sized_node):
    guard = paused_in_band()
    unknown = graph(0.001, {"4": {"class_type": "NodeWithoutEstimator", "inputs": {}}})
    assert guard.decide(QueueEntry("p", 1, unknown)).kind == HOLD


def test_one_fast_run_per_reading(paused_in_band, probe_file, sized_node):
    # Every pass reads afresh; when the read fails (below sensor_failures) the pass has only the last
    # good reading, which cannot show what the fast prompt it let through takes: it lets one through.
    guard = paused_in_band(sensor_failures=3)
    probe_file.remove()
    assert guard.decide(QueueEntry("a", 1, graph(1))).lane == LANE_FAST
    assert guard.decide(QueueEntry("b", 2, graph(1))).kind == HOLD  # must see what "a" took first
    probe_file.write(ratio=0.8)
    assert guard.decide(QueueEntry("b", 2, graph(1))).lane == LANE_FAST  # a new reading


def test_fast_lane_can_be_switched_off(paused_in_band, sized_node):
    assert paused_in_band(fast_lane=False).decide(QueueEntry("a", 1, graph(1))).kind == HOLD


def test_no_fast_lane_while_failing_closed(make_guard, probe_file, sized_node):
    guard = make_guard(sensor_failures=1, sensor_policy="closed")
    probe_file.write(ratio=0.1)
    guard.poll_once()
    probe_file.remove()
    guard.poll_once()
    assert guard.state == "paused"
    assert guard.decide(QueueEntry("a", 1, graph(1))).kind == HOLD  # the last reading is stale
