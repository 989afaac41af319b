"""Same-run A/B of the algebraic folds the DDColor forward could use (fp32, CPU, batch 1).

Each variant patches a copy of our model with a folded forward (weights derived here, from the
loaded parameters; nothing stored) and is timed against the unpatched model in alternating
order. A fold goes into ddcolor_model only if it pays here; the results are in docs/ddcolor.md.

- bn: the BatchNorm after each up-block's pixel-shuffle conv folded into that conv
  (W' = W * g / sqrt(var + eps), b' = beta - mean * g / sqrt(var + eps)).
- ln-gamma: in every ConvNeXt block, LayerNorm's affine folded into pwconv1
  (W1' = W1 diag(w), b1' = b1 + W1 b) and the layer-scale gamma into pwconv2
  (W2' = diag(gamma) W2, b2' = gamma * b2). Costs a second copy of those weights.
- channels-last: the model in channels_last memory format (kept: DDColor.forward converts the
  normalised input); the "without" side is the same model with memory_format set back to NCHW.

    python bench/bench_folds.py [--variant tiny] [--size 512] [--reps 6] [--folds bn ln-gamma channels-last]
"""
import argparse
import copy
import types

import ddcolor_kit as kit
import torch
import torch.nn.functional as F

from ddcolor_model.convnext import ConvNeXtBlock
from ddcolor_model.pixel_decoder import UpBlock, pad_blur_


def fold_bn(model):
    for block in model.modules():
        if isinstance(block, UpBlock):
            shuf = block.shuf
            conv, bn = shuf.conv[0], shuf.conv[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = conv.weight * scale[:, None, None, None]
            bias = bn.bias - bn.running_mean * scale

            def forward(self, x, weight=weight, bias=bias):
                return pad_blur_(self.shuf(F.conv2d(x, weight, bias).relu_()))
            shuf.forward = types.MethodType(forward, shuf)
    return model


def fold_ln_gamma(model):
    for block in model.modules():
        if isinstance(block, ConvNeXtBlock):
            w1 = block.pwconv1.weight * block.norm.weight[None, :]
            b1 = block.pwconv1.bias + block.pwconv1.weight @ block.norm.bias
            w2 = block.pwconv2.weight * block.gamma[:, None]
            b2 = block.pwconv2.bias * block.gamma
            eps, dim = block.norm.eps, block.norm.normalized_shape

            def forward(self, x, w1=w1, b1=b1, w2=w2, b2=b2, eps=eps, dim=dim):
                y = self.dwconv(x).permute(0, 2, 3, 1)
                y = F.linear(F.gelu(F.linear(F.layer_norm(y, dim, None, None, eps), w1, b1)), w2, b2)
                return x + y.permute(0, 3, 1, 2)
            block.forward = types.MethodType(forward, block)
    return model


def unbanded(model):
    """The ConvNeXt block as one MLP over the whole map (the baseline of ln-gamma)."""
    for block in model.modules():
        if isinstance(block, ConvNeXtBlock):
            def forward(self, x):
                y = self.dwconv(x).permute(0, 2, 3, 1)
                y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
                return x + (self.gamma * y).permute(0, 3, 1, 2)
            block.forward = types.MethodType(forward, block)
    return model


def contiguous_nchw(model):
    """The model with DDColor.forward's channels_last conversion undone (NCHW throughout)."""
    model.memory_format = torch.contiguous_format
    return model


FOLDS = {"bn": fold_bn, "ln-gamma": fold_ln_gamma}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny", choices=["tiny", "large"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--folds", nargs="+", default=["bn", "ln-gamma", "channels-last"],
                        choices=["bn", "ln-gamma", "channels-last"])
    args = parser.parse_args()
    kit.require_kit()
    model = kit.our_model(args.variant, kit.kit_state_dict(args.variant))
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    print(f"{args.variant}@{args.size}, fp32, batch 1, {torch.get_num_threads()} threads, {args.reps} "
          f"alternating reps each; load average {kit.load_average():.1f} at start")
    with torch.inference_mode():
        reference = model(x)
        for name in args.folds:
            if name == "channels-last":
                base, variant, inputs = contiguous_nchw(copy.deepcopy(model)), model, (x, x)
            elif name == "ln-gamma":  # against the same block without bands, so only the fold differs
                base = unbanded(copy.deepcopy(model))
                variant = fold_ln_gamma(copy.deepcopy(model))
                inputs = (x, x)
            else:
                base, variant, inputs = model, FOLDS[name](copy.deepcopy(model)), (x, x)
            diff = (variant(inputs[1]) - reference).abs().max().item()
            times = kit.interleaved_times({"without": lambda: base(inputs[0]),
                                           "with": lambda: variant(inputs[1])}, args.reps)
            ratio = min(times["without"]) / min(times["with"])
            print(f"{name:<14} without {kit.summary(times['without'])}; with {kit.summary(times['with'])}; "
                  f"speed-up {ratio:.3f}x; max |dab| vs ours {diff:.1e}", flush=True)
    print(f"load average {kit.load_average():.1f} at the end")


if __name__ == "__main__":
    main()
