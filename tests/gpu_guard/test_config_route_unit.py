"""POST /gpu_guard/config on a real aiohttp server (loopback) with the guard's routes: who may change the
settings, what body is accepted, and that the file write does not block the event loop."""
import json
import os
import threading

import pytest
import requests

from gpu_guard import Guard
from gpu_guard import config as config_module
from tests.gpu_guard.route_server import RouteServer
from tests.harness.probe_file import ProbeFile

TOKEN = "unit-test-token"


def make_guard(tmp_path, **environ):
    probe = ProbeFile(tmp_path / "probe.json")
    probe.write_ratio(0.1)
    return Guard.from_environment(config_file=str(tmp_path / "gpu_guard.json"),
                                  environ={"GPU_GUARD_PROBE": probe.spec, **environ})


@pytest.fixture
def open_server(tmp_path):
    guard = make_guard(tmp_path)
    with RouteServer(guard) as server:
        yield server


@pytest.fixture
def token_server(tmp_path):
    guard = make_guard(tmp_path, GPU_GUARD_TOKEN=TOKEN)
    with RouteServer(guard) as server:
        yield server


def post(server, data=None, json_body=None, headers=None):
    return requests.post(server.url + "/gpu_guard/config", data=data, json=json_body, headers=headers or {},
                         timeout=10)


def test_the_event_loop_serves_other_requests_while_the_config_file_is_written(open_server, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real_persist = config_module.persist

    def slow_persist(path, partial):
        started.set()
        release.wait(10)
        real_persist(path, partial)

    monkeypatch.setattr(config_module, "persist", slow_persist)
    answers = []
    poster = threading.Thread(target=lambda: answers.append(post(open_server, json_body={"pause_at": 0.9})))
    poster.start()
    try:
        assert started.wait(5)
        status = requests.get(open_server.url + "/gpu_guard/status", timeout=2)  # the loop must be free
        assert status.status_code == 200 and status.json()["thresholds"]["pause_at"] == 0.85
    finally:
        release.set()
        poster.join(10)
    assert answers[0].status_code == 200 and answers[0].json()["pause_at"] == 0.9


# -- the token ------------------------------------------------------------------------------------------

def test_with_a_token_set_a_loopback_client_needs_it_too(token_server):
    refused = post(token_server, json_body={"pause_at": 0.9})
    assert refused.status_code == 403
    assert "GPU_GUARD_TOKEN" in refused.json()["errors"][0] and "loopback included" in refused.json()["errors"][0]
    wrong = post(token_server, json_body={"pause_at": 0.9}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert token_server.guard.config.pause_at == 0.85
    right = post(token_server, json_body={"pause_at": 0.9}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200, right.text
    assert token_server.guard.config.pause_at == 0.9


def test_with_the_token_a_proxied_request_is_accepted(token_server):
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "203.0.113.7"}
    assert post(token_server, json_body={"pause_at": 0.9}, headers=headers).status_code == 200


# -- the content type -----------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_a_body_that_is_not_declared_json_is_refused_with_415(open_server, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = post(open_server, data=b'{"pause_at": 0.9}', headers=headers)
    assert response.status_code == 415
    error = response.json()["errors"][0]
    assert "Content-Type: application/json" in error
    if content_type:
        assert content_type.split(";")[0] in error
    assert open_server.guard.config.pause_at == 0.85
    assert not os.path.exists(open_server.guard.config_file)  # nothing was written


def test_json_with_a_charset_is_accepted(open_server):
    response = post(open_server, data=b'{"pause_at": 0.9}',
                    headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert json.load(open(open_server.guard.config_file)) == {"pause_at": 0.9}


# -- proxies --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, value", [
    ("Forwarded", "for=203.0.113.7;proto=https"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Host", "comfy.example.org"),
    ("X-Forwarded-Proto", "https"),
    ("X-Real-IP", "203.0.113.7"),
])
def test_a_loopback_request_through_a_proxy_gets_no_exemption(open_server, header, value):
    response = post(open_server, json_body={"pause_at": 0.9}, headers={header: value})
    assert response.status_code == 403
    error = response.json()["errors"][0]
    assert header in error and "GPU_GUARD_TOKEN" in error
    assert open_server.guard.config.pause_at == 0.85


def test_a_plain_loopback_request_without_a_token_set_is_accepted(open_server):
    assert post(open_server, json_body={"pause_at": 0.9}).status_code == 200


@pytest.mark.parametrize("remote, headers, token_set, token_valid, allowed", [
    ("127.0.0.1", {}, False, False, True),
    ("::1", {}, False, False, True),
    ("192.0.2.10", {}, False, False, False),  # remote, no token configured
    ("192.0.2.10", {}, True, False, False),
    ("192.0.2.10", {}, True, True, True),
    ("127.0.0.1", {}, True, False, False),  # token configured: loopback needs it too
    ("127.0.0.1", {"x-forwarded-for": "192.0.2.10"}, False, False, False),  # header names are case-insensitive
    (None, {}, False, False, False),  # unknown peer (e.g. a unix socket): no exemption
])
def test_the_access_rule(remote, headers, token_set, token_valid, allowed):
    from multidict import CIMultiDict

    from gpu_guard.comfy.config_access import write_refusal

    refusal = write_refusal(remote, CIMultiDict(headers), token_set, token_valid)
    assert (refusal is None) == allowed, refusal
