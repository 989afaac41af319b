"""Measure the CPU peak memory of one DDColor forward and compare it with estimate_peak_bytes.

Each case runs in a fresh process (Linux): the model is built (random weights, same memory as
real ones), the peak resident set (VmHWM) is reset to the current one, and the peak after one
forward minus the resident set just before it is the activation peak. (ru_maxrss is not used:
it keeps the parent's size across fork + exec.) Prints measured and estimated figures and their ratio.

    python bench/measure_peak_memory.py [--cases tiny:256:1 large:512:1 ...]
"""
import argparse
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CASES = ["tiny:256:1", "tiny:512:1", "tiny:256:2", "large:256:1", "large:512:1"]

CHILD = r"""
import json, sys, torch
from ddcolor_model import DDColor
variant, size, batch, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dtype = getattr(torch, dtype)
model = DDColor(variant).eval().to(dtype)
x = torch.rand(batch, 3, size, size).to(dtype)
def status_bytes(field):
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024
try:  # reset the peak (VmHWM) to the current resident set, where the kernel allows it
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
before = status_bytes("VmRSS")
with torch.inference_mode():
    model(x)
peak = status_bytes("VmHWM")
params = sum(p.numel() * p.element_size() for p in model.parameters())
print(json.dumps({"activation_bytes": peak - before, "param_bytes": params}))
"""


def measure(variant, size, batch, dtype="float32"):
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(size), str(batch), dtype],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    sys.path.insert(0, REPO_ROOT)
    import torch
    from ddcolor_model import estimate_peak_bytes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="variant:size:batch")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    print(f"{'case':<18}{'params MB':>10}{'activ. MB':>11}{'measured MB':>13}{'estimate MB':>13}{'est/meas':>10}")
    for case in args.cases:
        variant, size, batch = case.split(":")
        m = measure(variant, int(size), int(batch), args.dtype)
        measured = m["param_bytes"] + m["activation_bytes"]
        estimate = estimate_peak_bytes(variant, int(size), int(batch), getattr(torch, args.dtype))
        print(f"{case:<18}{m['param_bytes'] / 1e6:>10.0f}{m['activation_bytes'] / 1e6:>11.0f}"
              f"{measured / 1e6:>13.0f}{estimate / 1e6:>13.0f}{estimate / measured:>10.2f}")


if __name__ == "__main__":
    main()
