"""The guard's facade: the one object the ComfyUI adapter talks to.

It ties together the probe, the hysteresis monitor (fed by a background poll thread), the admission
policy, the settings and the metrics. Nothing here imports ComfyUI; the adapter feeds it the queue's
entries and acts on its verdicts.

Thread safety: every public method may be called from any thread (ComfyUI's worker thread, the
aiohttp loop, the poll thread). Event callbacks run on the thread that caused the change and must
not block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

RUN = "run"
HOLD = "hold"
FAIL = "fail"

LANE_NORMAL = "normal"  # the guard is running (or off): nothing to hold
LANE_FAST = "fast"  # paused, but the prompt's estimated peak fits in the free memory


@dataclass(frozen=True)
class QueueEntry:
    """One pending prompt as the adapter sees it in ComfyUI's queue."""

    prompt_id: str
    number: float  # ComfyUI's queue number (front-of-queue prompts have negative numbers)
    prompt: Mapping[str, Any] = field(default_factory=dict)  # the API-format graph
    client_id: Optional[str] = None
    enqueued_at: Optional[float] = None  # monotonic time the adapter first saw it (None: now)


@dataclass(frozen=True)
class Verdict:
    """What to do with one entry: RUN (pop and execute), HOLD (leave it queued) or FAIL."""

    kind: str  # RUN | HOLD | FAIL
    lane: Optional[str] = None  # for RUN: LANE_NORMAL or LANE_FAST
    message: Optional[str] = None  # for FAIL: the error to put into ComfyUI's history
    estimated_bytes: Optional[int] = None  # the prompt's estimate when one was made


@dataclass(frozen=True)
class Admission:
    """The answer to a /prompt submission."""

    accept: bool
    retry_after_s: Optional[int] = None
    message: Optional[str] = None

    def error_body(self) -> dict:
        """The 429 body in ComfyUI's error shape (only meaningful when accept is False)."""
        raise NotImplementedError


class Guard:
    """VRAM guard facade; see docs/gpu_guard_core_api.md."""

    @classmethod
    def from_environment(cls, config_file=None, environ=None, device_index=None) -> "Guard":
        """Settings from defaults < config_file (JSON) < environment; never raises for bad values
        (each bad setting is logged loudly and falls back to its default)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the background poll thread (daemon). Idempotent."""
        raise NotImplementedError

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the poll thread. Idempotent."""
        raise NotImplementedError

    def poll_once(self) -> None:
        """Take one reading now and update the state (what the poll thread does every poll_s)."""
        raise NotImplementedError

    def request_poll(self) -> None:
        """Wake the poll thread so it measures now (e.g. after ComfyUI released its memory)."""
        raise NotImplementedError

    @property
    def state(self) -> str:
        """"running" | "paused" | "off"."""
        raise NotImplementedError

    @property
    def reading(self):
        """The last good Reading, or None."""
        raise NotImplementedError

    def decide(self, entry: QueueEntry) -> Verdict:
        """Decide for one pending entry. Call it for the queue's entries in priority order and run the
        first RUN; a FAIL entry must be removed from the queue and recorded as failed with the message."""
        raise NotImplementedError

    def note_pending(self, entries: Sequence[QueueEntry]) -> None:
        """Tell the guard the whole pending list (priority order) so it can track the held set,
        positions and waited times; emits "gpu_guard.held" when the set or order changes."""
        raise NotImplementedError

    def admission(self, held_count: int) -> Admission:
        """Accept or reject a /prompt submission given the number of prompts held now."""
        raise NotImplementedError

    def should_request_free(self) -> bool:
        """True once per hold episode: the adapter, when nothing runs and ComfyUI has models loaded,
        asks ComfyUI to free its memory and then calls request_poll()."""
        raise NotImplementedError

    def status(self) -> dict:
        """The status object of the HTTP contract (docs/ARCHITECTURE.md)."""
        raise NotImplementedError

    def ready(self):
        """(ok, reason): False while paused or failing closed."""
        raise NotImplementedError

    def config_view(self) -> dict:
        """Current settings plus "pinned": names fixed by environment variables (the token is never shown)."""
        raise NotImplementedError

    def update_config(self, partial: Mapping[str, Any]):
        """Validate and apply a partial update; persist it to the config file. Returns (config_view, errors);
        with errors nothing is applied."""
        raise NotImplementedError

    def check_token(self, token: Optional[str]) -> bool:
        """True when a token is configured and matches (constant-time)."""
        raise NotImplementedError

    def subscribe(self, callback: Callable[[str, dict], None]) -> Callable[[], None]:
        """callback(event, payload) for "gpu_guard.status", "gpu_guard.held", "gpu_guard.alert";
        returns a function that unsubscribes."""
        raise NotImplementedError

    @property
    def version(self) -> int:
        """A counter bumped on every state, held-set or config change."""
        raise NotImplementedError

    def wait_for_change(self, timeout: float, since: Optional[int] = None) -> bool:
        """Block up to timeout seconds until version differs from since (default: the version now)."""
        raise NotImplementedError

    def metrics_text(self):
        """(body bytes, content type) in Prometheus text format from the guard's own registry."""
        raise NotImplementedError
