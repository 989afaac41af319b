"""CIE Lab conversions in torch with OpenCV's float32 semantics, on any device.

The official pipeline uses ``cv2.cvtColor`` on float32 images. OpenCV does not evaluate the Lab
formulas there exactly, and the model is sensitive to the difference (the parity kit measures an
exact-formula Lab moving ab by up to 1.4), so this module reproduces OpenCV's method:

- RGB -> Lab: the RGB values, clipped to [0, 1], are rounded to 14 bits; Lab is interpolated
  trilinearly in a 33^3 table of Lab values (14-bit fixed point), with the position inside a cell
  rounded to 1/16, all in integer arithmetic. Being integer, the result does not depend on the
  device or on the order of the sums. The table entries are read from cv2 (see _lab_table).
- Lab -> RGB: the formulas in float32, then the inverse sRGB gamma read from a cubic spline
  through 1025 samples.

The constants (sRGB/D65 matrices, thresholds, table sizes and scales) are OpenCV's, from
``modules/imgproc/src/color_lab.cpp``. Tables are built once on the CPU and copied to the
device of the image.
"""
import functools

import numpy as np
import torch

XYZ_TO_RGB = np.array([[3.240479, -1.53715, -0.498535],
                       [-0.969256, 1.875991, 0.041556],
                       [0.055648, -0.204043, 1.057311]])
D65_WHITE = np.array([0.950456, 1.0, 1.088754])

LUT_SHIFT = 5                      # 2^5 cells per axis: 33 grid points
LUT_DIM = (1 << LUT_SHIFT) + 1
BASE_SHIFT = 14                    # RGB and table values in 14-bit fixed point
BASE = 1 << BASE_SHIFT
FRAC_SHIFT = 8 - LUT_SHIFT + 1     # position inside a cell in 1/16 steps
FRAC_BASE = 1 << FRAC_SHIFT
GAMMA_TABLE_SIZE = 1024

L_THRESHOLD = 216.0 / 24389.0      # (6/29)^3
L_SCALE = 841.0 / 108.0            # (29/3)^3 / (29*4) = 7.787
L_BIAS = 16.0 / 116.0
KAPPA = 24389.0 / 27.0             # (29/3)^3 = 903.3


def _srgb_inverse_gamma(x):
    """linear -> sRGB, exact (float64)."""
    return np.where(x <= 0.0031308, x * 12.92, np.power(x, 1 / 2.4) * 1.055 - 0.055)


@functools.lru_cache(maxsize=1)
def _lab_table():
    """(3, (LUT_DIM + 1)^3) int32: L, a, b in fixed point at the grid points, flattened.

    Read from OpenCV itself: at an RGB value on the grid (k / 32) the interpolation weight of
    the cell's origin is 1, so cv2 returns the table entry exactly. (Rebuilding the table from
    the formulas in numpy gets about 0.05 % of the entries 1 unit off, from float32 rounding
    in OpenCV's own build.) Axes are [red][green][blue]; one repeated plane per axis lets the
    "+1" corner be read without a bound check (its weight is 0 at the last grid point).
    """
    import cv2
    steps = np.arange(LUT_DIM, dtype=np.float32) / np.float32(LUT_DIM - 1)
    red, green, blue = np.meshgrid(steps, steps, steps, indexing="ij")
    grid = np.stack([red, green, blue], axis=-1).reshape(1, -1, 3)
    lab = cv2.cvtColor(grid, cv2.COLOR_RGB2Lab).reshape(LUT_DIM, LUT_DIM, LUT_DIM, 3).astype(np.float64)
    table = np.stack([np.rint(lab[..., 0] * BASE / 100.0),
                      np.rint((lab[..., 1] + 128.0) * BASE / 256.0),
                      np.rint((lab[..., 2] + 128.0) * BASE / 256.0)]).astype(np.int32)
    table = np.pad(table, ((0, 0), (0, 1), (0, 1), (0, 1)), mode="edge")
    return torch.from_numpy(table.reshape(3, -1))


def _spline_coefficients(samples):
    """OpenCV's cubic spline through (i, samples[i]), i = 0..n: (n, 4) coefficients per interval."""
    n = len(samples) - 1
    l_coef = np.zeros(n + 1)
    r_coef = np.zeros(n + 1)
    for i in range(1, n):
        t = 3 * (samples[i + 1] - 2 * samples[i] + samples[i - 1])
        l_coef[i] = 1 / (4 - l_coef[i - 1])
        r_coef[i] = (t - r_coef[i - 1]) * l_coef[i]
    table = np.zeros((n, 4))
    cn = 0.0
    for i in range(n - 1, -1, -1):
        c = r_coef[i] - l_coef[i] * cn
        table[i] = (samples[i], samples[i + 1] - samples[i] - (cn + 2 * c) / 3, c, (cn - c) / 3)
        cn = c
    return table


@functools.lru_cache(maxsize=1)
def _inverse_gamma_spline():
    x = (np.arange(GAMMA_TABLE_SIZE + 1, dtype=np.float32) / np.float32(GAMMA_TABLE_SIZE)).astype(np.float64)
    samples = _srgb_inverse_gamma(x).astype(np.float32).astype(np.float64)
    return torch.from_numpy(_spline_coefficients(samples).astype(np.float32))


def _tables(device, getter):
    table = getter()
    return table if table.device == torch.device(device) else table.to(device)


def rgb_to_lab(rgb, channels=(0, 1, 2)):
    """Lab of float RGB (..., 3) in OpenCV's float32 semantics; float32 (..., len(channels)).

    ``channels`` picks L (0), a (1), b (2); ``(0,)`` computes only the lightness.
    """
    table = _tables(rgb.device, _lab_table)
    fixed = torch.round(rgb.float().clamp(0.0, 1.0) * BASE).to(torch.int32)  # half to even, as cvRound
    red, green, blue = fixed.unbind(-1)
    cell = [c >> (BASE_SHIFT - LUT_SHIFT) for c in (blue, green, red)]
    frac = [(c >> (BASE_SHIFT - 8 - 1)) & (FRAC_BASE - 1) for c in (blue, green, red)]
    dim = LUT_DIM + 1
    origin = (cell[0] + dim * cell[1] + dim * dim * cell[2]).long()
    strides = (1, dim, dim * dim)
    out = []
    for channel in channels:
        values = table[channel]
        total = torch.zeros_like(origin)
        for corner in range(8):
            offset, weight = 0, None
            for axis in range(3):
                upper = (corner >> (2 - axis)) & 1
                offset += upper * strides[axis]
                w = frac[axis] if upper else FRAC_BASE - frac[axis]
                weight = w if weight is None else weight * w
            total += weight * values[origin + offset]
        fixed_value = (total + (1 << (3 * FRAC_SHIFT - 1))) >> (3 * FRAC_SHIFT)
        if channel == 0:
            out.append(fixed_value.float() * (100.0 / BASE))
        else:
            out.append(fixed_value.float() * (256.0 / BASE) - 128.0)
    return torch.stack(out, dim=-1)


def lab_to_rgb(lab):
    """RGB (..., 3) float32 in [0, 1] of Lab (..., 3), as OpenCV's float32 Lab -> RGB."""
    lightness, a, b = lab.float().unbind(-1)
    low = lightness <= 8.0  # = L_THRESHOLD * KAPPA
    fy_high = (lightness + 16.0) * (1.0 / 116.0)
    y_low = lightness * (1.0 / KAPPA)
    y = torch.where(low, y_low, fy_high * fy_high * fy_high)
    fy = torch.where(low, y_low * L_SCALE + L_BIAS, fy_high)
    xz = []
    for f in (a * (1.0 / 500.0) + fy, fy - b * (1.0 / 200.0)):
        xz.append(torch.where(f <= 6.0 / 29.0, (f - L_BIAS) * (1.0 / L_SCALE), f * f * f))
    x, z = xz
    coeffs = (XYZ_TO_RGB * D65_WHITE[None, :]).astype(np.float32).tolist()
    spline = _tables(lab.device, _inverse_gamma_spline)
    channels = []
    for row in coeffs:
        linear = (x * row[0] + y * row[1] + z * row[2]).clamp_(0.0, 1.0)
        channels.append(_spline_eval(linear * GAMMA_TABLE_SIZE, spline))
    return torch.stack(channels, dim=-1).clamp_(0.0, 1.0)


def _spline_eval(x, table):
    index = x.to(torch.int32).clamp_(0, table.shape[0] - 1)
    t = x - index
    c = table[index.long()]  # (..., 4)
    return ((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0]


def gray_rgb(lightness):
    """RGB (..., 3) of Lab(L, 0, 0) for L (...): what the model is trained to see."""
    zeros = torch.zeros_like(lightness)
    return lab_to_rgb(torch.stack([lightness, zeros, zeros], dim=-1))
