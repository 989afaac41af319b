"""An operator's hold on the guard, independent of the memory state: pause/resume and drain.

- pause: the gate closes as in a memory pause (prompts stay queued and visible, /prompt is bounded by
  max_held), and no fast lane runs: maintenance means nothing new starts.
- drain: the gate stays as it is, queued prompts finish, and every new /prompt is refused until the
  drain is cancelled (or the process ends): the way out of a load balancer's rotation.

Records who asked and when; the guard serialises the calls under its lock.
"""
from __future__ import annotations

from typing import Optional


class OperatorHold:
    def __init__(self):
        self.paused: Optional[dict] = None  # {"by", "reason", "at"} while paused by an operator
        self.draining: Optional[dict] = None  # {"by", "reason", "at"} while draining

    def pause(self, by: str, reason: str, at: float) -> bool:
        """True when this call paused (False: already paused, the first record stands)."""
        if self.paused is not None:
            return False
        self.paused = {"by": by, "reason": reason, "at": at}
        return True

    def resume(self) -> Optional[dict]:
        """The pause record that ended, or None when not paused."""
        ended, self.paused = self.paused, None
        return ended

    def drain(self, by: str, reason: str, at: float) -> bool:
        if self.draining is not None:
            return False
        self.draining = {"by": by, "reason": reason, "at": at}
        return True

    def cancel_drain(self) -> Optional[dict]:
        ended, self.draining = self.draining, None
        return ended

    def why_paused(self) -> str:
        p = self.paused
        return f"paused by the operator ({p['by']}" + (f": {p['reason']}" if p["reason"] else "") + ")"
