"""Same-run A/B of the DDColor forward: this working tree's ddcolor_model against a git revision's.

A change to the network is kept only if this shows it costs no more than 5 % speed. The
baseline's ``ddcolor_model/`` is extracted with ``git archive`` into a temporary folder and
imported under another name; both models get the same weights (the parity kit's when present,
else the pack's synthetic ones) and the same input, and are timed in alternating order (fp32,
CPU, batch 1). Prints min and median per side and baseline / new from the minima (above 1: the
new code is faster), wall and process CPU time. With --official the official network
(../shared/ddcolor/official_model.py) runs as a third contender in the same alternation, and the
speed-up official / side is printed for both sides: whether a change of the ratio against the
official comes from our code or from the machine and torch build.

    python bench/bench_ab.py [--baseline main] [--variants tiny large] [--sizes 512 1024]
                             [--reps 4] [--threads N] [--official]
"""
import argparse
import importlib
import os
import subprocess
import sys
import tempfile

import ddcolor_kit as kit
import torch

BASELINE_PACKAGE = "ddcolor_model_baseline"


def import_revision(revision, folder):
    """ddcolor_model/ as of ``revision``, imported as BASELINE_PACKAGE (its imports are relative)."""
    archive = subprocess.run(["git", "-C", kit.REPO_ROOT, "archive", revision, "ddcolor_model"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    os.rename(os.path.join(folder, "ddcolor_model"), os.path.join(folder, BASELINE_PACKAGE))
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(BASELINE_PACKAGE)
    finally:
        sys.path.remove(folder)


def state_dict(variant):
    if kit.kit_available():
        return kit.kit_state_dict(variant)
    from ddcolor_model.synth import make_synthetic_state_dict
    return make_synthetic_state_dict(variant)


def build(package, variant, weights):
    model = package.DDColor(variant)
    model.load_state_dict(weights, strict=True)
    return model.eval().requires_grad_(False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare against")
    parser.add_argument("--variants", nargs="+", default=["tiny", "large"], choices=["tiny", "large"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[512])
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--official", action="store_true", help="time the official network too (parity kit)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import ddcolor_model as new
    with tempfile.TemporaryDirectory() as folder:
        base = import_revision(args.baseline, folder)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, fp32, batch 1; "
              f"baseline {args.baseline}; load average {kit.load_average():.1f} at start; "
              f"{args.reps} timed forwards each after a warm-up, alternating order")
        for variant in args.variants:
            weights = state_dict(variant)
            models = {"baseline": build(base, variant, weights), "new": build(new, variant, weights)}
            if args.official:
                models["official"] = kit.official_model(variant, weights)
            del weights
            for size in args.sizes:
                x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
                cpu = {}
                times = kit.interleaved_times({name: (lambda m=m: m(x)) for name, m in models.items()},
                                              args.reps, cpu_times=cpu)
                print(f"{variant}@{size}: baseline {kit.summary(times['baseline'])}; new "
                      f"{kit.summary(times['new'])}; baseline/new {min(times['baseline']) / min(times['new']):.3f} "
                      f"wall, {min(cpu['baseline']) / min(cpu['new']):.3f} CPU time", flush=True)
                if args.official:
                    print(f"  official {kit.summary(times['official'])}; speed-up official/baseline "
                          f"{min(times['official']) / min(times['baseline']):.2f}x, official/new "
                          f"{min(times['official']) / min(times['new']):.2f}x wall (CPU time "
                          f"{min(cpu['official']) / min(cpu['baseline']):.2f}x, "
                          f"{min(cpu['official']) / min(cpu['new']):.2f}x)", flush=True)
            del models
    print(f"load average {kit.load_average():.1f} at the end")


if __name__ == "__main__":
    main()
