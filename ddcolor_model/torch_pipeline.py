"""The colourisation pipeline in torch, on the model's device (the GPU path).

Same steps and numbers as the OpenCV pipeline in pipeline.py (torch_lab reproduces OpenCV's
float32 Lab; F.interpolate bilinear is cv2's INTER_LINEAR within 1.2e-7). The full-resolution
steps (Lab of the original, Lab -> RGB of the result) run in bands of rows so that their integer
and float intermediates stay small next to the model's own peak, whatever the image size.
"""
import torch
import torch.nn.functional as F

from .torch_lab import gray_rgb, lab_to_rgb, rgb_to_lab

# Pixels per band of the full-resolution steps: 2 Mi pixels keep each band's intermediates
# around 100 MB in fp32 (a 1080p image is one band, 8K is 16).
BAND_PIXELS = 2 * 2 ** 20
AB_LIMITS = (-128.0, 127.0)


def colorize_tensors(model, color, in_h, in_w, options, device):
    """(B, H, W, 3) RGB float -> (B, H, W, 3) float32 on ``device``, like _colorize_arrays."""
    color = color.to(device=device, dtype=torch.float32)
    batch, height, width, _ = color.shape
    predicted = None
    if options.strength > 0:  # strength 0 keeps the input's chroma: no forward needed
        predicted = predict_ab(model, color, in_h, in_w)
        predicted = upsample_ab(predicted, height, width, options.ab_upsample)
        if options.clamp_ab:
            predicted = predicted.clamp_(*AB_LIMITS)
    out = torch.empty_like(color)
    step = max(1, BAND_PIXELS // width)
    for i in range(batch):
        for top in range(0, height, step):
            rows = slice(top, min(height, top + step))
            channels = (0,) if options.strength == 1.0 else (0, 1, 2)
            lab = rgb_to_lab(color[i, rows], channels)
            if predicted is not None:
                ab = predicted[i, :, rows].permute(1, 2, 0)
                if options.strength != 1.0:
                    ab = torch.lerp(lab[..., 1:], ab, float(options.strength))
                lab = torch.cat([lab[..., :1], ab], dim=-1)
            out[i, rows] = lab_to_rgb(lab)
    return out


def gray_model_input(color, in_h, in_w):
    """Model input (B, 3, in_h, in_w) float32 from RGB (B, H, W, 3) float32, on color's device."""
    resized = F.interpolate(color.permute(0, 3, 1, 2), size=(in_h, in_w), mode="bilinear",
                            align_corners=False)
    lightness = rgb_to_lab(resized.permute(0, 2, 3, 1), (0,))[..., 0]
    return gray_rgb(lightness).permute(0, 3, 1, 2).contiguous()


def predict_ab(model, color, in_h, in_w):
    """Model ab (B, 2, in_h, in_w) float32, on color's device."""
    batch = gray_model_input(color, in_h, in_w)
    param = next(model.parameters())
    return model(batch.to(device=param.device, dtype=param.dtype)).to(color.device, torch.float32)


def upsample_ab(ab, height, width, mode):
    if ab.shape[-2:] == (height, width):
        return ab
    if mode == "nearest":
        return F.interpolate(ab, size=(height, width), mode="nearest")
    return F.interpolate(ab, size=(height, width), mode="bilinear", align_corners=False)
