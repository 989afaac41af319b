"""Websocket events: the guard's events and the prompts it failed, sent through ComfyUI's server.

`PromptServer.send_sync` hands the message to the server's event loop with call_soon_threadsafe, so
it may be called from the poll thread and the worker thread alike, and it never blocks.
"""
from __future__ import annotations

from .client_privacy import HELD_EVENTS, masked, owners


def forward_guard_events(guard, server):
    """Send every guard event (gpu_guard.status, gpu_guard.held, gpu_guard.alert) to all clients; held
    lists go out without client ids, and each client with held prompts then gets its own copy that
    names its prompts (client_privacy). Returns the function that stops forwarding."""

    def forward(event, payload):
        if event not in HELD_EVENTS:
            server.send_sync(event, payload)
            return
        server.send_sync(event, masked(payload))
        for client_id in owners(payload):
            server.send_sync(event, masked(payload, keep=client_id), client_id)

    return guard.subscribe(forward)


def failed_prompt_notifier(server):
    """A callback(item, messages) that replays to the prompt's client the status messages recorded
    for a prompt the guard ended as an error, as ComfyUI's executor does for a failing prompt."""

    def notify(item, messages):
        extra_data = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
        client_id = extra_data.get("client_id")
        if client_id is None:
            return
        for event, data in messages:
            server.send_sync(event, data, client_id)
        server.send_sync("executing", {"node": None, "prompt_id": item[1]}, client_id)

    return notify
