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
