"""DDColorDownloadModel: fetch an official DDColor checkpoint into models/ddcolor (opt-in: only runs when queued)."""
import os

import comfy.utils

from .download import download, release_named
from .model_folder import download_folder
from .specs import DOWNLOAD_INPUTS, DOWNLOAD_OUTPUTS


class DDColorDownloadModel:
    CATEGORY = "loaders"
    DESCRIPTION = ("Download an official DDColor release from Hugging Face (piddnad/DDColor-models) through the Hugging Face "
                   "cache into models/ddcolor, checking its size, sha256 and model layout. HF_ENDPOINT (a mirror), HF_TOKEN and "
                   "HF_HUB_OFFLINE apply. An existing file is kept. Refresh the page afterwards to see it in the loader.")
    RETURN_TYPES = tuple(t for t, _ in DOWNLOAD_OUTPUTS)
    RETURN_NAMES = tuple(n for _, n in DOWNLOAD_OUTPUTS)
    FUNCTION = "fetch"
    OUTPUT_NODE = True
    VRAM_ESTIMATE = classmethod(lambda cls, inputs, prompt: 0)  # never touches the GPU

    @classmethod
    def INPUT_TYPES(cls):
        return DOWNLOAD_INPUTS

    def fetch(self, release):
        bar = comfy.utils.ProgressBar(100)

        def progress(done, total):
            if total:
                bar.update_absolute(int(100 * done / total), 100)

        path = download(release_named(release), download_folder(), progress=progress)
        name = os.path.basename(path)
        return {"ui": {"text": [f"{name} is in {os.path.dirname(path)}"]}, "result": (name,)}
