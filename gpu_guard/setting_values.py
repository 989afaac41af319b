"""How a setting's value is read: parsers that take a value from JSON (the config file, HTTP) or from
text (`from_text`: an environment variable) and return it checked, or raise ValueError naming what is
allowed. Each parser's `allowed` says so in words for the logs and the docs."""
from __future__ import annotations

from typing import Any, Callable

PROBE_NAMES = ("auto", "nvml", "torch", "ram", "off")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def number(lo: float, hi: float, lo_open: bool = False, integer: bool = False) -> Callable:
    """A parser for a number in [lo, hi] (or (lo, hi] with lo_open); text is accepted from the environment."""
    lo_mark = "(" if lo_open else "["
    kind = "an integer" if integer else "a number"
    shown = (f"{int(lo)}, {int(hi)}" if integer else f"{lo:g}, {hi:g}")
    allowed = f"{kind} in {lo_mark}{shown}]"

    def parse(value: Any, from_text: bool) -> Any:
        if from_text:
            try:
                value = int(value) if integer else float(value)
            except ValueError:
                raise ValueError(f"must be {allowed}, got {value!r}") from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {allowed}, got {value!r}")
        elif integer and int(value) != value:
            raise ValueError(f"must be {allowed}, got {value!r}")
        if value != value or value > hi or value < lo or (lo_open and value == lo):
            raise ValueError(f"must be {allowed}, got {value!r}")
        return int(value) if integer else float(value)

    parse.allowed = allowed
    return parse


def boolean(value: Any, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise ValueError(f"must be true or false (1/0, yes/no, on/off), got {value!r}")


boolean.allowed = "true or false"


def choice(*options: str) -> Callable:
    allowed = " | ".join(options)

    def parse(value: Any, from_text: bool) -> str:
        if isinstance(value, str) and value.strip().lower() in options:
            return value.strip().lower()
        raise ValueError(f"must be one of {allowed}, got {value!r}")

    parse.allowed = allowed
    return parse


def probe_spec(value: Any, from_text: bool) -> str:
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in PROBE_NAMES:
            return text.lower()
        if any(text.startswith(kind) and len(text) > len(kind) for kind in ("file:", "sim:")):
            return text
    raise ValueError(f"must be one of {' | '.join(PROBE_NAMES)} | file:PATH | sim:PATH, got {value!r}")


probe_spec.allowed = "auto | nvml | torch | ram | off | file:PATH | sim:PATH"


def folder(value: Any, from_text: bool) -> str:
    if isinstance(value, str) and "\x00" not in value:
        return value.strip()
    raise ValueError(f"must be a folder path (empty = the default), got {value!r}")


folder.allowed = "a folder path, or empty for the default"
