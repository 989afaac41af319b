"""DDColorModelLoader: a checkpoint from models/ddcolor -> DDCOLOR_MODEL under ComfyUI's model management."""
import logging

from ..ddcolor_model import CheckpointError, load_model
from . import variant_cache
from .managed_model import DDColorModel
from .model_folder import checkpoint_names, checkpoint_path
from .placement import dtype_for, load_device, offload_device
from .specs import LOADER_INPUTS, with_choices

_log = logging.getLogger(__name__)


class DDColorModelLoader:
    CATEGORY = "loaders"
    DESCRIPTION = "Load a DDColor checkpoint (official release or compatible); large/tiny is detected from its keys."
    RETURN_TYPES = ("DDCOLOR_MODEL",)
    RETURN_NAMES = ("ddcolor_model",)
    FUNCTION = "load"
    # The weights go to the offload device (CPU memory); the colorize estimate counts them on the GPU.
    VRAM_ESTIMATE = classmethod(lambda cls, inputs, prompt: 0)

    @classmethod
    def INPUT_TYPES(cls):
        return with_choices(LOADER_INPUTS, "CHECKPOINT_LIST", checkpoint_names())

    @classmethod
    def VALIDATE_INPUTS(cls, ckpt_name):
        # Taking ckpt_name here replaces ComfyUI's generic "value not in list" check: a missing file is
        # reported at run time by load() with the folder it looked in and how to get a checkpoint.
        return True

    def load(self, ckpt_name, precision, device):
        path = checkpoint_path(ckpt_name)
        target = load_device(device)
        dtype = dtype_for(precision, target)
        offload = offload_device(target)
        try:
            net = load_model(path, device=offload, dtype=dtype)
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - torch.load and friends raise many kinds on a bad file
            raise CheckpointError(f"Could not read DDColor checkpoint {path}: {type(e).__name__}: {e}. The file is "
                                  "probably truncated or not a PyTorch checkpoint; download it again.") from e
        variant_cache.remember(path, net.variant)
        _log.info("DDColor: loaded %s (%s, %s) for %s", ckpt_name, net.variant, dtype, target)
        if getattr(net, "synthetic", False):
            _log.warning("DDColor: %s holds synthetic test weights: its colours mean nothing. "
                         "Use an official release for real colourisation.", ckpt_name)
        return (DDColorModel(net, net.variant, dtype, target, offload, path),)
