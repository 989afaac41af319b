"""Which physical device a probe watches, as a key the guards on that device share."""
from __future__ import annotations

import os
from typing import Optional

SIM_PREFIX = "sim:"


def device_key_of(probe) -> Optional[str]:
    """The NVML/torch probes' UUID key, or "sim:<real path>" for the simulated device (two servers on
    the same file share one device); None for probes that watch no GPU (ram, file, off)."""
    if probe is None:
        return None
    key = getattr(probe, "device_key", None)
    if isinstance(key, str) and key:
        return key
    name = getattr(probe, "name", "") or ""
    if name.startswith(SIM_PREFIX) and len(name) > len(SIM_PREFIX):
        return SIM_PREFIX + os.path.realpath(name[len(SIM_PREFIX):])
    return None
