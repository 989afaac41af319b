"""The operations settings: bad webhook targets refused naming the setting, nothing partial saved,
secrets never shown and never accepted over HTTP."""
import json

import pytest

from gpu_guard import config as cfg
from gpu_guard.guard import Guard
from gpu_guard.probes import make_probe

SLACK = {"name": "chat", "format": "slack", "url": "https://hooks.slack.com/services/T000/B000/XXXXSECRETPATH"}


@pytest.fixture
def guard(tmp_path):
    path = tmp_path / "gpu_guard.json"
    path.write_text(json.dumps({"max_held": 3}))
    probe, note = make_probe("off")
    return Guard(cfg.GuardConfig(max_held=3), probe, note, config_file=str(path)), path


@pytest.mark.parametrize("target, named", [
    ({"format": "teams", "url": "https://example.org/x"}, "webhooks[0].format must be one of json | dingtalk"),
    ({"format": "slack", "url": "ftp://example.org/x"}, "webhooks[0].url must be an http:// or https:// URL"),
    ({"format": "slack", "url": "example.org/x"}, "webhooks[0].url must be an http:// or https:// URL"),
    ({"format": "json", "url": "https://example.org/x"}, "webhooks[0]: format json is signed the Standard "
                                                         "Webhooks way and needs a secret"),
    ({"format": "json", "url": "https://example.org/x", "secret_env": "GPU_GUARD_HOOK_NO_SUCH_VARIABLE"},
     "webhooks[0].secret_env: the environment variable GPU_GUARD_HOOK_NO_SUCH_VARIABLE is not set"),
    ({"format": "slack"}, "webhooks[0] needs exactly one of url or url_env"),
    ({"format": "slack", "url": "https://x.org", "colour": "red"}, "webhooks[0]: unknown key(s) colour"),
    ({"format": "slack", "url": "https://x.org", "rules": ["everything"]}, "webhooks[0].rules must be"),
])
def test_a_bad_target_is_refused_with_a_400_message_naming_it_and_nothing_is_saved(guard, target, named):
    guard, path = guard
    before = path.read_text()
    view, errors = guard.update_config({"max_held": 7, "webhooks": [SLACK, target][1:]})
    assert len(errors) == 1 and errors[0].startswith("webhooks "), errors
    assert named in errors[0]
    assert guard.config.max_held == 3 and guard.config.webhooks == ()
    assert path.read_text() == before


def test_secrets_are_not_accepted_over_http_but_are_from_the_file(guard, tmp_path, monkeypatch):
    guard, path = guard
    inline = {"format": "json", "url": "https://example.org/hook", "secret": "s3cr3t"}
    _, errors = guard.update_config({"webhooks": [inline]})
    assert errors and "secrets are not accepted over HTTP" in errors[0] and "secret_env" in errors[0]

    monkeypatch.setenv("GPU_GUARD_HOOK_OPS_SECRET", "whsec_MDEyMzQ1Njc4OWFiY2RlZg==")
    view, errors = guard.update_config({"webhooks": [{"format": "json", "url": "https://example.org/hook",
                                                      "secret_env": "GPU_GUARD_HOOK_OPS_SECRET"}, SLACK]})
    assert errors == []
    assert json.loads(path.read_text())["webhooks"][0] == {"name": "json-0", "format": "json",
                                                            "url": "https://example.org/hook",
                                                            "secret_env": "GPU_GUARD_HOOK_OPS_SECRET"}

    config_file = tmp_path / "file.json"
    config_file.write_text(json.dumps({"webhooks": [inline]}))
    source = cfg.load(str(config_file), {})
    assert source.problems == [] and source.config.webhooks[0]["secret"] == "s3cr3t"


def test_the_routes_view_hides_secrets_and_url_paths(tmp_path):
    file_targets = [{"format": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=TOKEN123",
                     "secret": "SECabc"}, SLACK]
    config_file = tmp_path / "gpu_guard.json"
    config_file.write_text(json.dumps({"webhooks": file_targets}))
    source = cfg.load(str(config_file), {})
    probe, note = make_probe("off")
    guard = Guard(source.config, probe, note, config_file=str(config_file))
    shown = json.dumps(guard.config_view()) + json.dumps(guard.status())
    for secret in ("TOKEN123", "SECabc", "XXXXSECRETPATH", "access_token"):
        assert secret not in shown
    assert guard.config_view()["webhooks"] == [
        {"name": "dingtalk-0", "format": "dingtalk", "signed": True, "url": "https://oapi.dingtalk.com/…"},
        {"name": "chat", "format": "slack", "signed": False, "url": "https://hooks.slack.com/…"}]


def test_targets_from_the_environment_as_json(monkeypatch):
    monkeypatch.setenv("GPU_GUARD_HOOK_CHAT_URL", "https://hooks.slack.com/services/A/B/C")
    source = cfg.load(None, {"GPU_GUARD_WEBHOOKS": json.dumps([{"format": "slack", "url_env": "GPU_GUARD_HOOK_CHAT_URL"}]),
                             "GPU_GUARD_ALERT_PAUSES_PER_DAY": "20"})
    assert source.problems == []
    assert source.config.webhooks == ({"name": "slack-0", "format": "slack", "url_env": "GPU_GUARD_HOOK_CHAT_URL"},)
    assert source.config.alert_pauses_per_day == 20 and {"webhooks", "alert_pauses_per_day"} <= source.pinned
    bad = cfg.load(None, {"GPU_GUARD_WEBHOOKS": "[{not json"})
    assert bad.config.webhooks == () and "GPU_GUARD_WEBHOOKS must be a JSON list" in bad.problems[0]


def test_names_must_be_unique():
    with pytest.raises(ValueError, match="target names must be unique; repeated: chat"):
        cfg.SETTINGS_BY_NAME["webhooks"].parse([SLACK, SLACK], False)


def test_showing_is_idempotent_so_a_logged_config_change_keeps_the_signed_flag():
    targets = cfg.SETTINGS_BY_NAME["webhooks"].parse(
        [{"format": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=T", "secret": "S"}], False)
    once = cfg.shown_value("webhooks", targets)
    assert cfg.shown_value("webhooks", once) == once and once[0]["signed"] is True
