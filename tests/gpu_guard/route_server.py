"""The guard's routes on a real aiohttp server of their own (loopback, own thread and loop), for tests
of the route logic that need no ComfyUI."""
from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from gpu_guard.comfy.routes import GuardRoutes
from tests.harness.server import free_port


class RouteServer:
    def __init__(self, guard, neighbours=None):
        self.guard, self.neighbours = guard, neighbours
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="route-server", daemon=True)

    async def _start(self):
        app = web.Application()
        for method, path, handler in GuardRoutes(self.guard, neighbours=lambda: self.neighbours).definitions():
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
