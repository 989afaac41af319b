"""Model input sizes: the person/building presets and rounding to a multiple of 32."""
from dataclasses import dataclass

SIZE_MULTIPLE = 32  # the encoder downsamples by 32


@dataclass(frozen=True)
class SizePreset:
    default: int
    low: int
    high: int

    def check(self, size, name):
        """Raise ValueError unless low <= size <= high."""
        if not self.low <= size <= self.high:
            raise ValueError(
                f"size {size} is outside the {name!r} preset's range {self.low}-{self.high}; "
                f"pick a size in that range, or drop the preset and pass the size alone")
        return size


PRESETS = {
    "person": SizePreset(default=512, low=460, high=680),
    "building": SizePreset(default=1024, low=960, high=1280),
}


def round_size(size):
    """Round ``size`` to the nearest multiple of 32 (at least 32).

    Returns ``(rounded, note)``; ``note`` is None when no rounding was needed, otherwise a
    sentence saying what happened.
    """
    size = int(size)
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    # Half-way sizes round up (464 -> 480), unlike Python's round-half-to-even.
    rounded = max(SIZE_MULTIPLE, (size + SIZE_MULTIPLE // 2) // SIZE_MULTIPLE * SIZE_MULTIPLE)
    if rounded == size:
        return rounded, None
    return rounded, (f"model size {size} is not a multiple of {SIZE_MULTIPLE}; "
                     f"using {rounded} instead")
