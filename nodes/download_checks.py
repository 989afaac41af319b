"""Checks on a downloaded DDColor checkpoint before it may enter models/ddcolor: free disk space
first, then size and sha256 against what the Hub advertises, then the file loaded as a DDColor
checkpoint of the release's variant. A refused file is removed from the Hugging Face cache."""
import dataclasses
import hashlib
import os
import re
import shutil

from .download_messages import NOTHING_KEPT, DownloadError, endpoint, size_text

CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class Expected:
    size: int | None
    sha256: str | None

    @classmethod
    def from_metadata(cls, meta, release):
        """Published values first; else the Hub's: its etag of an LFS file is the file's sha256."""
        etag = (meta.etag or "").strip('"').lower()
        return cls(size=release.size if release.size is not None else meta.size,
                   sha256=release.sha256 or (etag if _SHA256.match(etag) else None))


def _existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_free_space(filename, size, folders):
    """Refuse before downloading when a folder the file goes to lacks room for it (once per disk)."""
    if not size:
        return
    seen = set()
    for folder in folders:
        where = _existing(folder)
        device = os.stat(where).st_dev
        if device in seen:
            continue  # same disk: the file is hard-linked, not copied
        seen.add(device)
        free = shutil.disk_usage(where).free
        if free < size:
            raise DownloadError(
                f"Not enough disk space for {filename}: it needs {size_text(size)} but {folder} has only "
                f"{size_text(free)} free. Free some space, or set HF_HUB_CACHE to a disk with room (the file is "
                "downloaded into the Hugging Face cache, then linked or copied into models/ddcolor). "
                "Nothing was downloaded.")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path, release, expected):
    """Raise DownloadError unless `path` is the release: advertised size and sha256 (when known), then
    a DDColor checkpoint of the release's variant."""
    name = release.filename
    size = os.path.getsize(path)
    sha = sha256_of(path) if expected is not None and expected.sha256 else None
    if expected is not None and ((expected.size is not None and size != expected.size)
                                 or (sha is not None and sha != expected.sha256)):
        advertised = size_text(expected.size) if expected.size is not None else "an unknown size"
        raise DownloadError(
            f"{name} failed the integrity check: received {size_text(size)} with sha256 {sha or 'not computed'}, "
            f"but {endpoint()} advertises {advertised} with sha256 {expected.sha256 or 'not given'}. The file is "
            f"corrupt or not the official release; it was removed from the Hugging Face cache. {NOTHING_KEPT}. "
            "Run the download again; if it fails the same way, check HF_ENDPOINT (a mirror may serve another file).")
    variant = _loaded_variant(path, name)
    if variant != release.variant:
        raise DownloadError(
            f"{name} from {endpoint()} is a DDColor-{variant} checkpoint, but the official {name} is "
            f"DDColor-{release.variant}: it is not the official release and was removed from the Hugging Face "
            f"cache. {NOTHING_KEPT}. Check HF_ENDPOINT (a mirror may serve another file).")


def _loaded_variant(path, name):
    try:
        from ..ddcolor_model import CheckpointError, load_model
    except ImportError:  # `python -m nodes.download` from the pack's folder: `nodes` is a top-level package
        from ddcolor_model import CheckpointError, load_model
    try:
        return load_model(path).variant
    except CheckpointError as e:
        raise DownloadError(
            f"{name} from {endpoint()} is not a usable DDColor checkpoint: {e} It was removed from the Hugging "
            f"Face cache. {NOTHING_KEPT}.") from e


def evict_from_cache(path, cache_dir):
    """Remove a refused file (its snapshot entry and its blob) from the cache, so that neither a later
    run nor offline mode ever returns it. Only paths inside `cache_dir` are touched."""
    root = os.path.realpath(cache_dir)
    for candidate in (os.path.realpath(path), os.path.abspath(path)):
        inside = os.path.commonpath([root, os.path.realpath(os.path.dirname(candidate))]) == root
        if inside and os.path.lexists(candidate):
            os.remove(candidate)
