"""Command line: ``python -m ddcolor_model colorize ...`` and ``python -m ddcolor_model synth ...``."""
import argparse
import os
import sys
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_model
from .image_io import ImageReadError, collect_inputs, read_image, write_png
from .pipeline import AB_UPSAMPLE_MODES, ColorizeOptions, colorize
from .presets import PRESETS, round_size
from .progress import progress
from .releases import CHECKPOINT_ENV, where_to_get_checkpoints

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_SIZE = 512
SYNTHETIC_SUFFIX = "_SYNTHETIC"
# Preferred order when several official releases are present.
RELEASE_PREFERENCE = ("ddcolor_modelscope.pth", "ddcolor_paper.pth", "ddcolor_artistic.pth",
                      "ddcolor_paper_tiny.pth")


class UsageError(Exception):
    pass


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m ddcolor_model",
                                     description="DDColor image colourisation (pure PyTorch).")
    sub = parser.add_subparsers(dest="command", required=True)

    col = sub.add_parser("colorize", help="colourise image files and folders")
    col.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    col.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the PNG results")
    col.add_argument("--checkpoint", metavar="PATH",
                     help=f"DDColor .pth/.bin file (default: ${CHECKPOINT_ENV}, then ComfyUI's models/ddcolor/)")
    col.add_argument("--preset", choices=sorted(PRESETS),
                     help="person: size 512 (460-680); building: size 1024 (960-1280)")
    col.add_argument("--size", type=int, help="model input size, a multiple of 32 (default 512)")
    col.add_argument("--ab-upsample", choices=AB_UPSAMPLE_MODES, default="nearest")
    col.add_argument("--clamp-ab", action="store_true", help="clamp predicted a/b to [-128, 127]")
    col.add_argument("--keep-aspect", action="store_true", help="keep the image's aspect ratio at the model input")
    col.add_argument("--strength", type=float, default=1.0, help="0 = input unchanged, 1 = full colour")
    col.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    col.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    col.set_defaults(run=run_colorize)

    syn = sub.add_parser("synth", help="write a SYNTHETIC (random, untrained) checkpoint for demos")
    syn.add_argument("variant", choices=("tiny", "large"))
    syn.add_argument("output", metavar="OUT.pth")
    syn.add_argument("--seed", type=int, default=0)
    syn.set_defaults(run=run_synth)
    return parser


def run_synth(args):
    from .synth import SYNTHETIC_NOTE, save_synthetic_checkpoint
    save_synthetic_checkpoint(args.output, args.variant, args.seed)
    print(f"wrote {args.output}: {SYNTHETIC_NOTE}")
    return 0


def run_colorize(args):
    size = resolve_size(args.preset, args.size)
    try:
        options = ColorizeOptions(ab_upsample=args.ab_upsample, clamp_ab=args.clamp_ab,
                                  keep_aspect=args.keep_aspect, strength=args.strength)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    files, problems = collect_inputs(args.inputs)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not files:
        raise UsageError("no input images found")
    checkpoint = find_checkpoint(args.checkpoint)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(checkpoint, device=device, dtype=DTYPES[args.dtype])
    suffix = SYNTHETIC_SUFFIX if model.synthetic else ""
    if model.synthetic:
        print(f"WARNING: {checkpoint} holds SYNTHETIC random weights; the colours are meaningless. "
              f"Outputs are named *{SYNTHETIC_SUFFIX}.png.", file=sys.stderr)
    print(f"DDColor-{model.variant} from {checkpoint}, size {size}, {args.dtype} on {device}",
          file=sys.stderr)

    os.makedirs(args.output, exist_ok=True)
    failures = len(problems)
    used_names = set()
    bar = progress(files, "colorize")
    for path in bar:
        try:
            image = torch.from_numpy(read_image(path))[None].to(device)
        except ImageReadError as exc:
            bar.write(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        result = colorize(model, image, size, options)[0].float().cpu().numpy()
        write_png(_output_path(args.output, path, suffix, used_names), result)
    written = len(files) - (failures - len(problems))
    print(f"{written} image(s) written to {args.output}, {failures} problem(s)", file=sys.stderr)
    return 1 if failures else 0


def resolve_size(preset, size):
    """The model size from --preset / --size: validated against the preset, rounded to 32."""
    if preset is not None:
        limits = PRESETS[preset]
        size = limits.default if size is None else size
        try:
            limits.check(size, preset)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    size = DEFAULT_SIZE if size is None else size
    try:
        rounded, note = round_size(size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if note:
        print(f"note: {note}", file=sys.stderr)
    return rounded


def find_checkpoint(explicit):
    """--checkpoint, else $DDCOLOR_CHECKPOINT, else an official release in ComfyUI's models/ddcolor."""
    for candidate in (explicit, os.environ.get(CHECKPOINT_ENV)):
        if candidate:
            if not os.path.isfile(candidate):
                raise UsageError(f"checkpoint {candidate} not found. {where_to_get_checkpoints()}")
            return candidate
    models_dir = comfy_models_dir()
    if models_dir is not None:
        for name in RELEASE_PREFERENCE:
            if (models_dir / name).is_file():
                return str(models_dir / name)
        others = sorted(models_dir.glob("*.pth")) if models_dir.is_dir() else []
        if others:
            return str(others[0])
    looked = (f"looked in {models_dir}" if models_dir is not None
              else "this pack is not inside a ComfyUI custom_nodes folder")
    raise UsageError(f"no DDColor checkpoint given or found ({looked}). {where_to_get_checkpoints()} "
                     f"For a quick demo without them: python -m ddcolor_model synth tiny demo.pth "
                     f"(random weights, colours meaningless).")


def comfy_models_dir():
    """<ComfyUI>/models/ddcolor when this pack sits in <ComfyUI>/custom_nodes/, else None."""
    pack_dir = Path(__file__).resolve().parents[1]
    if pack_dir.parent.name != "custom_nodes":
        return None
    return pack_dir.parent.parent / "models" / "ddcolor"


def _output_path(outdir, source, suffix, used_names):
    stem = Path(source).stem + suffix
    name, n = stem, 1
    while name in used_names:  # two inputs with the same stem from different folders
        n += 1
        name = f"{stem}_{n}"
    used_names.add(name)
    return os.path.join(outdir, name + ".png")
