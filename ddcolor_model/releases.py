"""Facts about the official DDColor releases (Hugging Face repo piddnad/DDColor-models)."""

RELEASE_REPO = "piddnad/DDColor-models"
RELEASE_URL = f"https://huggingface.co/{RELEASE_REPO}"

# File name -> (variant, approximate size in bytes). Sizes are the Hugging Face file listing's
# figures (912 MB and 220 MB, decimal megabytes, rounded there to 3 digits); they agree with the
# parameter counts (227,921,864 and 55,051,016 float32 numbers).
OFFICIAL_RELEASES = {
    "ddcolor_paper.pth": ("large", 912_000_000),
    "ddcolor_modelscope.pth": ("large", 912_000_000),
    "ddcolor_artistic.pth": ("large", 912_000_000),
    "ddcolor_paper_tiny.pth": ("tiny", 220_000_000),
}

VARIANT_APPROX_BYTES = {"large": 912_000_000, "tiny": 220_000_000}

CHECKPOINT_ENV = "DDCOLOR_CHECKPOINT"


def where_to_get_checkpoints():
    """One paragraph telling a user where the official weights are and where to put them."""
    names = ", ".join(OFFICIAL_RELEASES)
    return (f"The official DDColor weights are published in the Hugging Face repo {RELEASE_REPO} "
            f"({RELEASE_URL}): {names}. Pass one with --checkpoint PATH, set the environment "
            f"variable {CHECKPOINT_ENV}=PATH, or put it in ComfyUI's models/ddcolor/ folder.")
