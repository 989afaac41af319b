"""Measure the CPU peak memory of one DDColor forward and compare it with estimate_peak_bytes.

Each case runs in a fresh process (Linux): the model is built (random weights, same memory as
real ones), then the process's peak resident set after one forward (ru_maxrss) minus its
resident set just before it is the activation peak. Prints measured and estimated figures and their ratio.

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
import json, resource, sys, torch
from ddcolor_model import DDColor
variant, size, batch, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dtype = getattr(torch, dtype)
model = DDColor(variant).eval().to(dtype)
x = torch.rand(batch, 3, size, size).to(dtype)
def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = resident_bytes()  # now, not the earlier peak: pages reclaimed since do not hide growth
with torch.inference_mode():
    model(x)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
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
