"""The /prompt admission middleware in front of a handler that awaits before it queues (as ComfyUI's
does: body, then validation): concurrent posts must not overshoot max_held."""
import asyncio
import time

import aiohttp
from aiohttp import web

from gpu_guard import Guard
from gpu_guard.comfy.admission import PromptAdmission
from tests.gpu_guard.stand_in_queue import StandInPromptQueue
from tests.harness.coroutines import run_coroutine
from tests.harness.probe_file import ProbeFile
from tests.harness.server import free_port


def paused_guard(tmp_path, max_held):
    probe = ProbeFile(tmp_path / "probe.json")
    probe.write_ratio(0.95)
    guard = Guard.from_environment(environ={"GPU_GUARD_PROBE": probe.spec, "GPU_GUARD_MAX_HELD": str(max_held),
                                            "GPU_GUARD_RETRY_AFTER_S": "4"})
    guard.poll_once()
    assert guard.state == "paused"
    return guard


async def burst(queue, admission, posts):
    async def slow_prompt_handler(request):
        body = await request.json()
        await asyncio.sleep(0.05)  # validation time: every other post arrives meanwhile
        queue.put((body["number"], f"prompt-{body['number']}", {}, {}, [], {}))
        return web.json_response({"prompt_id": f"prompt-{body['number']}"})

    app = web.Application(middlewares=[admission.middleware])
    app.router.add_post("/prompt", slow_prompt_handler)
    app.router.add_post("/api/prompt", slow_prompt_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            async def post(i):
                path = "/prompt" if i % 2 else "/api/prompt"
                async with session.post(f"http://127.0.0.1:{port}{path}", json={"number": i}) as response:
                    return response.status, response.headers.get("Retry-After"), await response.json()
            return await asyncio.gather(*(post(i) for i in range(posts)))
    finally:
        await runner.cleanup()


def test_fifty_concurrent_posts_against_max_held_ten(tmp_path):
    guard = paused_guard(tmp_path, max_held=10)
    queue = StandInPromptQueue()
    admission = PromptAdmission(guard, queue)
    started = time.monotonic()
    answers = run_coroutine(burst(queue, admission, 50))
    statuses = sorted(status for status, _retry, _body in answers)
    assert statuses.count(200) == 10 and statuses.count(429) == 40, statuses
    assert len(queue.queue) == 10
    for status, retry_after, body in answers:
        if status == 429:
            assert retry_after == "4"
            assert body["error"]["type"] == "gpu_guard_busy" and body["node_errors"] == {}
    assert admission.rejected == 40
    assert time.monotonic() - started < 10


def test_places_free_up_when_prompts_leave_the_queue(tmp_path):
    guard = paused_guard(tmp_path, max_held=3)
    queue = StandInPromptQueue()
    admission = PromptAdmission(guard, queue)
    first = run_coroutine(burst(queue, admission, 5))
    assert sorted(s for s, _r, _b in first) == [200, 200, 200, 429, 429]
    queue.queue.clear()  # e.g. POST /queue {"clear": true}
    second = run_coroutine(burst(queue, admission, 5))
    assert sorted(s for s, _r, _b in second) == [200, 200, 200, 429, 429]
