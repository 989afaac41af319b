"""Shared fixtures: a fake clock, a file-driven probe and a guard wired to both."""
import json
import os

import pytest

from gpu_guard.config import GuardConfig
from gpu_guard.guard import Guard
from gpu_guard.probes import FileProbe

GIB = 1 << 30


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def wall(self):
        return 1_700_000_000.0 + self.now

    def advance(self, seconds):
        self.now += seconds


class ProbeFile:
    """The JSON file the file probe reads; written atomically like a drill script should."""

    def __init__(self, path):
        self.path = str(path)

    def write_raw(self, text):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def write(self, used_bytes=None, total_bytes=100 * GIB, ratio=None, **extra):
        if ratio is not None:
            used_bytes = round(ratio * total_bytes)
        self.write_raw(json.dumps({"used_bytes": used_bytes, "total_bytes": total_bytes, **extra}))

    def remove(self):
        if os.path.exists(self.path):
            os.remove(self.path)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def probe_file(tmp_path):
    return ProbeFile(tmp_path / "memory.json")


@pytest.fixture
def make_guard(clock, probe_file):
    """make_guard(**settings) -> Guard on the file probe and the fake clock (no poll thread)."""
    made = []

    def make(**settings):
        config = GuardConfig(probe="file:" + probe_file.path, **settings)
        guard = Guard(config, FileProbe(probe_file.path, wall=clock.wall), monotonic=clock.monotonic,
                      wall=clock.wall)
        made.append(guard)
        return guard

    yield make
    for guard in made:
        guard.stop()


@pytest.fixture
def at_ratio(probe_file):
    """at_ratio(guard, ratio) -> state: write one reading at `ratio` and poll it."""

    def feed(guard, ratio):
        probe_file.write(ratio=ratio)
        guard.poll_once()
        return guard.state

    return feed
