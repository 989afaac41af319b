"""CIE Lab conversions of float32 RGB images with OpenCV's semantics.

OpenCV's float32 Lab (L in [0, 100], a/b about [-127, 127]) is what the official pipeline uses;
an exact-formula sRGB Lab differs enough to move the model's output visibly, so we use cv2.
Images here are HxWx3 float32 numpy arrays in RGB order.
"""
import cv2
import numpy as np


def rgb_to_lab(rgb):
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab):
    """Lab -> RGB clipped to [0, 1]."""
    rgb = cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def gray_rgb(lightness):
    """The RGB image of Lab(L, 0, 0): what the model is trained to see."""
    lab = np.zeros(lightness.shape[:2] + (3,), dtype=np.float32)
    lab[..., 0] = lightness
    return lab_to_rgb(lab)


def resize_bilinear(rgb, height, width):
    """cv2 bilinear resize (the official squash-resize to the model size)."""
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
