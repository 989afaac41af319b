"""The JSON file that the guard's file-driven probe (`GPU_GUARD_PROBE=file:PATH`) reads at every poll."""
from __future__ import annotations

import json
import os
from pathlib import Path

LOW_READING = {"used_bytes": 1_000_000_000, "total_bytes": 10_000_000_000}  # ratio 0.1


class ProbeFile:
    """Writes readings atomically (temp file + rename), so the guard never reads half a file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def spec(self) -> str:
        """The GPU_GUARD_PROBE value that points the guard at this file."""
        return f"file:{self.path}"

    def write(self, used_bytes: int, total_bytes: int, **extra) -> None:
        self.write_json({"used_bytes": used_bytes, "total_bytes": total_bytes, **extra})

    def write_ratio(self, ratio: float, total_bytes: int = 10_000_000_000) -> None:
        self.write(round(ratio * total_bytes), total_bytes)

    def write_sim(self, total_bytes: int, foreign_bytes: int) -> None:
        """A simulated device (`GPU_GUARD_PROBE=sim:PATH`): its size and other processes' memory."""
        self.write_json({"total_bytes": total_bytes, "foreign_bytes": foreign_bytes})

    @property
    def sim_spec(self) -> str:
        """The GPU_GUARD_PROBE value that makes this file a simulated device."""
        return f"sim:{self.path}"

    def write_low(self) -> None:
        self.write_json(LOW_READING)

    def write_json(self, value) -> None:
        self.write_text(json.dumps(value))

    def write_text(self, text: str) -> None:
        """Any content, e.g. broken JSON for sensor-fault tests."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
