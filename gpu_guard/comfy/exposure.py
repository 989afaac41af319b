"""What the guard does about the addresses ComfyUI listens on (its --listen): a loud warning when it
listens beyond loopback without GPU_GUARD_TOKEN, and the load-balancer agent on the same address.

Without a token the write routes trust a direct loopback client. A proxy on the same host that adds
no X-Forwarded-* header makes every client look like one, so a server reachable from the network
must have a token (docs/scale_out.md, "A locked-down proxy").
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from ..lb_agent import LoadBalancerAgent
from .config_access import is_loopback

_log = logging.getLogger("gpu_guard.comfy")


def listen_addresses() -> list:
    """ComfyUI's --listen addresses (comma-separated there); loopback when unknown."""
    try:
        from comfy.cli_args import args
        listen = args.listen
    except Exception:  # noqa: BLE001 - another embedder: nothing known about its sockets
        return ["127.0.0.1"]
    return [address.strip() for address in str(listen or "127.0.0.1").split(",") if address.strip()]


def exposure_warning(addresses: Sequence[str], token_set: bool) -> Optional[str]:
    """The warning for a server listening beyond loopback without a token, or None."""
    exposed = [address for address in addresses if not (address == "localhost" or is_loopback(address))]
    if token_set or not exposed:
        return None
    return (f"ComfyUI listens on {', '.join(exposed)} (beyond loopback) and GPU_GUARD_TOKEN is not set: any "
            "proxy on this host that forwards without X-Forwarded-For lets every network client pause, drain "
            "and reconfigure the guard. Set GPU_GUARD_TOKEN (and send it as 'Authorization: Bearer <token>'), "
            "or listen on 127.0.0.1 only")


def check_exposure(guard, addresses: Sequence[str]) -> None:
    warning = exposure_warning(addresses, guard.token_set)
    if warning:
        _log.warning("!" * 20 + " VRAM guard: %s " + "!" * 20, warning)


def start_lb_agent(guard, addresses: Sequence[str]) -> Optional[LoadBalancerAgent]:
    """The agent on the first listen address, when lb_agent_port is set."""
    port = guard.config.lb_agent_port
    if not port:
        return None
    host = addresses[0] if addresses else "127.0.0.1"
    return LoadBalancerAgent(guard, "" if host in ("0.0.0.0", "::") else host, port).start()
