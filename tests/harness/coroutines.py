"""Run a coroutine to completion from a test, whatever ran before it in the session."""
from __future__ import annotations

import asyncio
import concurrent.futures


def run_coroutine(coroutine):
    """asyncio.run on a thread of its own: a test earlier in the session (Playwright's sync API) may
    leave the main thread's event loop marked as running, and asyncio.run refuses to start beside it."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
