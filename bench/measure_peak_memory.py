"""Measure the CPU peak memory of one DDColor forward: against estimate_peak_bytes, and against
the official network's.

Each case runs in a fresh process (Linux): the model is built (random weights, same memory as
real ones), one forward at a small size (WARMUP_SIZE) runs first, the peak resident set (VmHWM)
is reset to the current one, and the peak after one forward minus the resident set just before
it is the activation peak. The warm-up pages in what every first forward touches once (library
code, JIT kernels, thread pools: about 75 MB for ours, which the official network's constructor
already does by running its encoder at 512); --cold skips it. ru_maxrss is not used: it keeps
the parent's size across fork + exec. The official network (../shared/ddcolor/official_model.py,
loaded by path) is measured by the same child, the same way, with the same weights layout.

Prints measured and estimated figures and their ratio, then our activation peak against the
official's with the targets (ours / official <= 0.25 at S=512, <= 0.12 at S >= 1024).

    python bench/measure_peak_memory.py [--cases tiny:512:1 large:1280:1 ...]
                                        [--official tiny:512 tiny:1024 ...] [--no-official]
                                        [--cold] [--json OUT.json]
"""
import argparse
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CASES = ["tiny:512:1", "tiny:512:2", "tiny:1024:1", "tiny:1280:1",
                 "large:512:1", "large:1024:1", "large:1280:1"]
OFFICIAL_CASES = ["tiny:512", "tiny:1024", "tiny:1280", "large:512", "large:1024", "large:1280"]
KIT_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "ddcolor"))
WARMUP_SIZE = 64
# Targets of ours / official (activation peak, fp32, one forward), by model size.
TARGETS = {512: 0.25, 1024: 0.12, 1280: 0.12}

CHILD = r"""
import gc, json, sys, torch
from ddcolor_model.ddcolor import DDColor
which, variant, size, batch, dtype, warmup, kit = sys.argv[1:8]
size, batch, warmup, dtype = int(size), int(batch), int(warmup), getattr(torch, dtype)
model = DDColor(variant).eval()
if which == "official":
    sys.path.insert(0, kit)
    from official_model import build_official
    model = build_official(variant, model.state_dict())
model = model.to(dtype)
x = torch.rand(batch, 3, size, size).to(dtype)
def status_bytes(field):
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024
if warmup:
    with torch.inference_mode():
        model(torch.rand(1, 3, warmup, warmup).to(dtype))
gc.collect()
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


def measure(variant, size, batch, dtype="float32", which="ours", warmup=WARMUP_SIZE):
    """{"activation_bytes", "param_bytes"} of one forward in a fresh process."""
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    out = subprocess.run([sys.executable, "-c", CHILD, which, variant, str(size), str(batch), dtype,
                          str(warmup), KIT_DIR], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_with_official(cases, warmup):
    print(f"\n{'case':<14}{'ours MiB':>9}{'official MiB':>14}{'ours/official':>15}{'target':>8}")
    rows = []
    for case in cases:
        variant, size = case.split(":")
        ours = measure(variant, int(size), 1, warmup=warmup)["activation_bytes"]
        official = measure(variant, int(size), 1, which="official", warmup=warmup)["activation_bytes"]
        target = TARGETS.get(int(size))
        ratio = ours / official
        verdict = "" if target is None else f"{'<=' if ratio <= target else '> '}{target}"
        print(f"{case:<14}{ours / 2 ** 20:>9.0f}{official / 2 ** 20:>14.0f}{ratio:>15.3f}{verdict:>8}", flush=True)
        rows.append({"case": case, "ours_bytes": ours, "official_bytes": official, "ratio": ratio,
                     "target": target})
    return rows


def main():
    sys.path.insert(0, REPO_ROOT)
    import torch
    from ddcolor_model.memory import estimate_peak_bytes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="variant:size:batch")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--official", nargs="+", default=OFFICIAL_CASES, help="variant:size")
    parser.add_argument("--no-official", action="store_true", help="skip the comparison with the official network")
    parser.add_argument("--cold", action="store_true", help="no warm-up forward (counts one-time start-up pages)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    warmup = 0 if args.cold else WARMUP_SIZE
    print(f"load average {os.getloadavg()[0]:.1f}; {'cold' if args.cold else f'after a {warmup}px warm-up forward'}")
    print(f"{'case':<18}{'params MB':>10}{'activ. MB':>11}{'measured MB':>13}{'estimate MB':>13}{'est/meas':>10}")
    result = {"warmup": warmup, "dtype": args.dtype, "estimate": [], "official": []}
    for case in args.cases:
        variant, size, batch = case.split(":")
        m = measure(variant, int(size), int(batch), args.dtype, warmup=warmup)
        measured = m["param_bytes"] + m["activation_bytes"]
        estimate = estimate_peak_bytes(variant, int(size), int(batch), getattr(torch, args.dtype))
        print(f"{case:<18}{m['param_bytes'] / 1e6:>10.0f}{m['activation_bytes'] / 1e6:>11.0f}"
              f"{measured / 1e6:>13.0f}{estimate / 1e6:>13.0f}{estimate / measured:>10.2f}", flush=True)
        result["estimate"].append({"case": case, **m, "estimate_bytes": estimate})
    if not args.no_official and os.path.isfile(os.path.join(KIT_DIR, "official_model.py")):
        result["official"] = compare_with_official(args.official, warmup)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
