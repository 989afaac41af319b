"""The VRAM guard's ComfyUI adapter. `install()` is called once when ComfyUI imports the pack.

ComfyUI 0.3.6x+ creates `PromptServer` (and with it `prompt_queue`) before it imports custom
nodes, and copies `PromptServer.instance.routes` into the app after the import (main.py
`start_comfyui`). When the server or its queue is not there yet at import time (other embedders,
older releases), a daemon thread waits for them and installs then.
"""
from __future__ import annotations

import logging
import os
import threading
import time

_log = logging.getLogger("gpu_guard.comfy")

CONFIG_FILE_NAME = "gpu_guard.json"
LAZY_WAIT_S = 300.0
LAZY_POLL_S = 0.05

_lock = threading.Lock()
_state = {"adapter": None, "installing": False}


def _prompt_server_class():
    try:
        from server import PromptServer  # ComfyUI's top-level module
    except ImportError:
        return None
    return PromptServer


def _config_file():
    try:
        import folder_paths
        return os.path.join(folder_paths.get_user_directory(), CONFIG_FILE_NAME)
    except Exception:  # noqa: BLE001 - no user directory: settings come from the environment only
        _log.warning("VRAM guard: ComfyUI's user directory is unknown; the config file is not used")
        return None


def build_guard(environ=None):
    """The guard for this ComfyUI: settings from the environment and the config file, the probe on the
    device ComfyUI executes on (off with the auto probe when that is not a CUDA GPU)."""
    from ..guard import Guard
    from .compute_device import comfy_compute_device

    device = comfy_compute_device()
    return Guard.from_environment(config_file=_config_file(), environ=environ, device_index=device.index,
                                  compute_device=device.type)


def _routes_already_in_app(server) -> bool:
    return any(getattr(resource, "canonical", None) == "/prompt" for resource in server.app.router.resources())


def _install_into(server, late: bool):
    from .adapter import ComfyAdapter

    guard = build_guard()
    adapter = ComfyAdapter(guard, server)
    adapter.attach(routes_frozen_into_app=late and _routes_already_in_app(server))
    guard.start()
    _state["adapter"] = adapter
    _expose(guard)
    _log.info("VRAM guard installed: state %s, parts %s", guard.state, ", ".join(adapter.attached))
    return adapter


def _expose(guard) -> None:
    """The exposure warning and the load-balancer agent (gpu_guard/comfy/exposure.py)."""
    from .exposure import check_exposure, listen_addresses, start_lb_agent

    try:
        addresses = listen_addresses()
        check_exposure(guard, addresses)
        _state["lb_agent"] = start_lb_agent(guard, addresses)
    except Exception:  # noqa: BLE001 - the guard works without them
        _log.exception("VRAM guard: the load-balancer agent could not start")


def _ready_server():
    server = getattr(_prompt_server_class(), "instance", None)
    if server is None or getattr(server, "prompt_queue", None) is None:
        return None
    return server


def _install_when_ready():
    deadline = time.monotonic() + LAZY_WAIT_S
    try:
        while time.monotonic() < deadline:
            server = _ready_server()
            if server is not None:
                with _lock:
                    _install_into(server, late=True)
                return
            time.sleep(LAZY_POLL_S)
        _log.error("VRAM guard: ComfyUI's prompt server did not appear within %.0f s; prompts run unguarded",
                   LAZY_WAIT_S)
    except Exception:  # noqa: BLE001 - never disturb ComfyUI
        _log.exception("VRAM guard failed to install; prompts run unguarded")
    finally:
        _state["installing"] = False


def install():
    """Create the guard from the environment and the config file, start it and hook it into
    ComfyUI. Idempotent; never raises (failures are logged and ComfyUI runs unguarded)."""
    try:
        with _lock:
            if _state["adapter"] is not None or _state["installing"]:
                return _state["adapter"]
            if _prompt_server_class() is None:
                _log.warning("VRAM guard: not running inside ComfyUI (no 'server' module); not installed")
                return None
            server = _ready_server()
            if server is not None:
                return _install_into(server, late=False)
            _state["installing"] = True
        _log.info("VRAM guard: ComfyUI's prompt server is not up yet; installing when it is")
        threading.Thread(target=_install_when_ready, name="gpu_guard-install", daemon=True).start()
    except Exception:  # noqa: BLE001 - never disturb ComfyUI
        _log.exception("VRAM guard failed to install; prompts run unguarded")
    return None


def installed_adapter():
    """The installed adapter, or None."""
    return _state["adapter"]
