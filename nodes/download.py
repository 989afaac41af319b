"""Opt-in download of the official DDColor checkpoints through huggingface_hub, with checks.

The file comes through `huggingface_hub` into the shared Hugging Face cache, so everything that
library reads works as users expect: `HF_ENDPOINT` (a mirror), `HF_TOKEN`, `HF_HUB_OFFLINE`,
`HF_HUB_CACHE`/`HF_HOME`, and a dropped connection resumed where it stopped. The cached file is then
checked (size and sha256 against what the Hub advertises, then loaded as a DDColor checkpoint of the
release's variant) and only then put into models/ddcolor (a hard link to the cached file where the
file system allows, else a copy), under a temporary name renamed into place. So a failed, cut or
wrong download never leaves a file in models/ddcolor, and a refused file is removed from the cache.

Command line (from the pack's folder):  python -m nodes.download ddcolor_paper_tiny.pth --dest DIR
"""
import argparse
import inspect
import os
import shutil
import sys
import uuid

from . import download_checks, download_messages
from .download_messages import DownloadError
from .releases import RELEASES, REPO_ID, REVISION, RETIRED_BASE_URL_ENV, Release

__all__ = ["DownloadError", "download", "release_named", "main"]


def download(release: Release, dest_dir, progress=None):
    """Download `release` into `dest_dir`; returns the final path.

    progress(done_bytes, total_bytes_or_None) is called as the bytes arrive. An existing file of the
    same name is kept as it is (never overwritten) and its path returned, without any network access.
    """
    dest_dir = os.fspath(dest_dir)
    final = os.path.join(dest_dir, release.filename)
    if os.path.exists(final):
        return final
    _refuse_retired_setting()
    try:
        import huggingface_hub
    except ImportError as e:
        raise DownloadError(f"Downloading {release.filename} needs huggingface_hub, which is not installed "
                            f"({e}). Install the pack's requirements: pip install -r requirements.txt") from e

    expected, unreachable = _advertised(huggingface_hub, release)
    cache_dir = huggingface_hub.constants.HF_HUB_CACHE
    if expected is not None:
        download_checks.check_free_space(release.filename, expected.size, [cache_dir, dest_dir])
    cached = _fetch(huggingface_hub, release, unreachable, progress, dest_dir)
    try:
        download_checks.check_file(cached, release, expected)
    except DownloadError:
        download_checks.evict_from_cache(cached, cache_dir)
        raise
    os.makedirs(dest_dir, exist_ok=True)
    _place(cached, final)
    return final


def _refuse_retired_setting():
    if os.environ.get(RETIRED_BASE_URL_ENV, "").strip():
        raise DownloadError(
            f"{RETIRED_BASE_URL_ENV} is no longer read: downloads go through huggingface_hub. For a mirror, "
            f"set HF_ENDPOINT to the mirror's address (the part before /{REPO_ID}/resolve/...), e.g. "
            f"HF_ENDPOINT=https://hf-mirror.com, and unset {RETIRED_BASE_URL_ENV}.")


def _advertised(hub, release):
    """(size and sha256 the Hub advertises for the release, None) after one HEAD request, or
    (None, why) when offline or the Hub cannot be reached: then only a cached file can be used."""
    url = hub.hf_hub_url(REPO_ID, release.filename, revision=REVISION)
    try:
        meta = hub.get_hf_file_metadata(url)
    except Exception as e:  # noqa: BLE001 - refusals raise here; offline or no connection fall back to the cache
        download_messages.raise_for_refusal(e, release.filename)
        return None, e
    return download_checks.Expected.from_metadata(meta, release), None


def _fetch(hub, release, unreachable, progress, dest_dir):
    """Path of the release in the Hugging Face cache, downloaded unless it is already there."""
    options = {"revision": REVISION}
    if unreachable is not None:
        options["local_files_only"] = True
    elif progress is not None and "tqdm_class" in inspect.signature(hub.hf_hub_download).parameters:
        options["tqdm_class"] = _progress_class(progress)
    try:
        return hub.hf_hub_download(REPO_ID, release.filename, **options)
    except Exception as e:  # noqa: BLE001 - each kind gets its own message
        raise download_messages.translate(e, release.filename, unreachable, dest_dir) from e


def _progress_class(callback):
    """A tqdm-like class for huggingface_hub that reports the first bar it makes to `callback`."""
    reported = []

    class Progress:
        def __init__(self, *args, total=None, initial=0, **kwargs):
            self.total, self.n = total, initial
            self.reporting = not reported
            reported.append(self)

        def update(self, n=1):
            self.n += n
            if self.reporting:
                callback(self.n, self.total)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def close(self, *args, **kwargs):
            pass

        refresh = set_description = set_postfix = clear = close

    return Progress


def _place(cached, final):
    """Put the checked file at `final`: hard link (no second copy on disk) or copy, then rename."""
    tmp = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.{uuid.uuid4().hex[:8]}.part")
    try:
        try:
            os.link(os.path.realpath(cached), tmp)
        except OSError:  # another file system, or links not allowed there
            shutil.copyfile(cached, tmp)
        os.replace(tmp, final)
    except OSError as e:
        raise download_messages.placing_failed(e, os.path.basename(final), os.path.dirname(final)) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def release_named(filename):
    try:
        return RELEASES[filename]
    except KeyError:
        raise DownloadError(f"Unknown DDColor release {filename!r}; choose one of: {', '.join(RELEASES)}.") from None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m nodes.download", description="Download official DDColor checkpoints.",
        epilog="HF_ENDPOINT (a mirror), HF_TOKEN, HF_HUB_OFFLINE and HF_HOME/HF_HUB_CACHE are honoured.")
    parser.add_argument("release", nargs="+", choices=sorted(RELEASES), help="file name(s) of the release(s)")
    parser.add_argument("--dest", required=True, help="folder to put them in (ComfyUI's models/ddcolor)")
    args = parser.parse_args(argv)

    def report(done, total):
        pct = f"{100 * done / total:5.1f}%" if total else f"{done >> 20} MiB"
        print(f"\r  {pct}", end="", flush=True)

    for name in args.release:
        print(f"{name}:")
        try:
            path = download(release_named(name), args.dest, progress=report)
        except DownloadError as e:
            print(f"\nerror: {e}", file=sys.stderr)
            return 1
        print(f"\n  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
