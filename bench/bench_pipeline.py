"""Time per image of the colorize pipeline (the DDColor Colorize node's work) at 1080p and 8K,
split into the model forward and the rest (Lab conversions, resizes, upsampling, merge).

Rows, measured in the same run on the same image (the person sample scaled up), tiny weights
of the parity kit, model size 512 (the person preset), fp32, CPU:
- before: the official network with the OpenCV/numpy pipeline (the pack before issue 9);
- after: our network with the pipeline colorize picks on the CPU (OpenCV: it is faster here);
- torch pipeline: our network with the torch pipeline (the GPU path), run on the CPU; shows
  why the CPU keeps OpenCV. Its 8K row is slow on a small CPU: --torch-8k adds it.

    python bench/bench_pipeline.py [--reps 2] [--sizes 1080p 8k] [--torch-8k]
"""
import argparse
import time

import cv2
import ddcolor_kit as kit
import torch

from ddcolor_model import colorize

SIZES = {"1080p": (1080, 1920), "8k": (4320, 7680)}
MODEL_SIZE = 512


class TimedModel(torch.nn.Module):
    """Wraps a network and adds up the time spent in its forward."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.seconds = 0.0

    def forward(self, x):
        start = time.perf_counter()
        out = self.net(x)
        self.seconds += time.perf_counter() - start
        return out


def photo(height, width):
    rgb = kit.sample_rgb()[0]
    return torch.from_numpy(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1))[None]


def measure(model, image, backend, reps):
    """(total, model) seconds per image: the minimum over reps (after one warm-up)."""
    timed = TimedModel(model)
    colorize(timed, image, MODEL_SIZE, backend=backend)
    best = None
    for _ in range(reps):
        timed.seconds = 0.0
        start = time.perf_counter()
        colorize(timed, image, MODEL_SIZE, backend=backend)
        total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = (total, timed.seconds)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--torch-8k", action="store_true", help="also time the torch pipeline at 8K on the CPU")
    args = parser.parse_args()
    kit.require_kit()
    state_dict = kit.kit_state_dict("tiny")
    ours = kit.our_model("tiny", state_dict)
    official = kit.official_model("tiny", state_dict)
    del state_dict
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, tiny, model size "
          f"{MODEL_SIZE}, fp32, batch 1, min of {args.reps} after a warm-up; load average "
          f"{kit.load_average():.1f} at start")
    print(f"{'image':<7}{'row':<34}{'total s':>9}{'model s':>9}{'rest s':>9}")
    for name in args.sizes:
        image = photo(*SIZES[name])
        rows = [("before: official net + OpenCV", official, "opencv"),
                ("after: ours + OpenCV (CPU default)", ours, None)]
        if name != "8k" or args.torch_8k:
            rows.append(("ours + torch pipeline (GPU path)", ours, "torch"))
        results = {}
        for label, model, backend in rows:
            total, model_s = measure(model, image, backend, args.reps if name != "8k" else 1)
            results[label] = (total, model_s)
            print(f"{name:<7}{label:<34}{total:>9.2f}{model_s:>9.2f}{total - model_s:>9.2f}", flush=True)
        before, after = results[rows[0][0]], results[rows[1][0]]
        print(f"{name:<7}before / after: total {before[0] / after[0]:.2f}x, model "
              f"{before[1] / after[1]:.2f}x, rest {(before[0] - before[1]) / (after[0] - after[1]):.2f}x")
    print(f"load average {kit.load_average():.1f} at the end")


if __name__ == "__main__":
    main()
