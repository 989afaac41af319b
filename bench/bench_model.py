"""CPU timing of DDColor forwards, fp32 vs bf16, and the bf16 error against fp32.

For each variant (tiny, large) at model size S (default 512), batch 1: builds the model with
synthetic weights (the parity kit's when ../shared/ddcolor is present, else this package's own
synthetic weights), runs warm-up forwards, then times --reps forwards in fp32 and in bf16 (model
cast with .to(torch.bfloat16)). Prints the median times, the bf16/fp32 ratio measured in this
same run, and max/mean |ab_bf16 - ab_fp32| in Lab units.

    python bench/bench_model.py [--variants tiny large] [--size 512] [--reps 3] [--threads N]
"""
import argparse
import copy
import os
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "ddcolor"))
sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddcolor_model import DDColor  # noqa: E402
from ddcolor_model.pipeline import gray_model_input  # noqa: E402


def synthetic_state_dict(variant):
    if os.path.isfile(os.path.join(KIT_DIR, "make_weights.py")):
        sys.path.insert(0, KIT_DIR)
        from make_weights import make_state_dict
        return make_state_dict(os.path.join(KIT_DIR, f"keys_{variant}.json")), "parity kit"
    from ddcolor_model.synth import make_synthetic_state_dict
    return make_synthetic_state_dict(variant), "ddcolor_model.synth"


def sample_image():
    """(1, H, W, 3) float32 RGB: the kit's sample photo, else a smooth random image."""
    path = os.path.join(KIT_DIR, "golden", "sample_rgb.png")
    if os.path.isfile(path):
        import cv2
        return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)[None].astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    import cv2
    return cv2.GaussianBlur(rng.random((300, 451, 3), dtype=np.float32), (31, 31), 0)[None]


def time_forward(model, x, reps, warmup):
    with torch.inference_mode():
        for _ in range(warmup):
            out = model(x)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            out = model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times), out.float()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["tiny", "large"], choices=["tiny", "large"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, batch 1, "
          f"S={args.size}, median of {args.reps} after {args.warmup} warm-up")
    x = gray_model_input(sample_image()[0:1], args.size, args.size)
    print(f"{'variant':<8}{'fp32 s':>9}{'bf16 s':>9}{'bf16/fp32':>11}{'max|dab|':>11}{'mean|dab|':>11}{'ab std':>9}")
    for variant in args.variants:
        state_dict, source = synthetic_state_dict(variant)
        model = DDColor(variant)
        model.load_state_dict(state_dict)
        del state_dict
        model.eval()
        t32, ab32 = time_forward(model, x, args.reps, args.warmup)
        model16 = copy.deepcopy(model).to(torch.bfloat16)
        del model
        t16, ab16 = time_forward(model16, x.to(torch.bfloat16), args.reps, args.warmup)
        del model16
        diff = (ab16 - ab32).abs()
        print(f"{variant:<8}{t32:>9.2f}{t16:>9.2f}{t16 / t32:>11.2f}{diff.max().item():>11.3f}"
              f"{diff.mean().item():>11.3f}{ab32.std().item():>9.2f}   (weights: {source})")


if __name__ == "__main__":
    main()
