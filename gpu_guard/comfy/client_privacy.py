"""Client ids are capabilities in ComfyUI: whoever knows one can open the websocket as that client and
receive its previews and results. The held list therefore shows a prompt's client id only to that
client itself (it names itself with ?client_id=, or receives its own copy of a websocket event) and to
clients allowed to operate the guard; everyone else sees null."""
from __future__ import annotations

from typing import Optional

HELD_EVENTS = ("gpu_guard.held", "gpu_guard.status")


def masked(payload: dict, keep: Optional[str] = None) -> dict:
    """A copy of a status or held payload whose held entries carry client_id only where it is `keep`."""
    held = payload.get("held")
    if not held:
        return payload
    return {**payload, "held": [entry if keep is not None and entry.get("client_id") == keep
                                else {**entry, "client_id": None} for entry in held]}


def owners(payload: dict) -> set:
    return {entry["client_id"] for entry in payload.get("held") or () if entry.get("client_id")}
