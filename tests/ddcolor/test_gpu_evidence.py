"""bench/gpu_evidence.py's CPU fallback runs end to end, so the GPU evidence script cannot rot."""
import json
import math
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIT = os.path.join(REPO_ROOT, "..", "shared", "ddcolor", "official_model.py")


def test_cpu_fallback_writes_every_section(tmp_path):
    out = tmp_path / "evidence.json"
    run = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bench", "gpu_evidence.py"), "--cpu",
                          "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "quick CPU fallback" in run.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "cpu-fallback"
    cases = {(r["dtype"], r["size"], r["batch"]) for r in report["forward"]}
    assert cases == {(d, 64, b) for d in ("float32", "bfloat16") for b in (1, 2)}
    for row in report["forward"]:
        assert row["ours_s"] > 0
        assert row["estimate_bytes"] > 55_000_000 * 2  # weights at least
        assert row["ours_activation_bytes"] is None  # CUDA-only figure, honestly absent on the CPU
    fp32 = [r for r in report["forward"] if r["dtype"] == "float32"]
    if os.path.isfile(KIT):  # the official network is timed in the same run
        assert all(r["official_s"] > 0 and r["speedup"] > 0 for r in fp32)
    else:
        assert any("official network not found" in n for n in report["notes"])
    (err,) = report["precision"]
    assert err["dtype"] == "bfloat16" and math.isfinite(err["max_abs"])
    assert 0 < err["mean_abs"] < err["fp32_ab_std"]  # low precision moves ab, but far less than its spread
    pipeline = report["pipeline"]
    assert pipeline["torch_s"] > 0 and pipeline["opencv_s"] > 0
    assert report["probes"] == {"skipped": "no CUDA device"}


@pytest.mark.skipif(not os.environ.get("DDCOLOR_GPU_EVIDENCE"), reason="set DDCOLOR_GPU_EVIDENCE=1 on a CUDA machine")
def test_gpu_run_is_within_nine_minutes(tmp_path):
    import torch
    assert torch.cuda.is_available(), "DDCOLOR_GPU_EVIDENCE is set but torch sees no CUDA device"
    out = tmp_path / "evidence.json"
    subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bench", "gpu_evidence.py"), "--json", str(out)],
                   check=True, timeout=9 * 60)
    report = json.loads(out.read_text())
    assert report["mode"] == "gpu" and not report["notes"]
