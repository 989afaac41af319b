"""The fused colour head: last x4 up-stage, query/pixel einsum and refine conv in one pass.

The official network computes ``refine(cat(einsum(E, blur(pad(shuffle(R)))), x))`` with
``R = relu(conv(h))``, a 4096-channel map at S/4, whose shuffled, padded and blurred 256-channel
copies and the 100-channel einsum output all live at full resolution. Everything after the ReLU
is linear, and pad, blur and pixel shuffle act on each channel alone, so the refine conv's query
columns ``W_q`` (2 x 100) can be pulled through: with ``M = W_q E`` (2 x 256 per image) the head
equals ``blur(pad(shuffle(M R))) + W_x x + b``. ``M`` contracts R's 256 channels per sub-pixel
(R's channel ``c*16 + s`` is channel c of sub-pixel s), leaving 2 x 16 channels at S/4.

R is computed in bands of rows of h, so the 4096-channel map never exists whole: the conv is
1x1, so bands need no overlap; pad and blur run afterwards on the 2-channel result.
"""
import torch
import torch.nn.functional as F

from .pixel_decoder import pad_blur_

# Elements of R computed at once (one band of one image): 8 Mi values = 32 MiB in
# fp32. Small enough to stay out of the activation peak, large enough for efficient matmuls.
BAND_ELEMENTS = 8 * 2 ** 20


def band_rows(channels, width, budget=BAND_ELEMENTS):
    """Rows of h per band so that one band of R holds at most ``budget`` values (at least 1 row)."""
    return max(1, budget // (channels * width))


def fused_color_head(h, conv_weight, conv_bias, mix, image, image_weight, bias, scale,
                     budget=BAND_ELEMENTS):
    """ab (B, 2, S, S) from the last up-block's output ``h`` (B, C, S/scale, S/scale).

    conv_weight/conv_bias: the last shuffle conv (C*scale^2*... channels, 1x1); mix: M (B, 2, C');
    image: the normalised model input (B, 3, S, S); image_weight/bias: the refine conv's columns
    for the image and its bias.
    """
    batch, _, rows, width = h.shape
    sub = scale * scale
    out_channels = conv_weight.shape[0]
    embed = out_channels // sub
    outputs = mix.shape[1]
    low = h.new_empty(batch, outputs, sub, rows, width)
    step = band_rows(out_channels, width, budget)
    weight = conv_weight.reshape(out_channels, -1)
    for top in range(0, rows, step):
        bottom = min(rows, top + step)
        for i in range(batch):
            band = h[i, :, top:bottom, :].reshape(h.shape[1], -1)
            # addmm: the bias is added inside the matmul (a separate add is a pass over R).
            r = torch.addmm(conv_bias[:, None], weight, band).relu_()  # (C * sub, P)
            # (2, C) @ (C, sub * P): channel c*sub + s of R is channel c of sub-pixel s.
            mixed = torch.mm(mix[i], r.view(embed, -1))
            low[i, ..., top:bottom, :] = mixed.view(outputs, sub, bottom - top, width)
            del r, mixed
    ab = pad_blur_(F.pixel_shuffle(low.view(batch, outputs * sub, rows, width), scale))
    return ab + F.conv2d(image, image_weight, bias)

