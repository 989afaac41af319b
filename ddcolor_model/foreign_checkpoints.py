"""Recognise state dicts of other architectures, so a wrong file gets a useful message."""

# (description, predicate over the set of keys). First match wins.
_SIGNATURES = (
    ("a Stable Diffusion checkpoint (UNet keys under diffusion_model.*)",
     lambda keys: any(k.startswith(("diffusion_model.", "model.diffusion_model.")) for k in keys)),
    ("a Stable Diffusion / SDXL UNet",
     lambda keys: any(k.startswith(("input_blocks.", "down_blocks.")) for k in keys)
     and any("time_embed" in k or "time_embedding" in k for k in keys)),
    ("an ESRGAN / Real-ESRGAN upscaler",
     lambda keys: any(k.startswith(("RRDB_trunk.", "body.0.rdb1.", "model.1.sub.")) for k in keys)
     or {"conv_first.weight", "conv_body.weight"} <= keys),
    ("a VAE (autoencoder)",
     lambda keys: any(k.startswith(("first_stage_model.", "encoder.down.", "decoder.up."))
                      for k in keys)),
    ("a CLIP text encoder",
     lambda keys: any(k.startswith(("text_model.", "transformer.text_model.", "cond_stage_model."))
                      for k in keys)),
    ("a LoRA",
     lambda keys: any("lora_" in k or ".lora." in k for k in keys)),
    ("a bare ConvNeXt classifier (an encoder alone, not a full DDColor model)",
     lambda keys: "downsample_layers.0.0.weight" in keys or "stem.0.weight" in keys),
)

EXPECTED_DDCOLOR = ("a DDColor state dict (keys such as encoder.arch.downsample_layers.0.0.weight, "
                    "decoder.color_decoder.query_feat.weight, refine_net.0.0.weight_orig)")


def describe_state_dict(keys, sample=5):
    """Say what a (non-DDColor) state dict looks like."""
    keys = set(keys)
    for description, matches in _SIGNATURES:
        if matches(keys):
            return f"it looks like {description}"
    shown = ", ".join(sorted(keys)[:sample])
    return f"its {len(keys)} keys are not DDColor's (e.g. {shown})" if keys else "it is empty"
