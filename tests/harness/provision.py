"""Builds a ComfyServer ready for a test or the demo: guard probe file and DDColor checkpoint in place."""
from __future__ import annotations

from pathlib import Path

from .probe_file import ProbeFile
from .server import ComfyServer
from .weights import place_checkpoint


def build_server(base_dir: str | Path, *, name: str, env: dict[str, str] | None = None,
                 probe: bool = True, checkpoint: str | Path | None = None,
                 extra_args: tuple[str, ...] = (), pack_root: str | Path | None = None,
                 **server_options) -> ComfyServer:
    """A ComfyServer (not started yet) with its own folders under `base_dir`.

    probe: unless `env` already sets GPU_GUARD_PROBE, the guard reads `base_dir/probe.json`, written
    with a low reading (ratio 0.1) and reachable as `server.probe`.
    checkpoint: hard-linked into the server's ddcolor folder; its name is `server.checkpoint_name`.
    server_options: passed on to ComfyServer (log_path, inherit_guard_env, ...).
    """
    base_dir = Path(base_dir)
    if pack_root is not None:
        server_options["pack_root"] = pack_root
    server = ComfyServer(base_dir, name=name, env=env, extra_args=extra_args, **server_options)
    if probe and "GPU_GUARD_PROBE" not in server.env:
        server.probe = ProbeFile(base_dir / "probe.json")
        server.probe.write_low()
        server.env["GPU_GUARD_PROBE"] = server.probe.spec
    if checkpoint is not None:
        server.checkpoint_name = place_checkpoint(checkpoint, server.models_dir).name
    return server
