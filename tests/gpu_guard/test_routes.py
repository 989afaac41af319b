"""The guard's routes: config (validation, persistence, who may change it), ready, metrics."""
import json
import socket

import pytest
import requests

from tests.gpu_guard.conftest import guard_env, start_guarded_server
from tests.gpu_guard.guard_drill import GuardDrill
from tests.harness.probe_file import ProbeFile

pytestmark = pytest.mark.comfyui

TOKEN = "s3cret-token-for-tests"


@pytest.mark.parametrize("body, reason", [
    ({"pause_at": 0.7}, "resume_at (0.75) must be below pause_at (0.7)"),
    ({"pause_at": 1.5}, "pause_at must be a number in (0, 1]"),
    ({"resume_at": "low"}, "resume_at must be a number"),
    ({"max_held": -1}, "max_held must be an integer"),
    ({"hold_timeout_action": "explode"}, "hold_timeout_action must be one of keep | fail"),
    ({"no_such_setting": 1}, "unknown setting 'no_such_setting'"),
    ({"probe": "torch"}, "probe is pinned by the environment variable GPU_GUARD_PROBE"),
])
def test_config_post_validates_and_changes_nothing_on_error(drill, body, reason):
    before = drill.config()
    response = drill.client.post("/gpu_guard/config", body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert any(reason in e for e in errors), errors
    assert drill.config() == before


def test_config_post_rejects_a_body_that_is_not_a_json_object(drill):
    for data in (b"not json", b"[1, 2]"):
        response = drill.client.http.post(drill.client.url + "/gpu_guard/config", data=data, timeout=10,
                                          headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["errors"][0].startswith("the body")


def test_config_post_applies_and_persists_to_the_user_directory(drill):
    config = drill.set_config(pause_at=0.9, resume_at=0.6)
    assert (config["pause_at"], config["resume_at"]) == (0.9, 0.6)
    assert drill.status()["thresholds"] == {"pause_at": 0.9, "resume_at": 0.6}
    saved = json.loads((drill.client.folders.user / "gpu_guard.json").read_text())
    assert (saved["pause_at"], saved["resume_at"]) == (0.9, 0.6)
    # the new thresholds drive the hysteresis at once
    assert drill.read_ratio(0.88)["state"] == "running"
    assert drill.read_ratio(0.9)["state"] == "paused"


def test_config_post_that_is_not_declared_json_is_refused_with_415(drill):
    """A web page can POST text/plain to a loopback server without a CORS preflight."""
    before = drill.config()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = drill.client.http.post(drill.client.url + "/api/gpu_guard/config", data=b'{"pause_at": 0.9}',
                                          headers={"Content-Type": content_type}, timeout=10)
        assert response.status_code == 415
        assert response.json()["errors"] == [
            f"send the settings as a JSON object with 'Content-Type: application/json' (got '{content_type}')"]
    assert drill.config() == before


@pytest.mark.parametrize("header, value", [("X-Forwarded-For", "203.0.113.7"), ("Forwarded", "for=203.0.113.7"),
                                           ("X-Real-IP", "203.0.113.7")])
def test_config_post_relayed_by_a_proxy_gets_no_loopback_exemption(drill, header, value):
    before = drill.config()
    response = drill.client.post("/gpu_guard/config", {"pause_at": 0.9}, headers={header: value})
    assert response.status_code == 403
    error = response.json()["errors"][0]
    assert f"came through a proxy ({header})" in error and "GPU_GUARD_TOKEN" in error
    assert drill.config() == before


def test_ready_follows_the_state(drill):
    response = drill.client.get("/gpu_guard/ready")
    assert (response.status_code, response.json()["ready"]) == (200, True)
    drill.pause()
    response = drill.client.get("/api/gpu_guard/ready")
    assert response.status_code == 200  # paused, but it can still hold: not an outage
    assert response.json()["reason"].startswith("paused") and response.json()["reason"].endswith("held")
    drill.set_config(ready_strict=True)
    try:
        response = drill.client.get("/api/gpu_guard/ready")
        assert response.status_code == 503 and response.json()["reason"].endswith("ready_strict")
    finally:
        drill.set_config(ready_strict=False)


def test_metrics_in_prometheus_text_format(drill):
    drill.read_ratio(0.5)
    response = drill.client.get("/gpu_guard/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert "gpu_guard_pressure_ratio 0.5" in text and "gpu_guard_device_used_ratio 0.5" in text
    assert "# TYPE gpu_guard_hook_errors_total counter" in text
    assert "gpu_guard_hook_errors_total 0" in text
    assert 'gpu_guard_state{gpu_guard_state="running"} 1.0' in text


def _non_loopback_address():
    """This host's address on its outgoing interface (no packet is sent), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))
            address = sock.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A server with GPU_GUARD_TOKEN and max_held pinned, listening on loopback and, where this host has
    one, on its other address so that a non-loopback client can be tried (remote_url None otherwise)."""
    address = _non_loopback_address()
    base = tmp_path_factory.mktemp("guard_secured")
    probe = ProbeFile(base / "probe.json")
    probe.write_ratio(0.1)
    env = guard_env(probe, GPU_GUARD_TOKEN=TOKEN, GPU_GUARD_MAX_HELD="3")
    listen = f"127.0.0.1,{address}" if address else "127.0.0.1"
    server = start_guarded_server(base / "server", "gpu_guard_secured", env, extra_args=("--listen", listen))
    yield GuardDrill(server, probe), (f"http://{address}:{server.port}" if address else None)
    server.stop()


def test_config_post_from_a_remote_client_needs_the_token(secured):
    drill, remote_url = secured
    if remote_url is None:
        pytest.skip("this host has no non-loopback IPv4 address to try a remote client from")
    url = remote_url + "/gpu_guard/config"
    assert requests.post(url, json={"pause_at": 0.95}, timeout=10).status_code == 403
    wrong = {"Authorization": "Bearer wrong"}
    assert requests.post(url, json={"pause_at": 0.95}, headers=wrong, timeout=10).status_code == 403
    assert drill.config()["pause_at"] == 0.85
    right = {"Authorization": f"Bearer {TOKEN}"}
    response = requests.post(url, json={"pause_at": 0.95}, headers=right, timeout=10)
    assert response.status_code == 200, response.text
    assert drill.config()["pause_at"] == 0.95
    # reading stays open to everyone, and never shows the token
    view = requests.get(remote_url + "/api/gpu_guard/config", timeout=10).json()
    assert view["token_set"] is True and TOKEN not in json.dumps(view)


def test_with_a_token_set_a_loopback_client_needs_it_too(secured):
    """Behind a reverse proxy on the same host every client is loopback."""
    drill, _remote = secured
    before = drill.config()
    response = drill.client.post("/gpu_guard/config", {"pause_at": 0.9})
    assert response.status_code == 403
    assert "loopback included" in response.json()["errors"][0]
    assert drill.client.post("/gpu_guard/config", {"pause_at": 0.9},
                             headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert drill.config() == before


def test_pinned_setting_is_read_only_over_http_and_settings_survive_a_restart(secured):
    drill, _remote = secured
    assert {"max_held", "probe", "poll_s"} <= set(drill.config()["pinned"])
    authorized = {"Authorization": f"Bearer {TOKEN}"}
    response = drill.client.post("/gpu_guard/config", {"max_held": 5}, headers=authorized)
    assert response.status_code == 400
    assert "GPU_GUARD_MAX_HELD" in response.json()["errors"][0]

    assert drill.client.post("/gpu_guard/config", {"resume_at": 0.55}, headers=authorized).status_code == 200
    drill.client.restart()
    config = drill.config()
    assert config["resume_at"] == 0.55, "a setting changed over HTTP must survive a restart"
    assert config["max_held"] == 3
