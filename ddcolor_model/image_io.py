"""Reading and writing image files for the CLI (OpenCV), as float32 RGB(A) in [0, 1]."""
import os

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    pass


def read_image(path):
    """Return an (H, W, 3 or 4) float32 RGB(A) array in [0, 1]; ImageReadError if unreadable."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # works with non-ASCII paths, unlike imread
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageReadError(f"{path}: not an image OpenCV can decode (supported: "
                             f"{', '.join(IMAGE_EXTENSIONS)}); skipped")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype)
    if scale is None:
        raise ImageReadError(f"{path}: unsupported sample type {image.dtype}; use 8- or 16-bit images")
    image = image.astype(np.float32) / scale
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 2:  # gray + alpha
        return np.concatenate([np.repeat(image[..., :1], 3, axis=2), image[..., 1:]], axis=2)
    if channels == 3:
        return image[..., ::-1].copy()
    return np.concatenate([image[..., 2::-1], image[..., 3:4]], axis=2)


def write_png(path, rgb):
    """Write an (H, W, 3 or 4) float RGB(A) array in [0, 1] as an 8-bit PNG."""
    pixels = (np.clip(rgb, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    bgr = pixels[..., [2, 1, 0, 3]] if pixels.shape[2] == 4 else pixels[..., ::-1]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    encoded.tofile(path)


def collect_inputs(inputs):
    """Expand files and folders (their image files, sorted, not recursive) into a file list.

    Returns ``(files, problems)``; a missing input is a problem, not an exception.
    """
    files, problems = [], []
    for item in inputs:
        if os.path.isdir(item):
            names = sorted(n for n in os.listdir(item) if n.lower().endswith(IMAGE_EXTENSIONS))
            if not names:
                problems.append(f"{item}: folder has no image files ({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(os.path.join(item, n) for n in names)
        elif os.path.isfile(item):
            files.append(item)
        else:
            problems.append(f"{item}: no such file or folder")
    return files, problems
