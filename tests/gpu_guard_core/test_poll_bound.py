"""poll_s has a lower bound of 0.05 s: faster polling only burns CPU (a reading changes on the scale
of a model load), and 0 or a tiny value would spin the poll thread."""
import logging

import pytest

from gpu_guard import config as cfg
from gpu_guard.config import GuardConfig


@pytest.mark.parametrize("value", ["0.01", "0.049", "0"])
def test_a_poll_interval_below_the_bound_is_refused_from_the_environment(value, caplog):
    with caplog.at_level(logging.ERROR, logger="gpu_guard.config"):
        source = cfg.load(None, {"GPU_GUARD_POLL_S": value})
    assert source.config.poll_s == 1.0
    assert "poll_s" not in source.pinned
    assert any("GPU_GUARD_POLL_S must be a number in [0.05, 60]" in p for p in source.problems), source.problems


def test_a_poll_interval_below_the_bound_is_refused_over_http():
    new, errors = cfg.validate_update(GuardConfig(), {"poll_s": 0.01}, frozenset())
    assert new is None
    assert errors == ["poll_s must be a number in [0.05, 60], got 0.01"]


@pytest.mark.parametrize("value", [0.05, 0.5, 60])
def test_the_bound_itself_and_above_are_accepted(value):
    new, errors = cfg.validate_update(GuardConfig(), {"poll_s": value}, frozenset())
    assert errors == [] and new.poll_s == value
