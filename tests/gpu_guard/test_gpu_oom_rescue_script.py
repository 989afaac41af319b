"""scripts/gpu_oom_rescue.py, the prepared real-GPU OOM check: without a CUDA device it says so and
measures nothing (the GPU path needs a GPU host)."""
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_oom_rescue.py"


def test_without_a_gpu_the_script_says_so_and_measures_nothing():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, str(SCRIPT), "--fraction", "0.5"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"gpu": None, "result": "no CUDA device: nothing measured"}
