"""Loading DDColor checkpoints: container formats, key normalisation, variant detection, errors."""
import os
import pickle
import zipfile

import torch

from .ddcolor import DDColor
from .foreign_checkpoints import EXPECTED_DDCOLOR, describe_state_dict
from .releases import OFFICIAL_RELEASES, VARIANT_APPROX_BYTES, where_to_get_checkpoints

KEY_PREFIXES = ("module.", "model.")  # added by DataParallel / wrappers
DROPPED_PREFIX = "encoder.arch.head_cls."  # removed classification head found in releases
STEM_KEY = "encoder.arch.downsample_layers.0.0.weight"
STEM_WIDTH_TO_VARIANT = {96: "tiny", 192: "large"}
SYNTHETIC_MARKER = "ddcolor_model_synthetic"  # container key written by `python -m ddcolor_model synth`
MAX_LISTED_KEYS = 8


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file, the problem and the fix."""


def load_state_dict_file(path):
    """Read a checkpoint file; return ``(state_dict, variant)`` with normalised keys."""
    state_dict, variant, _ = read_checkpoint(path)
    return state_dict, variant


def read_checkpoint(path):
    """Like load_state_dict_file, plus a dict of container metadata (``synthetic``: bool)."""
    path = os.fspath(path)
    container = _torch_load(path)
    if isinstance(container, dict) and isinstance(container.get("params"), dict):
        state_dict = container["params"]
    elif isinstance(container, dict):
        state_dict = container
    else:
        raise CheckpointError(
            f"{path}: holds a {type(container).__name__}, not a state dict; expected "
            f"{EXPECTED_DDCOLOR}. {where_to_get_checkpoints()}")
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    state_dict = normalise_keys(tensors)
    try:
        variant = detect_variant(state_dict)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    meta = {"synthetic": bool(isinstance(container, dict) and container.get(SYNTHETIC_MARKER))}
    return state_dict, variant, meta


def normalise_keys(state_dict):
    """Strip ``module.``/``model.`` prefixes shared by every key; drop the head_cls keys only."""
    keys = list(state_dict)
    stripped = True
    while keys and stripped:
        stripped = False
        for prefix in KEY_PREFIXES:
            if all(k.startswith(prefix) for k in keys):
                keys = [k[len(prefix):] for k in keys]
                stripped = True
    return {new: value for new, value in zip(keys, state_dict.values())
            if not new.startswith(DROPPED_PREFIX)}


def detect_variant(state_dict):
    """Return "large" or "tiny" from the encoder stem's width; CheckpointError otherwise."""
    stem = state_dict.get(STEM_KEY)
    if stem is None or "refine_net.0.0.weight_orig" not in state_dict:
        raise CheckpointError(
            f"this is not a DDColor checkpoint: {describe_state_dict(state_dict.keys())}; expected "
            f"{EXPECTED_DDCOLOR}. {where_to_get_checkpoints()}")
    variant = STEM_WIDTH_TO_VARIANT.get(int(stem.shape[0]))
    if variant is None:
        raise CheckpointError(
            f"DDColor encoder stem has {stem.shape[0]} channels; only ConvNeXt-T (96, "
            f"ddcolor_paper_tiny) and ConvNeXt-L (192, ddcolor_paper/modelscope/artistic) are "
            f"supported")
    return variant


def load_model(path, device="cpu", dtype=torch.float32):
    """Build the right DDColor variant, load the checkpoint strictly, return it in eval mode.

    The model gets ``.variant``, ``.checkpoint_path`` and ``.synthetic`` (True for weights made by
    ``python -m ddcolor_model synth``, which colour nothing meaningfully).
    """
    state_dict, variant, meta = read_checkpoint(path)
    with torch.device("meta"):  # no random init and no second copy: the loaded tensors are used
        model = DDColor(variant)
    check_keys(model, state_dict, os.fspath(path), variant)
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.checkpoint_path = os.fspath(path)
    model.synthetic = meta["synthetic"]
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def check_keys(model, state_dict, path, variant):
    """Raise CheckpointError listing missing, unexpected and mis-shaped keys (capped)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [f"{k} {tuple(state_dict[k].shape)} (expected {tuple(v.shape)})"
                  for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = [_listing("missing", missing), _listing("unexpected", unexpected),
                _listing("with the wrong shape", mis_shaped)]
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointError(
            f"{path}: does not match the DDColor-{variant} layout: " + "; ".join(problems)
            + ". The file is damaged or from a modified model; re-download an official release. "
            + where_to_get_checkpoints())


def _listing(what, keys):
    if not keys:
        return ""
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = f", ... and {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else ""
    return f"{len(keys)} key(s) {what}: {shown}{more}"


def _torch_load(path):
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file. {where_to_get_checkpoints()}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file. {where_to_get_checkpoints()}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Only a disallowed global means "objects"; garbage bytes also fail the weights-only
        # unpickler, with an unsupported-operand error.
        if "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: contains Python objects besides tensors, which are not loaded for "
                f"safety (weights_only). Use a plain state-dict checkpoint. "
                f"{where_to_get_checkpoints()}") from None
        raise CheckpointError(_damaged_message(path, exc)) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError,
            IndexError, KeyError, TypeError) as exc:
        raise CheckpointError(_damaged_message(path, exc)) from None


def _damaged_message(path, exc):
    size = os.path.getsize(path)
    name = os.path.basename(path)
    if name in OFFICIAL_RELEASES:
        expected = f"expected about {_mb(OFFICIAL_RELEASES[name][1])} for {name}"
    else:
        expected = ("the official releases are about "
                    f"{_mb(VARIANT_APPROX_BYTES['tiny'])} (tiny) and "
                    f"{_mb(VARIANT_APPROX_BYTES['large'])} (large)")
    reason = _short_reason(exc)
    return (f"{path}: cannot be read as a PyTorch checkpoint; it is truncated or corrupt "
            f"(size {size:,} bytes = {_mb(size)}; {expected}). Re-download the file. "
            f"Detail: {reason}. {where_to_get_checkpoints()}")


def _short_reason(exc):
    """The informative part of a loader error (torch's weights-only text is long and generic)."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def _mb(n):
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"
