"""Every GPU figure of the DDColor work in one run: a table on stdout and the same as JSON.

    python bench/gpu_evidence.py [--json gpu_evidence.json] [--cpu] [--budget-s 480]

On a CUDA machine (one GPU, about 5-8 minutes; needs only the repo and a CUDA torch wheel):
1. forward time, fp32 (TF32 off) / bf16 / fp16, S = 512, 1024, 1280, batch 1 and 8, tiny and
   large: ours against the official network (../shared/ddcolor/official_model.py, loaded by
   path, skipped with the reason when absent), the same weights and input, alternating order;
2. ``torch.cuda.max_memory_allocated`` over each of our forwards (weights included) against
   ``estimate_peak_bytes``, and the activation peak ours / official;
3. bf16 and fp16 |d ab| against fp32 (S=512, batch 1);
4. the colorize pipeline (what the DDColor Colorize node runs) end to end on a 1080p image,
   model on the GPU: the torch pipeline on the GPU against the OpenCV pipeline on the CPU
   (needs numpy and opencv-python-headless, the pack's requirements; skipped without them);
5. the guard's NVML and torch probe readings next to nvidia-smi's.

Without CUDA (or with --cpu) the same steps run as a quick CPU fallback at small sizes (tiny,
S = 64, batch 1 and 2, fp32 and bf16): a CI test runs it so the script cannot rot; its
figures mean nothing for a GPU. --budget-s stops starting new forward cases past that time.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "ddcolor"))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

from ddcolor_model.ddcolor import DDColor  # noqa: E402
from ddcolor_model.memory import estimate_peak_bytes  # noqa: E402

GPU_PLAN = {"variants": ("tiny", "large"), "sizes": (512, 1024, 1280), "batches": (1, 8),
            "dtypes": ("float32", "bfloat16", "float16"), "reps": 3, "error_size": 512,
            "image": (1080, 1920), "pipeline_size": 512}
CPU_PLAN = {"variants": ("tiny",), "sizes": (64,), "batches": (1, 2),
            "dtypes": ("float32", "bfloat16"), "reps": 1, "error_size": 64,
            "image": (270, 480), "pipeline_size": 64}
MiB = 2 ** 20


def kit_module(name):
    if not os.path.isfile(os.path.join(KIT_DIR, "official_model.py")):
        return None
    if KIT_DIR not in sys.path:
        sys.path.insert(0, KIT_DIR)
    return __import__(name)


def weights(variant):
    """The parity kit's synthetic weights when present (the official network needs them), else ours."""
    make = kit_module("make_weights")
    if make is not None:
        return make.make_state_dict(os.path.join(KIT_DIR, f"keys_{variant}.json"))
    from ddcolor_model.synth import make_synthetic_state_dict
    return make_synthetic_state_dict(variant)


def models(variant, device):
    """{"ours": fp32 model, "official": fp32 model or None}, and why the official one is missing."""
    state = weights(variant)
    ours = DDColor(variant)
    ours.load_state_dict(state, strict=True)
    built = {"ours": ours.eval().requires_grad_(False).to(device), "official": None}
    official = kit_module("official_model")
    note = None
    if official is None:
        note = f"official network not found at {KIT_DIR}"
    else:
        built["official"] = official.build_official(variant, state).to(device)
    return built, note


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, reps):
    """Minimum seconds of ``reps`` calls after one warm-up."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_activation(fn, device):
    """Bytes allocated at the peak of one call above what was allocated before (CUDA only)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - before


def forward_cases(plan, device, deadline):
    rows, notes = [], []
    for variant in plan["variants"]:
        fp32, note = models(variant, device)
        if note:
            notes.append(note)
        for dtype_name in plan["dtypes"]:
            dtype = getattr(torch, dtype_name)
            nets = {name: (net if dtype == torch.float32 else _cast(net, dtype))
                    for name, net in fp32.items() if net is not None}
            for size in plan["sizes"]:
                for batch in plan["batches"]:
                    if time.monotonic() > deadline:
                        notes.append(f"budget spent: {variant} {dtype_name} {size} x{batch} and later not run")
                        return rows, notes
                    rows.append(forward_case(nets, variant, dtype, size, batch, plan["reps"], device))
                    print_forward(rows[-1])
            del nets
        del fp32
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows, notes


def _cast(net, dtype):
    import copy
    return copy.deepcopy(net).to(dtype)


def forward_case(nets, variant, dtype, size, batch, reps, device):
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    row = {"variant": variant, "dtype": str(dtype).replace("torch.", ""), "size": size, "batch": batch,
           "estimate_bytes": estimate_peak_bytes(variant, size, batch, dtype)}
    with torch.inference_mode():
        for name, net in nets.items():
            try:
                row[f"{name}_s"] = timed(lambda: net(x), device, reps)
                peak = peak_activation(lambda: net(x), device)
                row[f"{name}_activation_bytes"] = peak
                if name == "ours" and peak is not None:
                    params = sum(p.numel() * p.element_size() for p in net.parameters())
                    row["ours_peak_bytes"] = peak + params
            except Exception as e:  # noqa: BLE001 - the official one fails some dtypes; say so
                row[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    if row.get("ours_s") and row.get("official_s"):
        row["speedup"] = row["official_s"] / row["ours_s"]
    if row.get("ours_activation_bytes") and row.get("official_activation_bytes"):
        row["activation_ratio"] = row["ours_activation_bytes"] / row["official_activation_bytes"]
    if row.get("ours_peak_bytes"):
        row["estimate_over_measured"] = row["estimate_bytes"] / row["ours_peak_bytes"]
    return row


def print_forward(r):
    def fmt(value, spec):
        width = int(spec.split(".")[0])
        return format(value, spec) if isinstance(value, (int, float)) else "-".rjust(width)
    peak = r.get("ours_peak_bytes")
    print(f"{r['variant']:<6}{r['dtype']:<9}{r['size']:>5} x{r['batch']:<3}"
          f"{fmt(r.get('ours_s'), '9.4f')}{fmt(r.get('official_s'), '10.4f')}{fmt(r.get('speedup'), '8.2f')}"
          f"{fmt(peak / MiB if peak else None, '10.0f')}{r['estimate_bytes'] / MiB:>10.0f}"
          f"{fmt(r.get('estimate_over_measured'), '8.2f')}{fmt(r.get('activation_ratio'), '9.3f')}"
          f"  {r.get('official_error', '')}", flush=True)


def precision_errors(plan, device):
    rows = []
    for variant in plan["variants"]:
        nets, _ = models(variant, device)
        ours = nets["ours"]
        del nets
        x = torch.rand(1, 3, plan["error_size"], plan["error_size"],
                       generator=torch.Generator().manual_seed(2)).to(device)
        with torch.inference_mode():
            ref = ours(x).float()
            for dtype_name in plan["dtypes"][1:]:
                dtype = getattr(torch, dtype_name)
                diff = (_cast(ours, dtype)(x.to(dtype)).float() - ref).abs()
                rows.append({"variant": variant, "dtype": dtype_name, "size": plan["error_size"],
                             "max_abs": diff.max().item(), "mean_abs": diff.mean().item(),
                             "fp32_ab_std": ref.std().item()})
                print(f"{variant:<6}{dtype_name:<9} |d ab| max {rows[-1]['max_abs']:.3f}, mean "
                      f"{rows[-1]['mean_abs']:.4f} (fp32 ab std {rows[-1]['fp32_ab_std']:.2f})", flush=True)
    return rows


def pipeline_times(plan, device):
    """colorize on one image: torch pipeline on the model's device vs OpenCV on the CPU."""
    try:
        from ddcolor_model.pipeline import colorize
    except ImportError as e:
        return {"skipped": f"{e}: install numpy and opencv-python-headless (requirements.txt)"}
    nets, _ = models("tiny", device)
    model = nets["ours"]
    del nets
    height, width = plan["image"]
    image = torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(3))
    result = {"image": f"{height}x{width}", "model_size": plan["pipeline_size"], "variant": "tiny"}
    with torch.inference_mode():
        for backend in ("torch", "opencv"):
            result[f"{backend}_s"] = timed(lambda: colorize(model, image, plan["pipeline_size"],
                                                            backend=backend), device, plan["reps"])
    result["opencv_over_torch"] = result["opencv_s"] / result["torch_s"]
    print(f"colorize {result['image']} at S={plan['pipeline_size']}, model on {device.type}: torch pipeline "
          f"{result['torch_s']:.3f} s, OpenCV pipeline on the CPU {result['opencv_s']:.3f} s "
          f"(OpenCV / torch {result['opencv_over_torch']:.2f})", flush=True)
    return result


def probe_readings(device):
    """The guard's probes next to nvidia-smi (each entry a reading or the reason there is none)."""
    readings = {}
    try:
        from gpu_guard.probes.cuda import NvmlProbe, TorchProbe
    except Exception as e:  # noqa: BLE001 - report, never stop the evidence run
        return {"error": f"gpu_guard probes not importable: {e}"}
    index = device.index or 0
    for name, cls in (("nvml", NvmlProbe), ("torch", TorchProbe)):
        try:
            r = cls(index).read()
            readings[name] = {"used_mib": r.used_bytes / MiB, "total_mib": r.total_bytes / MiB}
        except Exception as e:  # noqa: BLE001
            readings[name] = {"error": f"{type(e).__name__}: {e}"}
    smi = shutil.which("nvidia-smi")
    if smi is None:
        readings["nvidia_smi"] = {"error": "nvidia-smi not found"}
    else:
        out = subprocess.run([smi, f"--id={index}", "--query-gpu=memory.used,memory.total",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True)
        try:
            used, total = (float(v) for v in out.stdout.strip().splitlines()[0].split(","))
            readings["nvidia_smi"] = {"used_mib": used, "total_mib": total}
        except (ValueError, IndexError):
            readings["nvidia_smi"] = {"error": (out.stderr or out.stdout).strip()[:200]}
    for name, value in readings.items():
        print(f"probe {name:<11}" + (f"used {value['used_mib']:.0f} MiB of {value['total_mib']:.0f} MiB"
                                     if "used_mib" in value else value["error"]), flush=True)
    return readings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="gpu_evidence.json")
    parser.add_argument("--cpu", action="store_true", help="the quick CPU fallback even when CUDA is there")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="start no new forward case after this many seconds (the run fits 9 minutes)")
    args = parser.parse_args()
    gpu = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda", 0) if gpu else torch.device("cpu")
    plan = GPU_PLAN if gpu else CPU_PLAN
    # fp32 means fp32: TF32 would change the numbers (and the parity kit compares with it off).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    start = time.monotonic()
    report = {"mode": "gpu" if gpu else "cpu-fallback", "torch": torch.__version__,
              "device": torch.cuda.get_device_name(0) if gpu else platform.processor() or "cpu",
              "threads": torch.get_num_threads(), "plan": plan}
    if not gpu:
        print("no CUDA device (or --cpu): quick CPU fallback at small sizes; these figures say nothing "
              "about a GPU")
    print(f"torch {torch.__version__} on {report['device']}")
    print(f"{'net':<6}{'dtype':<9}{'S':>5} {'b':<3}{'ours s':>9}{'offic. s':>10}{'speedup':>8}"
          f"{'peak MiB':>10}{'est. MiB':>10}{'est/pk':>8}{'act o/o':>9}")
    report["forward"], report["notes"] = forward_cases(plan, device, start + args.budget_s)
    report["precision"] = precision_errors(plan, device)
    report["pipeline"] = pipeline_times(plan, device)
    report["probes"] = probe_readings(device) if gpu else {"skipped": "no CUDA device"}
    report["seconds"] = time.monotonic() - start
    for note in report["notes"]:
        print(f"note: {note}")
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
    print(f"{report['seconds']:.0f} s; written to {args.json}")


if __name__ == "__main__":
    main()
