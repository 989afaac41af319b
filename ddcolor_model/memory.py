"""Rough peak-memory estimate of one DDColor forward, for the VRAM guard's fast lane.

PLACEHOLDER constants, calibrated below.
"""
import torch

PARAMETER_COUNT = {"tiny": 55_051_016, "large": 227_921_864}


def estimate_peak_bytes(variant, size, batch=1, dtype=torch.float32):
    if variant not in PARAMETER_COUNT:
        raise ValueError(f"unknown DDColor variant {variant!r}: use 'large' or 'tiny'")
    item = torch.empty(0, dtype=dtype).element_size()
    activations = 4500 * size * size * batch * item
    return int(PARAMETER_COUNT[variant] * item + activations)
