"""The journal's rows: a queue item encoded for the SQLite store (gpu_guard.journal_store) without its
sensitive part, and read back. Keys are (number, prompt id), ComfyUI's own heap order."""
from __future__ import annotations

import json
from dataclasses import dataclass

from .journal_store import encode_item

SENSITIVE_INDEX = 5  # ComfyUI's queue item: (number, prompt_id, prompt, extra_data, outputs, sensitive)


@dataclass(frozen=True)
class JournaledPrompt:
    """One prompt read back from the journal. `item` is the queue item with an empty sensitive dict
    in its place; `sensitive_keys` names the keys it had there (their values were never written)."""

    prompt_id: str
    number: float
    running: bool
    item: tuple
    sensitive_keys: tuple

    @property
    def key(self) -> tuple:
        return (number_of(self.number), str(self.prompt_id))


def number_of(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def key_of(item) -> tuple:
    """(number, prompt id): ComfyUI's own order of the heap, and unique even when ids repeat."""
    return (number_of(item[0]), str(item[1]))


def stored(key) -> tuple:
    """A key as the store takes it: (prompt id, number)."""
    return (key[1], key[0])


def encode_row(prompt_id, item, sensitive_keys: frozenset) -> tuple:
    """The row (prompt id, number, item JSON, sensitive key names JSON) of one queue item, without its
    sensitive part and without the `sensitive_keys` of its extra data. Raises TypeError/ValueError for
    an item JSON cannot carry."""
    sensitive = item[SENSITIVE_INDEX] if len(item) > SENSITIVE_INDEX else None
    kept = list(item[:SENSITIVE_INDEX]) + list(item[SENSITIVE_INDEX + 1:])
    keys = set(sensitive) if isinstance(sensitive, dict) else set()
    if len(kept) > 3 and isinstance(kept[3], dict) and sensitive_keys & kept[3].keys():
        keys |= sensitive_keys & kept[3].keys()
        kept[3] = {k: v for k, v in kept[3].items() if k not in sensitive_keys}
    try:
        item_json = encode_item(kept, len(item) > SENSITIVE_INDEX)
    except RuntimeError:  # a dict changed while it was read (another pack's thread): once more
        item_json = encode_item(kept, len(item) > SENSITIVE_INDEX)
    return (str(prompt_id), number_of(item[0]), item_json, json.dumps(sorted(keys)) if keys else "[]")


def decode_row(row) -> JournaledPrompt:
    data = json.loads(row.item_json)
    kept = data["item"]
    if not isinstance(kept, list) or len(kept) < 5:
        raise ValueError("the item is not a queue item")
    item = tuple(kept[:SENSITIVE_INDEX]) + (({},) if data.get("had_sensitive") else ()) + tuple(kept[SENSITIVE_INDEX:])
    if str(item[1]) != row.prompt_id:
        raise ValueError(f"the item holds prompt id {item[1]!r}")
    return JournaledPrompt(prompt_id=item[1], number=item[0], running=bool(row.running), item=item,
                           sensitive_keys=tuple(json.loads(row.keys_json)))
