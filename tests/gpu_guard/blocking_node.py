"""A custom node for liveness drills: it blocks the worker until a release file appears.

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


NODE_CLASS_MAPPINGS = {"GuardTestBlock": GuardTestBlock}
'''


def install_blocking_node(server_base: Path) -> None:
    folder = Path(server_base) / "custom_nodes" / "gpu_guard_test_block"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(NODE_SOURCE, encoding="utf-8")


def blocking_workflow(release_file: Path, seed: int = 0) -> dict:
    return {"1": {"class_type": "GuardTestBlock", "inputs": {"release_file": str(release_file), "seed": seed}}}
