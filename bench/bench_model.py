"""DDColor forward speed against the official network, measured in the same run (CPU).

For each variant at model size S (default 512), batch 1, fp32: ours and the official network
(../shared/ddcolor/official_model.py) with the same synthetic weights and input, timed in
alternating order; prints min and median and the speed-up official / ours (from the minima).
Also, on request, batch 2 against two batch-1 forwards (whether the node should batch on the
CPU) and the bf16 error against fp32.

The other DDColor figures come from their own scripts, which this one runs with --all:
bench/measure_peak_memory.py (activation peak vs the official, estimate vs measured) and
bench/bench_pipeline.py (colorize pipeline at 1080p and 8K, model and the rest, before/after).

    python bench/bench_model.py [--variants tiny large] [--size 512] [--reps 4]
                                [--batch-check] [--bf16] [--all] [--threads N]
"""
import argparse
import copy
import os
import subprocess
import sys

import ddcolor_kit as kit
import torch


def speed(variant, size, reps):
    state_dict = kit.kit_state_dict(variant)
    ours = kit.our_model(variant, state_dict)
    official = kit.official_model(variant, state_dict)
    del state_dict
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    cpu = {}
    times = kit.interleaved_times({"ours": lambda: ours(x), "official": lambda: official(x)}, reps,
                                  cpu_times=cpu)
    ratio = min(times["official"]) / min(times["ours"])
    cpu_ratio = min(cpu["official"]) / min(cpu["ours"])
    print(f"{variant}@{size} fp32 batch 1: ours {kit.summary(times['ours'])}; official "
          f"{kit.summary(times['official'])}; speed-up official/ours {ratio:.2f}x wall "
          f"(min), {cpu_ratio:.2f}x CPU time (min: ours {min(cpu['ours']):.2f} s, official "
          f"{min(cpu['official']):.2f} s)")
    return ours


def batch_check(model, variant, size, reps):
    """Batch of 2 vs two single forwards: does batching pay on this CPU?"""
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    times = kit.interleaved_times({"batch 2": lambda: model(x),
                                   "2 x batch 1": lambda: (model(x[:1]), model(x[1:]))}, reps)
    ratio = min(times["2 x batch 1"]) / min(times["batch 2"])
    print(f"{variant}@{size} CPU batching: batch 2 {kit.summary(times['batch 2'])}; 2 x batch 1 "
          f"{kit.summary(times['2 x batch 1'])}; (2 x batch 1) / batch 2 = {ratio:.2f}")


def bf16_error(model, variant, size, reps):
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    half = copy.deepcopy(model).to(torch.bfloat16)
    with torch.inference_mode():
        ab32 = model(x)
        ab16 = half(x.to(torch.bfloat16)).float()
    times = kit.interleaved_times({"fp32": lambda: model(x), "bf16": lambda: half(x.to(torch.bfloat16))},
                                  reps)
    diff = (ab16 - ab32).abs()
    print(f"{variant}@{size} bf16: {kit.summary(times['bf16'])} (bf16/fp32 "
          f"{min(times['bf16']) / min(times['fp32']):.2f}); |dab| max {diff.max():.3f}, mean "
          f"{diff.mean():.3f}; fp32 ab std {ab32.std():.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["tiny", "large"], choices=["tiny", "large"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-check", action="store_true", help="batch 2 vs 2 x batch 1 (tiny)")
    parser.add_argument("--bf16", action="store_true", help="bf16 time and error against fp32")
    parser.add_argument("--all", action="store_true", help="also run the memory and pipeline benchmarks")
    args = parser.parse_args()
    kit.require_kit()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, load average "
          f"{kit.load_average():.1f} at start; {args.reps} timed forwards each after a warm-up, "
          f"alternating order")
    for variant in args.variants:
        model = speed(variant, args.size, args.reps)
        if args.batch_check and variant == "tiny":
            batch_check(model, variant, args.size, args.reps)
        if args.bf16:
            bf16_error(model, variant, args.size, max(1, args.reps // 2))
        del model
    print(f"load average {kit.load_average():.1f} at the end")
    if args.all:
        here = os.path.dirname(os.path.abspath(__file__))
        for script in ("measure_peak_memory.py", "bench_pipeline.py"):
            print(f"\n== {script}", flush=True)
            subprocess.run([sys.executable, os.path.join(here, script)], check=True)


if __name__ == "__main__":
    main()
