"""Where webhooks may go and what they leave behind: URLs checked in full, every send error caught
and retried, no redirects, link-local and metadata hosts refused unless listed, only GPU_GUARD_HOOK_
variables read, and nothing of a target's answer, URL path or query in status or logs."""
from __future__ import annotations

import json
import logging

import pytest

from gpu_guard import config as cfg
from gpu_guard.guard import Guard
from gpu_guard.ops.metrics import OpsMetrics
from gpu_guard.ops.webhook_sender import TargetSender
from gpu_guard.ops.webhook_settings import resolved_problem
from gpu_guard.probes import make_probe
from tests.ops.receiver import Receiver
from tests.ops.test_webhook_formats import notification

TOKEN = "tok-7f3e9a-SECRET"


@pytest.fixture
def guard(tmp_path):
    path = tmp_path / "gpu_guard.json"
    path.write_text("{}")
    probe, note = make_probe("off")
    return Guard(cfg.GuardConfig(), probe, note, config_file=str(path))


def sender_for(url, fmt="slack", retries=1, **options):
    target = {"name": "t", "format": fmt, "url": url}
    options.setdefault("address_check", lambda url, allow: None)  # loopback receivers need no DNS check
    return TargetSender(target, OpsMetrics(), "h", retries=lambda: retries, timeout_s=lambda: 2.0,
                        backoff_s=0.05, **options)


def wait_dead(sender, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while sender.dead_letters == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sender.dead_letters == 1, sender.view()


@pytest.mark.parametrize("url, named", [
    (f"https://hooks.example.org/services/a b?token={TOKEN}", "must not contain whitespace or control characters, "
                                                              "found a space at position"),
    (f"https://hooks.example.org/x\n?token={TOKEN}", "found the control or whitespace character '\\n'"),
    ("https://exa mple.org/x", "found a space"),
    ("https://bad_host!.org/x", "invalid host name"),
    ("https://example.org:99999/x", "is not a valid URL"),
])
def test_a_bad_url_is_refused_naming_the_setting_and_never_echoing_the_token(guard, url, named):
    view, errors = guard.update_config({"webhooks": [{"format": "slack", "url": url}]})
    assert len(errors) == 1 and errors[0].startswith("webhooks webhooks[0].url "), errors
    assert named in errors[0] and TOKEN not in errors[0]
    assert guard.config.webhooks == ()


def test_variables_outside_the_prefix_are_never_read_and_the_error_reveals_nothing(guard, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pw@db/prod")
    answers = []
    for name in ("DATABASE_URL", "NO_SUCH_VARIABLE_ANYWHERE", "GPU_GUARD_TOKEN"):
        for key in ("url_env", "secret_env"):
            target = {"format": "json", "url": "https://example.org/h", "secret_env": "GPU_GUARD_HOOK_S"}
            target.pop("url" if key == "url_env" else "secret_env")
            target[key] = name
            _, errors = guard.update_config({"webhooks": [target]})
            answers.append(errors[0].replace(name, "NAME"))
    assert all("must name an environment variable that starts with GPU_GUARD_HOOK_" in a for a in answers)
    assert len(set(answers[0::2])) == 1 and len(set(answers[1::2])) == 1  # set or not: the same answer
    assert not any("postgres" in a for a in answers)

    monkeypatch.setenv("GPU_GUARD_HOOK_URL", "postgres://user:pw@db/prod")
    _, errors = guard.update_config({"webhooks": [{"format": "slack", "url_env": "GPU_GUARD_HOOK_URL"}]})
    assert "GPU_GUARD_HOOK_URL does not hold a valid http:// or https:// URL" in errors[0]
    assert "postgres" not in errors[0]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x",
                                 "http://metadata.google.internal/computeMetadata/v1/", "http://[fd00:ec2::254]/"])
def test_link_local_and_metadata_hosts_are_refused_unless_listed(guard, tmp_path, url):
    _, errors = guard.update_config({"webhooks": [{"format": "slack", "url": url}]})
    assert len(errors) == 1 and "link-local or cloud metadata address" in errors[0] and "webhook_allow_hosts" in errors[0]
    host = url.split("//", 1)[1].split("/", 1)[0].strip("[]")
    config_file = tmp_path / "listed.json"
    config_file.write_text(json.dumps({"webhooks": [{"format": "slack", "url": url}], "webhook_allow_hosts": [host]}))
    assert cfg.load(str(config_file), {}).problems == []


def test_the_allow_list_is_start_up_only_and_limits_every_target(guard, tmp_path):
    _, errors = guard.update_config({"webhook_allow_hosts": ["evil.example"]})
    assert errors and "webhook_allow_hosts is read at start-up only" in errors[0]
    source = cfg.load(None, {"GPU_GUARD_WEBHOOK_ALLOW_HOSTS": "hooks.slack.com, oapi.dingtalk.com",
                             "GPU_GUARD_WEBHOOKS": json.dumps([{"format": "slack", "url": "https://elsewhere.org/x"}])})
    assert source.config.webhook_allow_hosts == ("hooks.slack.com", "oapi.dingtalk.com")
    assert source.config.webhooks == () and "host elsewhere.org is not in webhook_allow_hosts" in source.problems[0]


def test_a_name_that_resolves_to_a_metadata_address_is_refused_at_send_time():
    def resolve(host, port):
        return [(2, 1, 6, "", ("169.254.169.254", 0))]

    assert "resolves to the link-local or metadata address 169.254.169.254" in \
        resolved_problem("https://innocent.example.org/hook", (), resolve=resolve)
    assert resolved_problem("https://innocent.example.org/hook", ("innocent.example.org",), resolve=resolve) is None
    sender = sender_for("https://innocent.example.org/hook", retries=0,
                        address_check=lambda url, allow: resolved_problem(url, allow, resolve=resolve))
    sender.submit(notification())
    wait_dead(sender)
    sender.stop()
    assert "resolves to the link-local" in sender.last_error


def test_a_url_http_client_refuses_at_send_time_is_caught_retried_and_dead_lettered(caplog):
    caplog.set_level(logging.DEBUG)
    sender = sender_for(f"http://127.0.0.1:9/hook path?token={TOKEN}", retries=2)  # bypasses the config check
    sender.submit(notification())
    wait_dead(sender)
    sender.stop()
    assert sender.attempt_errors == 3 and sender.last_error == "InvalidURL"
    assert TOKEN not in caplog.text and "hook path" not in caplog.text and "Traceback" not in caplog.text
    assert TOKEN not in json.dumps(sender.view())


@pytest.mark.parametrize("fmt, answer", [("slack", (500, f"internal error, your token is {TOKEN}".encode())),
                                         ("dingtalk", (200, json.dumps({"errcode": 310000,
                                                                        "errmsg": f"bad sign {TOKEN}"}).encode())),
                                         ("feishu", (200, f"<html>{TOKEN}</html>".encode()))])
def test_nothing_a_target_answers_shows_in_status_or_logs(caplog, fmt, answer):
    with Receiver(script=[answer]) as receiver:
        sender = sender_for(receiver.url + f"/robot/send?access_token={TOKEN}", fmt=fmt, retries=1)
        sender.submit(notification())
        wait_dead(sender)
        sender.stop()
    shown = json.dumps(sender.view()) + caplog.text
    assert TOKEN not in shown and "access_token" not in shown and "/robot/send" not in shown
    assert sender.last_error.startswith("HTTP 500" if fmt == "slack" else fmt)


def test_a_redirect_is_not_followed():
    with Receiver() as elsewhere, Receiver(script=[("redirect", elsewhere.url + "/stolen")]) as target:
        sender = sender_for(target.url + "/hook", retries=0)
        sender.submit(notification())
        wait_dead(sender)
        sender.stop()
        assert len(target.requests) == 1 and elsewhere.requests == []
    assert sender.last_error.startswith("HTTP 307 (a redirect; webhook redirects are not followed")
