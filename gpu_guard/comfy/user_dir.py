"""This ComfyUI's claim on its user directory (gpu_guard.dir_owner), from ComfyUI's own arguments:
`--cuda-device` names a stable identity, `--port` names the files of a second process without one."""
from __future__ import annotations

import os
from typing import Optional

from .. import dir_owner


def comfy_identity() -> tuple:
    """(cuda device or None, port or None) from ComfyUI's parsed arguments."""
    try:
        from comfy.cli_args import args  # ComfyUI's module

        return getattr(args, "cuda_device", None), getattr(args, "port", None)
    except Exception:  # noqa: BLE001 - outside ComfyUI, or a release without these arguments
        return None, None


def user_file(guard, file_name: str, identity=comfy_identity) -> Optional[str]:
    """The path of one of the guard's files next to gpu_guard.json, named for this process; None when
    the user directory is unknown or another process holds even this one's names."""
    if not guard.config_file:
        return None
    folder = os.path.dirname(os.path.abspath(guard.config_file))
    name = dir_owner.claim(folder, *identity()).name(file_name)
    return os.path.join(folder, name) if name else None


def claim_note(guard, identity=comfy_identity) -> Optional[str]:
    if not guard.config_file:
        return None
    return dir_owner.claim(os.path.dirname(os.path.abspath(guard.config_file)), *identity()).note
