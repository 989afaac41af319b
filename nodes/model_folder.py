"""The `ddcolor` model folder in ComfyUI's folder_paths."""
import os

import folder_paths

FOLDER_NAME = "ddcolor"
CHECKPOINT_EXTENSIONS = {".pth", ".pt", ".bin", ".ckpt", ".safetensors"}


def register_model_folder():
    """Declare models/ddcolor unless extra_model_paths.yaml already declared a `ddcolor` folder
    (ComfyUI reads that file before it imports custom nodes); returns the folder paths in use."""
    if FOLDER_NAME not in folder_paths.folder_names_and_paths:
        path = os.path.join(folder_paths.models_dir, FOLDER_NAME)
        os.makedirs(path, exist_ok=True)
        folder_paths.folder_names_and_paths[FOLDER_NAME] = ([path], set(CHECKPOINT_EXTENSIONS))
    return folder_paths.get_folder_paths(FOLDER_NAME)


def checkpoint_names():
    return folder_paths.get_filename_list(FOLDER_NAME)


def download_folder():
    """Where downloads go: the first ddcolor folder (created if a yaml-declared one is missing)."""
    path = register_model_folder()[0]
    os.makedirs(path, exist_ok=True)
    return path


def checkpoint_path(name):
    path = folder_paths.get_full_path(FOLDER_NAME, name)
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths(FOLDER_NAME))
        raise FileNotFoundError(
            f"No DDColor checkpoint named {name!r} in the ddcolor model folder ({folders}). "
            "Put a DDColor .pth there (or download an official one with the 'Download DDColor Model' node), "
            "then refresh the page and pick it in the loader.")
    return path
