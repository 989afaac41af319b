"""Fixtures for the operations layer: a service on a settable clock with a log in a temporary folder."""
from __future__ import annotations

import pytest

from gpu_guard.ops import OpsService
from tests.ops.helpers import Clock, Settings, utc_day_start, utc_next_start


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_service(tmp_path, clock):
    made = []

    def make(settings=None, log_path=True, **options):
        settings = settings or Settings()
        path = str(tmp_path / "user" / "gpu_guard_events.jsonl") if log_path is True else log_path
        options.setdefault("tick_s", 0.02)
        options.setdefault("backoff_s", 0.02)
        service = OpsService(settings, path, wall=clock, day_start=utc_day_start, next_start=utc_next_start,
                             source="test-host", **options)
        service.start()
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()
