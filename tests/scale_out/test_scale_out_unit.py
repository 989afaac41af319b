"""Scale-out pieces without ComfyUI: the token as Kubernetes delivers it, readiness while paused, the
load-balancer agent over real TCP, the exposure warning and the VIP lanes' enforcement under a fault."""
import logging
import socket

import aiohttp
from aiohttp import web

from gpu_guard import Guard
from gpu_guard import config as config_module
from gpu_guard.comfy.admission import PromptAdmission
from gpu_guard.comfy.exposure import exposure_warning
from gpu_guard.comfy.priority_lanes import IGNORED_HEADER, on_prompt_handler
from gpu_guard.config import GuardConfig
from gpu_guard.lb_agent import LoadBalancerAgent
from gpu_guard.operator_token import read_token
from gpu_guard.priority import BAND, enforced, parse_classes
from tests.gpu_guard.stand_in_queue import StandInPromptQueue
from tests.harness.coroutines import run_coroutine
from tests.harness.server import free_port

TOKEN = "a-token-as-kustomize-builds-it"


def test_the_token_loses_the_newline_of_its_file_on_the_server_side():
    source = config_module.load(environ={"GPU_GUARD_TOKEN": TOKEN + "\n"})
    guard = Guard(source.config, None, token=source.token)
    assert guard.check_token(TOKEN) and not guard.check_token(TOKEN + "\n")
    assert read_token("  \n") == (None, None) and read_token(None) == (None, None)


def test_a_token_a_header_cannot_carry_is_refused_loudly_and_keeps_the_writes_locked(caplog):
    for raw, shown in (("abc\ndef-with-a-newline-inside", "'\\n'"), ("tok\x00en", "'\\x00'"), ("jeton-é", "'é'")):
        with caplog.at_level(logging.ERROR, logger="gpu_guard.config"):
            source = config_module.load(environ={"GPU_GUARD_TOKEN": raw})
        message = next(r.getMessage() for r in caplog.records if "GPU_GUARD_TOKEN is refused" in r.getMessage())
        assert shown in message and "printable ASCII" in message
        guard = Guard(source.config, None, token=source.token)
        assert guard.token_set and not guard.check_token(raw) and not guard.check_token(raw.strip())
        caplog.clear()


def _off_guard(**settings):
    return Guard(GuardConfig(probe="off", **settings), None)


def test_a_pause_that_can_hold_is_ready_strict_and_full_are_not():
    guard = _off_guard(max_held=1)
    guard.operator_pause("ops", "maintenance")
    ok, reason = guard.ready()
    assert ok and reason.endswith("new prompts are held")
    guard.note_pending([_entry("a")])
    guard.decide_pass(_entry("a"), lambda: _pending(["a"]))
    ok, reason = guard.ready()
    assert not ok and "hold queue full (1 held, max_held=1)" in reason
    strict = _off_guard(ready_strict=True)
    strict.operator_pause("ops")
    assert strict.ready()[0] is False


def _entry(prompt_id):
    from gpu_guard.policy import QueueEntry
    return QueueEntry(prompt_id, 1, {}, None)


def _pending(ids):
    from gpu_guard.pending import as_pending
    return as_pending([_entry(i) for i in ids])


def agent_line(address) -> str:
    with socket.create_connection(address, timeout=5) as sock:
        return sock.makefile().readline().strip()


def test_the_agent_answers_weights_haproxy_understands():
    guard = _off_guard()
    agent = LoadBalancerAgent(guard, "127.0.0.1", 0).start()
    try:
        assert agent_line(agent.address) == "up 100%"
        guard.operator_pause("ops")
        assert agent_line(agent.address) == "up 1%"
        guard.drain("ops")
        assert agent_line(agent.address) == "up 0%"
    finally:
        agent.stop()


def test_listening_beyond_loopback_without_a_token_is_named():
    warning = exposure_warning(["0.0.0.0", "127.0.0.1"], token_set=False)
    assert "0.0.0.0" in warning and "GPU_GUARD_TOKEN" in warning and "127.0.0.1 (" not in warning
    assert exposure_warning(["0.0.0.0"], token_set=True) is None
    assert exposure_warning(["127.0.0.1", "::1", "localhost"], token_set=False) is None
    assert "::" in exposure_warning(["::"], token_set=False)


CLASSES = parse_classes([{"name": "vip", "token": "vip-token-0123456789"},
                         {"name": "tests", "token": "tests-token-0123456789"}], False)


def test_enforcement_is_on_by_default_once_classes_exist():
    assert enforced(GuardConfig()) is False
    assert enforced(GuardConfig(priority_classes=CLASSES)) is True
    assert enforced(GuardConfig(priority_classes=CLASSES, priority_enforce=False)) is False
    assert config_module.load(environ={"GPU_GUARD_PRIORITY_ENFORCE": "auto"}).config.priority_enforce == "auto"


class FaultyGuard(Guard):
    def priority_class_for(self, token):
        raise RuntimeError("injected guard fault")


async def _post_prompts(guard, bodies, headers=None):
    """POST each body to /prompt through the admission middleware; the handler runs the on_prompt
    handler as ComfyUI's trigger_on_prompt does (a handler's exception is logged, the data kept)."""
    on_prompt = on_prompt_handler(guard)
    queued = []

    async def post_prompt(request):
        data = await request.json()
        try:
            data = on_prompt(data)
        except Exception:  # noqa: BLE001 - ComfyUI 0.3.75 server.trigger_on_prompt does the same
            pass
        queued.append(data)
        return web.json_response({"prompt_id": str(len(queued))})

    app = web.Application(middlewares=[PromptAdmission(guard, StandInPromptQueue()).middleware])
    app.router.add_post("/prompt", post_prompt)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    answers = []
    try:
        async with aiohttp.ClientSession() as session:
            for body in bodies:
                async with session.post(f"http://127.0.0.1:{port}/prompt", json=body, headers=headers) as response:
                    answers.append((response.status, response.headers.get(IGNORED_HEADER)))
    finally:
        await runner.cleanup()
    return answers, queued


def test_a_guard_fault_on_prompt_still_strips_front_under_enforcement():
    guard = FaultyGuard(GuardConfig(probe="off", priority_classes=CLASSES), None)
    answers, queued = run_coroutine(_post_prompts(guard, [{"prompt": {}, "front": True, "number": -5e12}]))
    assert answers == [(200, "front, number")]
    assert "front" not in queued[0] and "number" not in queued[0]


def test_a_class_may_not_set_a_number_outside_its_band():
    guard = Guard(GuardConfig(probe="off", priority_classes=CLASSES), None)
    low_class = {"Authorization": "Bearer tests-token-0123456789"}
    vip_band = -2 * BAND + 7  # inside vip's band, ahead of every "tests" prompt
    own_band = -BAND + 7
    answers, queued = run_coroutine(_post_prompts(guard, [{"prompt": {}, "number": vip_band},
                                                        {"prompt": {}, "number": own_band}], low_class))
    assert answers == [(200, "number"), (200, None)]
    assert -BAND <= queued[0]["number"] < 0 and queued[0]["number"] != vip_band
    assert queued[1]["number"] == own_band
