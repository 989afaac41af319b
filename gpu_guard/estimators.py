"""Peak-memory estimators for the fast lane.

The contract for node packs: a node class may define an optional classmethod

    @classmethod
    def VRAM_ESTIMATE(cls, inputs, prompt) -> int | None   # peak device bytes; None: cannot tell

read through ComfyUI's `nodes.NODE_CLASS_MAPPINGS` (the adapter installs that lookup with
set_class_lookup), so any pack can take part without importing this one. `register(class_type, fn)`
keeps a table for classes that cannot carry the attribute (ComfyUI's own nodes); the class attribute
wins. A prompt's estimate is the sum over its nodes (conservative: ComfyUI may keep one node's model
loaded while the next runs). A node without an estimate, or whose estimate cannot tell, makes the
whole prompt unknown, and an unknown prompt is never fast-laned.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping, Optional

log = logging.getLogger("gpu_guard.estimators")

Estimator = Callable[[Mapping[str, Any], Mapping[str, Any]], Optional[int]]

# ComfyUI core nodes that only touch files and system memory.
CPU_ONLY_NODES = ("LoadImage", "LoadImageMask", "SaveImage", "PreviewImage")

ATTRIBUTE = "VRAM_ESTIMATE"

_lock = threading.Lock()
_registry: dict = {}
_class_lookup: Callable[[str], Any] = lambda class_type: None


def set_class_lookup(lookup: Optional[Callable[[str], Any]]) -> None:
    """lookup(class_type) -> the node class or None (the adapter: ComfyUI's NODE_CLASS_MAPPINGS.get)."""
    global _class_lookup
    _class_lookup = lookup or (lambda class_type: None)


def _estimator_of(class_type: str) -> Optional[Callable]:
    try:
        node_class = _class_lookup(class_type)
    except Exception:  # noqa: BLE001 - a broken lookup only costs the fast lane
        log.exception("VRAM guard: looking up node class %s failed", class_type)
        node_class = None
    fn = getattr(node_class, ATTRIBUTE, None) if node_class is not None else None
    if callable(fn):
        return fn
    with _lock:
        return _registry.get(class_type)


def register(class_type: str, fn: Estimator) -> None:
    """Register (or replace) the estimator of one node class."""
    if not isinstance(class_type, str) or not class_type:
        raise ValueError(f"class_type must be a node class name, got {class_type!r}")
    if not callable(fn):
        raise TypeError(f"the estimator for {class_type} must be callable(node_inputs, prompt), got {fn!r}")
    with _lock:
        _registry[class_type] = fn


def unregister(class_type: str) -> None:
    with _lock:
        _registry.pop(class_type, None)


def registered() -> tuple:
    with _lock:
        return tuple(sorted(_registry))


def estimate_node(class_type: str, inputs: Mapping[str, Any], prompt: Mapping[str, Any]) -> Optional[int]:
    fn = _estimator_of(class_type)
    if fn is None:
        return None
    try:
        value = fn(inputs, prompt)
    except Exception:  # noqa: BLE001 - a broken estimator only costs the fast lane
        log.exception("VRAM guard estimator for %s failed; the prompt counts as unknown", class_type)
        return None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        log.error("VRAM guard estimator for %s returned %r, not a byte count; the prompt counts as unknown",
                  class_type, value)
        return None
    return int(value)


def estimate_prompt(prompt: Any, unknown: Optional[int] = None) -> Optional[int]:
    """Estimated peak bytes of an API-format prompt, or None when any node's cost is unknown (`unknown`:
    count such a node as this many bytes instead, e.g. 0 for a working set of the known part)."""
    if not isinstance(prompt, Mapping) or not prompt:
        return unknown
    total = 0
    for node in prompt.values():
        cost = None
        if isinstance(node, Mapping) and isinstance(node.get("class_type"), str):
            inputs = node.get("inputs")
            cost = estimate_node(node["class_type"], inputs if isinstance(inputs, Mapping) else {}, prompt)
        if cost is None:
            if unknown is None:
                return None
            cost = unknown
        total += cost
    return total


for _name in CPU_ONLY_NODES:
    register(_name, lambda inputs, prompt: 0)
