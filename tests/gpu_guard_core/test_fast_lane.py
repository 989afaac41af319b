"""The fast lane: while paused, a prompt whose estimate (plus margin) fits in free memory may run."""
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
def paused_at_90(make_guard, probe_file):
    """A guard paused with 10 GiB of 100 GiB free."""
    def make(**settings):
        guard = make_guard(**settings)
        probe_file.write(ratio=0.9)
        guard.poll_once()
        assert guard.state == "paused"
        return guard

    return make


def test_prompt_that_fits_with_margin_runs_fast(paused_at_90, sized_node):
    guard = paused_at_90(fast_lane_margin=0.25)
    verdict = guard.decide(QueueEntry("small", 1, graph(8)))  # 8 GiB * 1.25 = 10 GiB: fits exactly
    assert (verdict.kind, verdict.lane, verdict.estimated_bytes) == (RUN, LANE_FAST, 8 * GIB)
    assert guard.metrics.admitted.labels(LANE_FAST)._value.get() == 1


def test_prompt_that_does_not_fit_with_margin_is_held(paused_at_90, sized_node):
    guard = paused_at_90(fast_lane_margin=0.25)
    verdict = guard.decide(QueueEntry("big", 1, graph(8.5)))  # 8.5 * 1.25 > 10 GiB
    assert verdict.kind == HOLD and verdict.estimated_bytes == int(8.5 * GIB)
    assert guard.status()["held"][0]["estimated_bytes"] == int(8.5 * GIB)


def test_reclaimable_memory_counts_as_free_for_the_fast_lane(make_guard, probe_file, sized_node):
    guard = make_guard(fast_lane_margin=0)
    probe_file.write(used_bytes=96 * GIB, total_bytes=100 * GIB, reclaimable_bytes=4 * GIB)
    guard.poll_once()
    assert guard.state == "paused"
    assert guard.decide(QueueEntry("p", 1, graph(8))).lane == LANE_FAST


def test_unknown_node_is_never_fast(paused_at_90, sized_node):
    guard = paused_at_90()
    unknown = graph(0.001, {"4": {"class_type": "NodeWithoutEstimator", "inputs": {}}})
    assert guard.decide(QueueEntry("p", 1, unknown)).kind == HOLD


def test_one_fast_run_per_fresh_reading(paused_at_90, probe_file, sized_node):
    guard = paused_at_90()
    assert guard.decide(QueueEntry("a", 1, graph(1))).lane == LANE_FAST
    assert guard.decide(QueueEntry("b", 2, graph(1))).kind == HOLD  # must see what "a" took first
    guard.poll_once()
    assert guard.decide(QueueEntry("b", 2, graph(1))).lane == LANE_FAST


def test_fast_lane_can_be_switched_off(paused_at_90, sized_node):
    assert paused_at_90(fast_lane=False).decide(QueueEntry("a", 1, graph(1))).kind == HOLD


def test_no_fast_lane_while_failing_closed(make_guard, probe_file, sized_node):
    guard = make_guard(sensor_failures=1, sensor_policy="closed")
    probe_file.write(ratio=0.1)
    guard.poll_once()
    probe_file.remove()
    guard.poll_once()
    assert guard.state == "paused"
    assert guard.decide(QueueEntry("a", 1, graph(1))).kind == HOLD  # the last reading is stale
