"""Stopping the server processes the tests start (ComfyUI, Prometheus, Alertmanager, HAProxy)."""
from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, timeout: float) -> int | None:
    """Terminate, then kill after `timeout` seconds; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode
