"""Guards of several ComfyUI processes on one physical GPU: a shared registry, release requests."""
from .device_key import device_key_of
from .registry import Claim, Registry, default_base_dir
from .watch import Mine, NeighbourWatch, Pressure, who_to_ask

__all__ = ["Claim", "Mine", "NeighbourWatch", "Pressure", "Registry", "default_base_dir", "device_key_of",
           "who_to_ask"]
