"""Custom nodes for drills: one blocks the worker until a release file appears (liveness), one
sleeps for a given time (a prompt of known duration).

`install_blocking_node(base_dir)` writes it into a server's custom_nodes folder before the server
starts; the release file is the node's input, so each test decides when (or whether) it returns.
"""
from __future__ import annotations

from pathlib import Path

NODE_SOURCE = '''
import os
import time


class GuardTestBlock:
    """Blocks until the file named by `release_file` exists (a stuck node, for liveness drills)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"release_file": ("STRING", {"default": ""}), "seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ()
    FUNCTION = "block"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def block(self, release_file, seed):
        while not os.path.exists(release_file):
            time.sleep(0.05)
        return {}


class GuardTestSleep:
    """Takes `seconds` to run (a prompt of a known duration)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seconds": ("FLOAT", {"default": 1.0}), "seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ()
    FUNCTION = "sleep"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def sleep(self, seconds, seed):
        time.sleep(seconds)
        return {}


NODE_CLASS_MAPPINGS = {"GuardTestBlock": GuardTestBlock, "GuardTestSleep": GuardTestSleep}
'''


def install_blocking_node(server_base: Path) -> None:
    folder = Path(server_base) / "custom_nodes" / "gpu_guard_test_block"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(NODE_SOURCE, encoding="utf-8")


def blocking_workflow(release_file: Path, seed: int = 0) -> dict:
    return {"1": {"class_type": "GuardTestBlock", "inputs": {"release_file": str(release_file), "seed": seed}}}


def sleep_node(seconds: float, seed: int = 0) -> dict:
    return {"class_type": "GuardTestSleep", "inputs": {"seconds": seconds, "seed": seed}}
