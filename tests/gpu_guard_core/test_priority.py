"""Priority classes in the core: settings, numbers that sort ahead, per-class bounds, aging."""
import pytest

from gpu_guard import QueueEntry
from gpu_guard import config as cfg
from gpu_guard.pending import as_pending
from gpu_guard.priority import BAND, Lanes, parse_classes, shown_classes, token_sha256

VIP_TOKEN = "vip-token-0123456789"
TEST_TOKEN = "internal-tests-0123456789"
CLASSES = [{"name": "vip", "token": VIP_TOKEN, "max_held": 2}, {"name": "tests", "token_sha256": token_sha256(TEST_TOKEN)}]


def test_classes_are_parsed_with_tokens_hashed_and_shown_without_them():
    classes = parse_classes(CLASSES, False)
    assert classes == ({"name": "vip", "token_sha256": token_sha256(VIP_TOKEN), "max_held": 2},
                       {"name": "tests", "token_sha256": token_sha256(TEST_TOKEN), "max_held": 0})
    assert VIP_TOKEN not in repr(classes)
    assert shown_classes(classes)[0] == {"name": "vip", "max_held": 2,
                                         "token_sha256": token_sha256(VIP_TOKEN)[:8] + "..."}


@pytest.mark.parametrize("value, message", [
    ([{"name": "normal", "token": VIP_TOKEN}], "name must be"),
    ([{"name": "vip"}], "give exactly one of token or token_sha256"),
    ([{"name": "vip", "token": "short"}], "at least 16 characters"),
    ([{"name": "vip", "token_sha256": "abc"}], "64 hex digits"),
    ([{"name": "vip", "token": VIP_TOKEN, "max_held": -1}], "max_held must be an integer >= 0"),
    ([{"name": "vip", "token": VIP_TOKEN}, {"name": "vip", "token": TEST_TOKEN}], "class names must differ"),
    ([{"name": "a", "token": VIP_TOKEN}, {"name": "b", "token": VIP_TOKEN}], "two classes have the same token"),
    ([{"name": "vip", "token": VIP_TOKEN, "rank": 1}], "unknown keys ['rank']"),
    ("vip", "must be a list of classes"),
])
def test_bad_classes_are_refused_with_the_reason(value, message):
    with pytest.raises(ValueError, match=None) as error:
        parse_classes(value, False)
    assert message in str(error.value)


def test_over_http_only_hashes_are_taken():
    _, errors = cfg.validate_update(cfg.GuardConfig(), {"priority_classes": [{"name": "vip", "token": VIP_TOKEN}]},
                                    frozenset())
    assert errors == ["priority_classes class 1: send token_sha256 (the SHA-256 hex of the token), not the token "
                      "itself, over HTTP"]
    new, errors = cfg.validate_update(cfg.GuardConfig(), {"priority_classes": [
        {"name": "vip", "token_sha256": token_sha256(VIP_TOKEN)}]}, frozenset())
    assert errors == [] and new.priority_classes[0]["name"] == "vip"


def test_the_environment_takes_json_and_a_plain_token_is_hashed():
    import json
    source = cfg.load(None, {"GPU_GUARD_PRIORITY_CLASSES": json.dumps(CLASSES)})
    assert [c["name"] for c in source.config.priority_classes] == ["vip", "tests"]
    assert "priority_classes" in source.pinned and VIP_TOKEN not in json.dumps(cfg.public_view(source.config))


def test_class_numbers_sort_ahead_of_normal_ones_in_rank_then_arrival_order():
    lanes = Lanes(parse_classes(CLASSES, False))
    assert lanes.class_for_token(VIP_TOKEN)["name"] == "vip" and lanes.class_for_token("nope") is None
    tests_1, vip_1, vip_2 = lanes.number_for("tests"), lanes.number_for("vip"), lanes.number_for("vip")
    vip_front = lanes.number_for("vip", front=True)
    # ahead of every number ComfyUI gives: n >= 0 for normal prompts, -n for its front ones
    assert vip_front < vip_1 < vip_2 < tests_1 < -1e9
    assert vip_2 - vip_1 == 1 and -2 * BAND < vip_front


def entry(pid, number, cls=None, created=None):
    return QueueEntry(pid, number, {}, None, cls, created)


def test_each_lane_has_its_own_bound(make_guard, at_ratio):
    guard = make_guard(max_held=5, priority_classes=parse_classes(CLASSES, False))
    at_ratio(guard, 0.9)
    vip, tests = guard.lanes.classes
    assert not guard.admission(5).accept
    assert guard.admission(1, vip).accept and not guard.admission(2, vip).accept
    refusal = guard.admission(2, vip)
    assert "hold queue of class vip is full (2 held, max_held=2)" in refusal.message
    assert guard.admission(10_000, tests).accept  # max_held 0: unbounded
    text = guard.metrics_text()[0].decode()
    assert 'gpu_guard_class_submissions_total{answer="rejected",priority_class="vip"} 2.0' in text
    assert 'gpu_guard_class_submissions_total{answer="rejected",priority_class="normal"} 1.0' in text


def test_status_and_held_list_show_the_class(make_guard, at_ratio):
    guard = make_guard(max_held=5, priority_classes=parse_classes(CLASSES, False))
    at_ratio(guard, 0.9)
    guard.note_pending([entry("n1", 1), entry("v1", -5e11 + 1, "vip")])
    status = guard.status()
    assert [(h["prompt_id"], h["priority_class"]) for h in status["held"]] == [("v1", "vip"), ("n1", "normal")]
    assert status["priority"]["classes"] == [
        {"name": "vip", "rank": 0, "max_held": 2, "held": 1}, {"name": "tests", "rank": 1, "max_held": 0, "held": 0},
        {"name": "normal", "rank": 2, "max_held": 5, "held": 1}]
    text = guard.metrics_text()[0].decode()
    assert 'gpu_guard_class_held_prompts{priority_class="vip"} 1.0' in text


def test_aging_a_normal_prompt_past_max_wait_is_not_overtaken(make_guard, at_ratio, clock):
    guard = make_guard(priority_classes=parse_classes(CLASSES, False), priority_max_wait_s=60)
    at_ratio(guard, 0.2)
    now = clock.wall()
    normal = entry("n1", 3, created=now - 61)
    vip_later = entry("v1", -5e11 + 1, "vip", created=now - 10)
    queue = as_pending([vip_later, normal])
    assert guard.decide_pass(vip_later, lambda: queue).run == "n1"
    fresh = entry("n1", 3, created=now - 59)  # not waited long enough: the VIP goes first
    assert guard.decide_pass(vip_later, lambda: as_pending([vip_later, fresh])).run == "v1"
    vip_earlier = entry("v0", -5e11, "vip", created=now - 100)  # there before the normal prompt: no overtaking
    assert guard.decide_pass(vip_earlier, lambda: as_pending([vip_earlier, normal])).run == "v0"
    off = make_guard(priority_classes=parse_classes(CLASSES, False), priority_max_wait_s=0)
    at_ratio(off, 0.2)
    assert off.decide_pass(vip_later, lambda: queue).run == "v1"
