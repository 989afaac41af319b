"""The four official DDColor checkpoints and where they are published.

Only facts that are published are recorded: file names and variants come from the DDColor project's
model card on Hugging Face (piddnad/DDColor-models). Byte sizes and sha256 digests are not recorded
here because no published list of them was found; the downloader then takes the size and the sha256
that the Hub itself advertises for the file (`X-Linked-Size` and `X-Linked-Etag`, the sha256 of the
LFS object) and refuses a file that does not match them.
"""
import dataclasses

REPO_ID = "piddnad/DDColor-models"
REVISION = "main"
# Read by earlier versions of the pack; a mirror is now HF_ENDPOINT (huggingface_hub's own variable).
RETIRED_BASE_URL_ENV = "DDCOLOR_DOWNLOAD_BASE_URL"


@dataclasses.dataclass(frozen=True)
class Release:
    filename: str
    variant: str  # "large" | "tiny"
    size: int | None = None  # bytes, where published
    sha256: str | None = None  # hex digest, where published


RELEASES = {
    r.filename: r
    for r in (
        Release("ddcolor_paper_tiny.pth", "tiny"),
        Release("ddcolor_paper.pth", "large"),
        Release("ddcolor_modelscope.pth", "large"),
        Release("ddcolor_artistic.pth", "large"),
    )
}
