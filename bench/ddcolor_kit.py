"""Shared helpers of the DDColor benchmarks: the parity kit's weights and official network.

The official network (../shared/ddcolor/official_model.py) is a yardstick measured in the same
run; only the benchmarks import it, never the pack.
"""
import os
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "ddcolor"))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def kit_available():
    return os.path.isfile(os.path.join(KIT_DIR, "official_model.py"))


def require_kit():
    if not kit_available():
        sys.exit(f"the DDColor parity kit is not at {KIT_DIR}: the official baseline cannot be measured")


def _kit_import(name):
    if KIT_DIR not in sys.path:
        sys.path.insert(0, KIT_DIR)
    return __import__(name)


def kit_state_dict(variant):
    """make_weights.py's deterministic synthetic weights (seed 0)."""
    return _kit_import("make_weights").make_state_dict(os.path.join(KIT_DIR, f"keys_{variant}.json"))


def official_model(variant, state_dict):
    return _kit_import("official_model").build_official(variant, state_dict)


def our_model(variant, state_dict):
    from ddcolor_model import DDColor
    model = DDColor(variant)
    model.load_state_dict(state_dict, strict=True)
    return model.eval().requires_grad_(False)


def sample_rgb():
    """(1, H, W, 3) float32 RGB: the kit's sample photo, else the pack's person sample."""
    import cv2
    path = os.path.join(KIT_DIR, "golden", "sample_rgb.png")
    if not os.path.isfile(path):
        path = os.path.join(REPO_ROOT, "assets", "sample_person.png")
    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)[None].astype(np.float32) / 255.0


def interleaved_times(runs, reps, warmup=1, cpu_times=None):
    """{name: [wall seconds, ...]} for callables run in alternating order (ABAB, then BABA, ...),
    so that a change in the machine's load hits every contender alike. With a dict as
    ``cpu_times``, it also gets {name: [process CPU seconds, ...]}: on a shared machine CPU time
    is less sensitive than wall time to other processes' load."""
    names = list(runs)
    times = {name: [] for name in names}
    if cpu_times is not None:
        cpu_times.update({name: [] for name in names})
    with torch.inference_mode():
        for name in names:
            for _ in range(warmup):
                runs[name]()
        for rep in range(reps):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                start, cpu_start = time.perf_counter(), time.process_time()
                runs[name]()
                times[name].append(time.perf_counter() - start)
                if cpu_times is not None:
                    cpu_times[name].append(time.process_time() - cpu_start)
    return times


def summary(times):
    return f"min {min(times):.3f} s, median {statistics.median(times):.3f} s"


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")
