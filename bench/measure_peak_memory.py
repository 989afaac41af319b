"""Measure the CPU peak memory of one DDColor forward: against estimate_peak_bytes, and against
the official network's.

Each case runs in a fresh process (Linux): the model is built (random weights, same memory as
real ones), the peak resident set (VmHWM) is reset to the current one, and the peak after one
forward minus the resident set just before it is the activation peak. (ru_maxrss is not used:
it keeps the parent's size across fork + exec.) Prints measured and estimated figures and their
ratio, then (with the parity kit present) our activation peak against the official network's,
each measured the same way in its own process (../shared/ddcolor/official_model.py peak).

    python bench/measure_peak_memory.py [--cases tiny:256:1 large:512:1 ...]
                                        [--official tiny:512 tiny:1024 ...] [--no-official]
"""
import argparse
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CASES = ["tiny:256:1", "tiny:512:1", "tiny:512:2", "tiny:1024:1", "tiny:1280:1",
                 "large:256:1", "large:512:1", "large:1024:1"]
OFFICIAL_CASES = ["tiny:512", "tiny:1024", "large:512", "large:1024"]
KIT_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "ddcolor"))

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


def measure_official(variant, size):
    """Activation peak (bytes) of the official network's forward, batch 1, fp32, own process."""
    out = subprocess.run([sys.executable, os.path.join(KIT_DIR, "official_model.py"), "peak", variant, str(size)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["activation_peak_mb"] * 2 ** 20


def compare_with_official(cases):
    print(f"\n{'case':<14}{'ours MB':>9}{'official MB':>13}{'ours/official':>15}")
    for case in cases:
        variant, size = case.split(":")
        ours = measure(variant, int(size), 1)["activation_bytes"]
        official = measure_official(variant, int(size))
        print(f"{case:<14}{ours / 2 ** 20:>9.0f}{official / 2 ** 20:>13.0f}{ours / official:>15.2f}", flush=True)


def main():
    sys.path.insert(0, REPO_ROOT)
    import torch
    from ddcolor_model import estimate_peak_bytes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="variant:size:batch")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--official", nargs="+", default=OFFICIAL_CASES, help="variant:size")
    parser.add_argument("--no-official", action="store_true", help="skip the comparison with the official network")
    args = parser.parse_args()
    print(f"{'case':<18}{'params MB':>10}{'activ. MB':>11}{'measured MB':>13}{'estimate MB':>13}{'est/meas':>10}")
    for case in args.cases:
        variant, size, batch = case.split(":")
        m = measure(variant, int(size), int(batch), args.dtype)
        measured = m["param_bytes"] + m["activation_bytes"]
        estimate = estimate_peak_bytes(variant, int(size), int(batch), getattr(torch, args.dtype))
        print(f"{case:<18}{m['param_bytes'] / 1e6:>10.0f}{m['activation_bytes'] / 1e6:>11.0f}"
              f"{measured / 1e6:>13.0f}{estimate / 1e6:>13.0f}{estimate / measured:>10.2f}", flush=True)
    if not args.no_official and os.path.isfile(os.path.join(KIT_DIR, "official_model.py")):
        compare_with_official(args.official)


if __name__ == "__main__":
    main()
