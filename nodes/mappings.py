"""Node classes and display names of the pack (imported only inside ComfyUI)."""
from .colorize_node import DDColorColorize
from .comfy_setup import set_up
from .download_node import DDColorDownloadModel
from .loader_node import DDColorModelLoader

set_up()

NODE_CLASS_MAPPINGS = {
    "DDColorModelLoader": DDColorModelLoader,
    "DDColorColorize": DDColorColorize,
    "DDColorDownloadModel": DDColorDownloadModel,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DDColorModelLoader": "Load DDColor Model",
    "DDColorColorize": "DDColor Colorize",
    "DDColorDownloadModel": "Download DDColor Model",
}
