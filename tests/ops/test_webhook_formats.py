"""Each target's request, checked the way the receiving service checks it (real HTTP on loopback)."""
import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest

from gpu_guard.ops import FIRING, RESOLVED, Notification
from gpu_guard.ops.webhook_sender import TargetSender, http_post
from gpu_guard.ops.metrics import OpsMetrics
from tests.ops.receiver import Receiver

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def notification(status=FIRING):
    return Notification("many_pauses", status, "GPU memory pauses: more than the daily budget",
                        "11 pauses in the last 24 h (more than 10)", at=time.time(), details={"pauses_24h": 11})


def deliver(target, n, answer=b"ok"):
    with Receiver(script=[200], body=answer) as receiver:
        sender = TargetSender({"name": "t", **target, "url": receiver.url + target.get("path", "/hook")},
                              OpsMetrics(), "test-host", retries=lambda: 0, timeout_s=lambda: 2.0)
        sender.submit(n)
        (request,) = receiver.wait_for(1)
        sender.stop()
    assert sender.delivered == 1, sender.last_error
    return request


def verify_standard_webhooks(secret, headers, body):
    """The receiver's side, by the reference library of the spec (PyPI `standardwebhooks`), never by
    our own algorithm: it checks the timestamp tolerance and every v1 signature."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
        return True
    except WebhookVerificationError:
        return False


# the same key, written both ways the spec allows: with the whsec_ prefix, and plain (unpadded) base64
PLAIN = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode().rstrip("=")


@pytest.mark.parametrize("secret", [WHSEC, PLAIN, "whsec_" + base64.b64encode(b"x" * 24).decode().rstrip("=")],
                         ids=["whsec", "plain", "whsec-unpadded"])
def test_each_form_of_secret_verifies_with_the_reference_library(secret):
    request = deliver({"format": "json", "secret": secret}, notification())
    assert verify_standard_webhooks(secret, request.headers, request.body)
    other = "whsec_" + base64.b64encode(b"another secret, 24 bytes").decode()
    assert not verify_standard_webhooks(other, request.headers, request.body)


def test_a_secret_the_spec_cannot_read_is_refused_naming_the_fix():
    from gpu_guard.config import SETTINGS_BY_NAME

    parse = SETTINGS_BY_NAME["webhooks"].parse
    for bad in ("plain secret with spaces", "whsec_not*base64", "whsec_"):
        with pytest.raises(ValueError, match=r"webhooks\[0\]: the secret is (not base64|empty): a Standard Webhooks "
                                             r"secret is base64"):
            parse([{"format": "json", "url": "https://example.org/hook", "secret": bad}], False)


def test_generic_json_is_signed_the_standard_webhooks_way():
    n = notification()
    request = deliver({"format": "json", "secret": WHSEC}, n)
    headers = request.headers
    assert headers["content-type"].startswith("application/json")
    assert headers["webhook-id"] == n.id
    assert verify_standard_webhooks(WHSEC, headers, request.body)
    assert not verify_standard_webhooks("whsec_" + base64.b64encode(b"another secret").decode(), headers,
                                        request.body)
    tampered = request.body.replace(b"11 pauses", b"12 pauses")
    assert not verify_standard_webhooks(WHSEC, headers, tampered)
    payload = json.loads(request.body)
    assert payload["type"] == "gpu_guard.alert.firing"
    assert payload["data"]["rule"] == "many_pauses" and payload["data"]["details"] == {"pauses_24h": 11}
    assert payload["data"]["source"] == "test-host" and payload["timestamp"].endswith("Z")


def test_retries_keep_the_message_id_and_sign_each_attempt_anew():
    n = notification()
    with Receiver(script=[500, 200]) as receiver:
        sender = TargetSender({"name": "t", "format": "json", "secret": WHSEC, "url": receiver.url},
                              OpsMetrics(), "h", retries=lambda: 2, timeout_s=lambda: 2.0, backoff_s=1.1)
        sender.submit(n)
        first, second = receiver.wait_for(2)
        sender.stop()
    for r in (first, second):
        assert verify_standard_webhooks(WHSEC, r.headers, r.body)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == n.id
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])


def test_dingtalk_markdown_with_its_sign():
    secret = "SEC0123456789abcdef"
    request = deliver({"format": "dingtalk", "secret": secret, "path": "/robot/send?access_token=abc"},
                      notification(), answer=b'{"errcode":0,"errmsg":"ok"}')
    query = parse_qs(urlsplit(request.path).query)
    assert query["access_token"] == ["abc"]
    timestamp = query["timestamp"][0]
    assert abs(int(timestamp) - time.time() * 1000) < 60_000, "DingTalk wants milliseconds"
    expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest())
    assert query["sign"][0].encode() == expected  # parse_qs already url-decoded it once
    assert unquote_plus(urlsplit(request.path).query.split("sign=")[1]).encode() == expected
    payload = json.loads(request.body)
    assert payload["msgtype"] == "markdown"
    assert set(payload["markdown"]) == {"title", "text"}
    assert "[FIRING]" in payload["markdown"]["title"] and "11 pauses" in payload["markdown"]["text"]


def test_dingtalk_without_secret_has_no_sign():
    request = deliver({"format": "dingtalk", "path": "/robot/send?access_token=abc"}, notification(RESOLVED),
                      answer=b'{"errcode":0,"errmsg":"ok"}')
    assert set(parse_qs(urlsplit(request.path).query)) == {"access_token"}
    assert "[RESOLVED]" in json.loads(request.body)["markdown"]["title"]


def test_feishu_post_message_with_its_sign():
    secret = "feishu-secret"
    request = deliver({"format": "feishu", "secret": secret}, notification(),
                      answer=b'{"code":0,"msg":"success","data":{}}')
    payload = json.loads(request.body)
    timestamp = payload["timestamp"]
    assert isinstance(timestamp, str) and abs(int(timestamp) - time.time()) < 60, "Feishu wants seconds"
    key = f"{timestamp}\n{secret}".encode()
    assert payload["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert payload["msg_type"] == "post"
    post = payload["content"]["post"]["zh_cn"]
    assert "[FIRING]" in post["title"]
    assert all(isinstance(line, list) and all(part["tag"] == "text" for part in line) for line in post["content"])


def test_slack_incoming_webhook_text_and_blocks():
    request = deliver({"format": "slack"}, notification())
    payload = json.loads(request.body)
    assert "11 pauses" in payload["text"]
    assert [b["type"] for b in payload["blocks"]] == ["header", "section", "context"]
    assert payload["blocks"][0]["text"]["type"] == "plain_text"
    assert payload["blocks"][1]["text"]["type"] == "mrkdwn"


@pytest.mark.parametrize("fmt,answer", [("dingtalk", b'{"errcode":310000,"errmsg":"sign not match"}'),
                                        ("feishu", b'{"code":19021,"msg":"sign match fail"}')])
def test_a_chat_service_error_code_at_http_200_is_a_failure(fmt, answer):
    with Receiver(script=[200], body=answer) as receiver:
        sender = TargetSender({"name": "t", "format": fmt, "url": receiver.url + "/x?access_token=a"},
                              OpsMetrics(), "h", retries=lambda: 0, timeout_s=lambda: 2.0)
        sender.submit(notification())
        receiver.wait_for(1)
        sender.stop()
    assert sender.delivered == 0 and sender.dead_letters == 1
    assert "refused the message" in sender.last_error


def test_http_post_reports_http_errors_as_answers():
    with Receiver(script=[(503, b"busy")]) as receiver:
        assert http_post(receiver.url, b"{}", {}, 2.0) == (503, b"busy")
