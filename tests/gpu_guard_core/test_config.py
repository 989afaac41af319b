"""Settings: validation messages, precedence defaults < file < environment, runtime updates, persistence."""
import json
import logging

import pytest

from gpu_guard import config as cfg
from gpu_guard.config import GuardConfig
from gpu_guard.guard import Guard


def test_defaults():
    source = cfg.load(None, {})
    assert source.config == GuardConfig()
    assert (source.config.pause_at, source.config.resume_at, source.config.poll_s) == (0.85, 0.75, 1.0)
    assert source.pinned == frozenset() and source.problems == [] and source.token is None


def test_every_setting_has_an_environment_variable_and_a_field():
    assert {s.name for s in cfg.SETTINGS} == set(GuardConfig().as_dict())
    assert cfg.SETTINGS_BY_NAME["max_held"].env == "GPU_GUARD_MAX_HELD"


def test_precedence_defaults_then_file_then_environment(tmp_path):
    path = tmp_path / "gpu_guard.json"
    path.write_text(json.dumps({"pause_at": 0.9, "resume_at": 0.6, "max_held": 4}))
    source = cfg.load(str(path), {"GPU_GUARD_MAX_HELD": "10", "GPU_GUARD_HOLD_TIMEOUT_ACTION": "FAIL"})
    c = source.config
    assert (c.pause_at, c.resume_at) == (0.9, 0.6)  # file over defaults
    assert c.max_held == 10 and c.hold_timeout_action == "fail"  # environment over file
    assert c.poll_s == 1.0  # default
    assert source.pinned == {"max_held", "hold_timeout_action"}


@pytest.mark.parametrize("variable, value, allowed", [
    ("GPU_GUARD_PAUSE_AT", "1.5", "a number in (0, 1]"),
    ("GPU_GUARD_RESUME_AT", "0", "a number in (0, 1]"),
    ("GPU_GUARD_POLL_S", "0", "a number in [0.05, 60]"),
    ("GPU_GUARD_POLL_S", "fast", "a number in [0.05, 60]"),
    ("GPU_GUARD_MAX_HELD", "-1", "an integer in [0, 1000000]"),
    ("GPU_GUARD_MAX_HELD", "2.5", "an integer in [0, 1000000]"),
    ("GPU_GUARD_HOLD_TIMEOUT_ACTION", "drop", "keep | fail"),
    ("GPU_GUARD_SENSOR_POLICY", "maybe", "open | closed"),
    ("GPU_GUARD_SENSOR_FAILURES", "0", "an integer in [1, 1000]"),
    ("GPU_GUARD_FAST_LANE", "sometimes", "true or false"),
    ("GPU_GUARD_PROBE", "cuda", "file:PATH"),
])
def test_bad_environment_value_is_named_and_falls_back_to_the_default(variable, value, allowed, caplog):
    with caplog.at_level(logging.ERROR, logger="gpu_guard.config"):
        source = cfg.load(None, {variable: value})
    name = variable[len("GPU_GUARD_"):].lower()
    assert getattr(source.config, name) == cfg.SETTINGS_BY_NAME[name].default
    assert name not in source.pinned
    (problem,) = source.problems
    assert problem.startswith(variable) and allowed in problem and "unset it" in problem
    assert any(variable in r.getMessage() for r in caplog.records)


def test_thresholds_in_the_wrong_order_fall_back_to_both_defaults():
    source = cfg.load(None, {"GPU_GUARD_PAUSE_AT": "0.7", "GPU_GUARD_RESUME_AT": "0.8"})
    assert (source.config.pause_at, source.config.resume_at) == (0.85, 0.75)
    assert "resume_at (0.8) must be below pause_at (0.7)" in source.problems[0]


def test_boolean_spellings():
    for text, value in [("1", True), ("yes", True), ("On", True), ("0", False), ("false", False), ("off", False)]:
        assert cfg.load(None, {"GPU_GUARD_ENABLED": text}).config.enabled is value


def test_bad_config_file_values_are_reported_and_skipped(tmp_path):
    path = tmp_path / "gpu_guard.json"
    path.write_text(json.dumps({"pause_at": "high", "poll_s": 2, "colour": "red", "fast_lane": 1}))
    source = cfg.load(str(path), {})
    assert source.config.poll_s == 2.0 and source.config.pause_at == 0.85 and source.config.fast_lane is True
    text = "\n".join(source.problems)
    assert "pause_at must be a number" in text and "unknown setting 'colour'" in text
    assert "fast_lane must be true or false" in text


def test_unreadable_config_file_keeps_defaults(tmp_path):
    path = tmp_path / "gpu_guard.json"
    path.write_text("{broken")
    source = cfg.load(str(path), {})
    assert source.config == GuardConfig()
    assert "not readable JSON" in source.problems[0] and "fix or delete the file" in source.problems[0]


def test_token_comes_from_the_environment_only(tmp_path):
    source = cfg.load(None, {"GPU_GUARD_TOKEN": "s3cret"})
    guard = Guard(source.config, None, token=source.token)
    assert guard.check_token("s3cret") and not guard.check_token("wrong") and not guard.check_token(None)
    assert "s3cret" not in json.dumps(guard.config_view()) and guard.config_view()["token_set"] is True
    assert not Guard(GuardConfig(), None).check_token("")


def test_runtime_update_validates_as_a_whole(make_guard):
    guard = make_guard()
    view, errors = guard.update_config({"pause_at": 0.6, "max_held": -2, "colour": 1, "probe": "ram"})
    assert len(errors) == 3  # each bad key named; pause_at 0.6 alone is fine
    assert any("max_held must be an integer" in e for e in errors)
    assert any("unknown setting 'colour'" in e for e in errors)
    assert any("probe is read at start-up only" in e for e in errors)
    assert guard.config.pause_at == 0.85  # nothing applied
    _, errors = guard.update_config({"resume_at": 0.9})
    assert errors == ["resume_at (0.9) must be below pause_at (0.85); the guard needs a gap between the two "
                      "to avoid flapping"]
    _, errors = guard.update_config(["not", "a", "dict"])
    assert "JSON object" in errors[0]


def test_runtime_update_is_applied_and_persisted_atomically(tmp_path, clock):
    path = tmp_path / "user" / "gpu_guard.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"poll_s": 2}))
    source = cfg.load(str(path), {"GPU_GUARD_MAX_HELD": "3"})
    guard = Guard(source.config, None, pinned=source.pinned, config_file=str(path))
    view, errors = guard.update_config({"pause_at": 0.9, "fast_lane": False})
    assert errors == [] and view["pause_at"] == 0.9 and view["fast_lane"] is False
    assert view["pinned"] == ["max_held"]
    assert json.loads(path.read_text()) == {"poll_s": 2, "pause_at": 0.9, "fast_lane": False}
    assert [p.name for p in path.parent.iterdir()] == ["gpu_guard.json"]  # no temporary file left
    assert cfg.load(str(path), {}).config.pause_at == 0.9


def test_pinned_setting_is_read_only_at_runtime(tmp_path):
    source = cfg.load(None, {"GPU_GUARD_PAUSE_AT": "0.95"})
    guard = Guard(source.config, None, pinned=source.pinned)
    _, errors = guard.update_config({"pause_at": 0.9})
    assert errors == ["pause_at is pinned by the environment variable GPU_GUARD_PAUSE_AT; unset it and restart "
                      "ComfyUI to change it here"]
    assert guard.config.pause_at == 0.95


def test_failed_save_changes_nothing(tmp_path):
    folder = tmp_path / "gpu_guard.json"
    folder.mkdir()  # a folder where the file should be: the save fails
    guard = Guard(GuardConfig(), None, config_file=str(folder))
    _, errors = guard.update_config({"max_held": 5})
    assert "could not save the settings" in errors[0] and guard.config.max_held == 0


def test_from_environment_never_raises_on_bad_values(tmp_path, probe_file):
    probe_file.write(ratio=0.1)
    guard = Guard.from_environment(environ={"GPU_GUARD_PROBE": "file:" + probe_file.path,
                                            "GPU_GUARD_PAUSE_AT": "lots", "GPU_GUARD_POLL_S": "0.5"})
    assert guard.config.pause_at == 0.85 and guard.config.poll_s == 0.5
    guard.poll_once()
    assert guard.state == "running"


def test_disabled_guard_is_off_and_runs_everything(make_guard, at_ratio):
    guard = make_guard(enabled=False)
    at_ratio(guard, 0.99)
    assert guard.state == "off"
    assert guard.ready() == (True, "guard off: disabled by the enabled setting")
