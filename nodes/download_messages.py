"""What a failed checkpoint download tells the user: huggingface_hub's exceptions turned into one
message each that names the file, the problem and the fix."""
import errno

from .releases import REPO_ID

DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
NOTHING_KEPT = "Nothing was kept in models/ddcolor"


class DownloadError(RuntimeError):
    """A download failed; the message names the file, the problem and what to do."""


def endpoint():
    from huggingface_hub import constants

    return constants.ENDPOINT


def cache_dir():
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def size_text(n):
    return f"{n:,} bytes ({n / 1e6:,.1f} MB)"


def _status(error):
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def raise_for_refusal(error, filename):
    """Raise the message for an answer that no cached file can fix (not found, access refused)."""
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    status = _status(error)
    if isinstance(error, GatedRepoError) or status in (401, 403):
        raise DownloadError(
            f"{endpoint()} refused access to {filename} of {REPO_ID} (HTTP {status}). Set HF_TOKEN to a valid "
            "Hugging Face access token (or log in with `hf auth login`), then run the download again.") from error
    if isinstance(error, (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)) or status == 404:
        raise DownloadError(
            f"{filename} was not found in {REPO_ID} at {endpoint()} (HTTP 404). If HF_ENDPOINT points at a mirror, "
            f"check that the mirror serves {REPO_ID}; otherwise the release may have moved: see "
            f"https://huggingface.co/{REPO_ID}.") from error


def translate(error, filename, unreachable, dest_dir):
    """The DownloadError for an exception raised by hf_hub_download."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(error, DownloadError):
        return error
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        if isinstance(unreachable, OfflineModeIsEnabled) or isinstance(error, OfflineModeIsEnabled):
            return DownloadError(
                f"HF_HUB_OFFLINE is set and {filename} is not in the Hugging Face cache ({cache_dir()}). Unset "
                f"HF_HUB_OFFLINE to download it, or copy the file into {dest_dir}.")
        cause = unreachable if unreachable is not None else error
        return DownloadError(
            f"Could not reach {endpoint()} to download {filename} ({type(cause).__name__}: {cause}), and it is "
            f"not in the Hugging Face cache ({cache_dir()}). Check the network connection, or set HF_ENDPOINT to "
            "a mirror (e.g. HF_ENDPOINT=https://hf-mirror.com), then run the download again.")
    try:
        raise_for_refusal(error, filename)
    except DownloadError as refused:
        return refused
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return disk_full(filename, getattr(error, "filename", None) or cache_dir())
    if isinstance(error, OSError) and "Consistency check failed" in str(error):
        return DownloadError(
            f"{filename} arrived with the wrong size ({error}). The transfer was cut or the server sent another "
            f"file. {NOTHING_KEPT}; run the download again, and if it fails the same way check HF_ENDPOINT.")
    if _link_broke(error):
        return DownloadError(
            f"The connection was lost while downloading {filename} from {endpoint()} ({type(error).__name__}: "
            f"{error}) and did not come back after huggingface_hub's retries. {NOTHING_KEPT}; run the "
            "download again (depending on the huggingface_hub version it resumes from the part kept in the "
            "Hugging Face cache, or starts over).")
    return DownloadError(
        f"Downloading {filename} from {endpoint()} failed: {type(error).__name__}: {error}. {NOTHING_KEPT}; "
        "run the download again.")


def _link_broke(error):
    """A dropped or stalled connection, whichever HTTP client this huggingface_hub uses (requests,
    httpx, httpx2): their errors are not OSErrors, except requests' (which carry these names)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    name = type(error).__name__
    return (not isinstance(error, (OSError, ValueError))
            or any(word in name for word in ("Connection", "Chunked", "Protocol", "Timeout", "IncompleteRead")))


def disk_full(filename, where):
    return DownloadError(
        f"The disk is full: {filename} could not be written to {where}. Free some space, or set HF_HUB_CACHE "
        f"to a disk with room (the file is downloaded into the Hugging Face cache, then linked or copied into "
        f"models/ddcolor). {NOTHING_KEPT}.")


def placing_failed(error, filename, dest_dir):
    if error.errno in DISK_FULL_ERRNOS:
        return disk_full(filename, dest_dir)
    return DownloadError(
        f"{filename} was downloaded and checked but could not be put into {dest_dir}: {error}. Check that the "
        f"folder is writable, then run the download again (the file stays in the Hugging Face cache, so it is "
        f"not fetched twice). {NOTHING_KEPT}.")
