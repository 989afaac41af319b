"""Which device and dtype a DDColor model runs with, following ComfyUI's model_management."""
import torch

import comfy.model_management as mm

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_device(choice):
    if choice == "cpu":
        return torch.device("cpu")
    device = mm.get_torch_device()
    if choice == "gpu" and mm.is_device_cpu(device):
        raise ValueError("DDColor loader: device 'gpu' was chosen but ComfyUI runs on the CPU "
                         "(no usable GPU, or started with --cpu). Choose device 'auto' or 'cpu'.")
    return device


def offload_device(device):
    return device if mm.is_device_cpu(device) else mm.unet_offload_device()


def dtype_for(choice, device):
    """auto: bf16 where ComfyUI says the device does it well, else fp32. fp16 is never picked
    automatically: unlike bf16 it lacks fp32's exponent range and the model was trained in fp32."""
    if choice != "auto":
        return DTYPES[choice]
    return torch.bfloat16 if mm.should_use_bf16(device) else torch.float32


def dtype_name(dtype):
    return next(name for name, d in DTYPES.items() if d == dtype)
