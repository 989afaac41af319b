"""The guard's settings at run time: the view, validated and persisted updates, the token check."""
from __future__ import annotations

import hmac
import logging
from typing import Any, Mapping, Optional

from . import config as config_module
from .config import GuardConfig

log = logging.getLogger("gpu_guard")


class Settings:
    """A part of Guard (gpu_guard.guard): it runs on the guard's state and under its lock."""

    def config_view(self) -> dict:
        """Current settings plus "pinned": names fixed by environment variables (the token is never shown)."""
        view = config_module.public_view(self.config)
        view["pinned"] = sorted(self.pinned)
        view["token_set"] = self.token_set
        return view

    def update_config(self, partial: Mapping[str, Any]) -> tuple:
        """Validate and apply a partial update; persist it to the config file. Returns (config_view, errors);
        with errors nothing is applied. Blocks on the file write: call it off the event loop."""
        with self._config_updates:
            with self._queue.lock, self._lock:
                new, errors = config_module.validate_update(self.config, partial, self.pinned)
                if errors:
                    return self.config_view(), errors
            if self.config_file:
                try:
                    config_module.persist(self.config_file, {k: getattr(new, k) for k in partial})
                except (OSError, ValueError) as e:
                    return self.config_view(), [f"could not save the settings to {self.config_file} ({e}); "
                                                "nothing was changed - check the file and its folder"]
            self._apply_config(new, partial)
        self._poller.wake()  # a new poll_s applies now
        self._deliver()
        return self.config_view(), []

    def _apply_config(self, new: GuardConfig, partial: Mapping[str, Any]) -> None:
        with self._queue.lock, self._lock:
            was_closed = self._gate_closed()
            self.config = self._policy.config = new
            self.lanes.update(new.priority_classes)
            transition = self._monitor.configure(new.pause_at, new.resume_at, new.sensor_failures,
                                                 new.sensor_policy, at=self._wall())
            if transition:
                self._on_transition(transition)
            changed = {k: config_module.shown_value(k, getattr(new, k)) for k in partial}
            log.info("VRAM guard settings changed: %s", changed)
            self._op("config_change", "settings changed: " + ", ".join(sorted(changed)), changed=changed)
            self._after_change(was_closed)
            self._bump()
            self._events.append(("gpu_guard.status", None))

    @property
    def token_set(self) -> bool:
        """Whether GPU_GUARD_TOKEN is configured (the token itself is never shown)."""
        return self._token is not None

    def check_token(self, token: Optional[str]) -> bool:
        """True when a token is configured and matches (constant-time)."""
        if not self._token or not token:
            return False
        return hmac.compare_digest(self._token.encode(), str(token).encode())
