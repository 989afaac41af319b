"""The journal's settings go the same way as every setting: defaults < file < environment, HTTP rules."""
from gpu_guard import config as cfg


def test_defaults_journal_and_rerun():
    config = cfg.load(None, environ={}).config
    assert config.persist is True and config.persist_running == "rerun"


def test_environment_and_file(tmp_path):
    path = tmp_path / "gpu_guard.json"
    path.write_text('{"persist_running": "fail"}')
    source = cfg.load(str(path), environ={"GPU_GUARD_PERSIST": "off"})
    assert source.config.persist is False and source.config.persist_running == "fail"
    assert "persist" in source.pinned


def test_bad_values_name_the_setting_and_fall_back():
    source = cfg.load(None, environ={"GPU_GUARD_PERSIST_RUNNING": "again"})
    assert source.config.persist_running == "rerun"
    assert any("GPU_GUARD_PERSIST_RUNNING" in p and "rerun | fail" in p for p in source.problems)


def test_over_http_persist_is_start_up_only_and_the_policy_may_change():
    current = cfg.GuardConfig()
    new, errors = cfg.validate_update(current, {"persist": False}, frozenset())
    assert new is None and "persist is read at start-up only" in errors[0]
    new, errors = cfg.validate_update(current, {"persist_running": "fail"}, frozenset())
    assert errors == [] and new.persist_running == "fail"
