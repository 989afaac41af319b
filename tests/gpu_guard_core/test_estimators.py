"""The estimators registry: sum over nodes, unknown means unknown, broken estimators are contained."""
import pytest

from gpu_guard import estimators


@pytest.fixture
def registered():
    names = []

    def register(name, fn):
        estimators.register(name, fn)
        names.append(name)

    yield register
    for name in names:
        estimators.unregister(name)


def test_prompt_estimate_is_the_sum_over_its_nodes(registered):
    registered("TestA", lambda inputs, prompt: 100)
    registered("TestB", lambda inputs, prompt: inputs["n"] * 10)
    prompt = {"1": {"class_type": "TestA", "inputs": {}}, "2": {"class_type": "TestB", "inputs": {"n": 3}},
              "3": {"class_type": "SaveImage", "inputs": {}}}
    assert estimators.estimate_prompt(prompt) == 130


def test_estimator_sees_the_whole_prompt_to_follow_links(registered):
    def batch_of_source(inputs, prompt):
        source_id = inputs["images"][0]
        return prompt[source_id]["inputs"]["batch"] * 1000

    registered("TestUsesLink", batch_of_source)
    prompt = {"1": {"class_type": "TestA2", "inputs": {"batch": 4}},
              "2": {"class_type": "TestUsesLink", "inputs": {"images": ["1", 0]}}}
    registered("TestA2", lambda inputs, prompt: 0)
    assert estimators.estimate_prompt(prompt) == 4000


def test_core_image_io_nodes_cost_nothing():
    for name in estimators.CPU_ONLY_NODES:
        assert estimators.estimate_node(name, {}, {}) == 0


@pytest.mark.parametrize("result", [None, -1, "big", True])
def test_estimator_that_cannot_tell_makes_the_prompt_unknown(registered, result):
    registered("TestUnsure", lambda inputs, prompt: result)
    assert estimators.estimate_prompt({"1": {"class_type": "TestUnsure", "inputs": {}}}) is None


def test_estimator_that_raises_makes_the_prompt_unknown(registered, caplog):
    registered("TestBroken", lambda inputs, prompt: 1 / 0)
    assert estimators.estimate_prompt({"1": {"class_type": "TestBroken", "inputs": {}}}) is None
    assert "estimator for TestBroken failed" in caplog.text


@pytest.mark.parametrize("prompt", [None, {}, {"1": "node"}, {"1": {"inputs": {}}}, [1, 2]])
def test_malformed_prompt_is_unknown(prompt):
    assert estimators.estimate_prompt(prompt) is None


def test_register_rejects_bad_arguments():
    with pytest.raises(ValueError, match="class_type"):
        estimators.register("", lambda i, p: 0)
    with pytest.raises(TypeError, match="must be callable"):
        estimators.register("TestX", 42)


def test_register_replaces_and_unregister_removes(registered):
    registered("TestR", lambda inputs, prompt: 1)
    registered("TestR", lambda inputs, prompt: 2)
    assert estimators.estimate_node("TestR", {}, {}) == 2
    assert "TestR" in estimators.registered()
    estimators.unregister("TestR")
    assert estimators.estimate_node("TestR", {}, {}) is None


class SizedNode:
    """A node class of another pack, carrying the estimator contract as a classmethod."""

    @classmethod
    def VRAM_ESTIMATE(cls, inputs, prompt):
        return inputs["mb"] * 1_000_000


class PlainNode:
    """A node class without an estimate."""


@pytest.fixture
def node_classes():
    classes = {"OtherPackSized": SizedNode, "OtherPackPlain": PlainNode}
    estimators.set_class_lookup(classes.get)
    yield classes
    estimators.set_class_lookup(None)


def test_the_node_class_carries_its_own_estimate(node_classes):
    prompt = {"1": {"class_type": "OtherPackSized", "inputs": {"mb": 300}},
              "2": {"class_type": "SaveImage", "inputs": {}}}
    assert estimators.estimate_prompt(prompt) == 300_000_000


def test_a_class_without_the_attribute_is_unknown(node_classes):
    assert estimators.estimate_prompt({"1": {"class_type": "OtherPackPlain", "inputs": {}}}) is None


def test_the_class_attribute_wins_over_the_table(node_classes, registered):
    registered("OtherPackSized", lambda inputs, prompt: 1)
    assert estimators.estimate_node("OtherPackSized", {"mb": 2}, {}) == 2_000_000


def test_a_broken_class_lookup_only_costs_the_estimate(registered):
    def broken(class_type):
        raise RuntimeError("lookup failed")

    estimators.set_class_lookup(broken)
    try:
        registered("TestStillInTable", lambda inputs, prompt: 5)
        assert estimators.estimate_node("TestStillInTable", {}, {}) == 5
        assert estimators.estimate_node("Unknown", {}, {}) is None
    finally:
        estimators.set_class_lookup(None)
