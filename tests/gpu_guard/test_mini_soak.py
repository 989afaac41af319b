"""A short pause/resume soak in a real ComfyUI (bench/soak_guard.py runs the long one)."""
import pytest

from tests.gpu_guard.soak import run_soak

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


def test_thirty_prompts_over_three_cycles_each_complete_once_or_deleted(drill):
    report = run_soak(drill, prompts=30, cycles=3, seed=7)
    print("\n".join(report.lines()))
    assert report.prompts == 30
    assert report.ran_twice == [] and report.lost == [] and report.errors == [] and report.ran_while_paused == []
    assert report.completed + report.deleted == 30
    assert report.deleted >= 3, "the soak must really delete held prompts"
    assert report.max_held >= 5
    assert report.hook_errors == 0
