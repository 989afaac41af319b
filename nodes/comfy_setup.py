"""What the pack sets up inside a running ComfyUI when its nodes are imported.

Each step is independent and logged on failure, so one broken step never stops the nodes loading.
"""
import logging

_log = logging.getLogger(__name__)


def _step(what, fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - a side feature must never break ComfyUI's start
        _log.exception("DDColor: %s failed; the nodes still load", what)


def set_up():
    import folder_paths

    from .model_folder import register_model_folder
    from .sample_image import install_sample

    _step("registering the ddcolor model folder", register_model_folder)
    _step("copying the sample photo to the input folder", lambda: install_sample(folder_paths.get_input_directory()))
    _step("adding the /ddcolor/models route", _add_routes)


def _add_routes():
    from server import PromptServer

    from .routes import add_routes

    if getattr(PromptServer, "instance", None) is not None:
        add_routes(PromptServer.instance)
