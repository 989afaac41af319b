"""Headless Chromium (system package, driven by Playwright) on ComfyUI's real frontend.

Playwright never downloads a browser here: it drives the Debian chromium at CHROMIUM_PATH
(default /usr/bin/chromium). A PageRecorder keeps the console messages, uncaught page errors and failed
HTTP responses of a page so that tests can assert that the pack's frontend code raised nothing.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import artifact_dir, safe_name
from .server import PACK_NAME

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
# Substrings that attribute a console message or failed request to this pack.
PACK_MARKERS = (f"/extensions/{PACK_NAME}/", "/gpu_guard/", "ddcolor")
# The frontend assigns window.app and window.graph once every extension's setup has run.
APP_READY_JS = "() => !!(window.app && window.app.graph && window.app.canvas && window.app.extensionManager)"


def chromium_path() -> str | None:
    """The chromium executable to drive, or None when it is not installed."""
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else shutil.which(path)


def launch_chromium(playwright, headless: bool = True):
    path = chromium_path()
    if path is None:
        raise FileNotFoundError("chromium is not installed; run scripts/setup_env.sh --with-browser "
                                "or set CHROMIUM_PATH to a Chromium/Chrome executable")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=headless)


@dataclass
class ConsoleEntry:
    kind: str  # console type ("error", "warning", ...), "pageerror" or "http"
    text: str
    url: str = ""

    def mentions_pack(self) -> bool:
        return any(marker in self.text or marker in self.url for marker in PACK_MARKERS)

    def __str__(self) -> str:
        return f"[{self.kind}] {self.text}" + (f" ({self.url})" if self.url else "")


@dataclass
class PageRecorder:
    """Everything a page reported: console messages, uncaught errors, HTTP answers >= 400."""

    entries: list[ConsoleEntry] = field(default_factory=list)
    loaded_urls: list[str] = field(default_factory=list)

    def attach(self, page) -> "PageRecorder":
        page.on("console", lambda m: self.entries.append(
            ConsoleEntry(m.type, m.text, (m.location or {}).get("url", ""))))
        page.on("pageerror", lambda e: self.entries.append(ConsoleEntry("pageerror", f"{e}\n{e.stack or ''}")))
        page.on("response", self._on_response)
        return self

    def _on_response(self, response) -> None:
        self.loaded_urls.append(response.url)
        if response.status >= 400:
            self.entries.append(ConsoleEntry("http", f"{response.status} {response.request.method}", response.url))

    @property
    def page_errors(self) -> list[ConsoleEntry]:
        return [e for e in self.entries if e.kind == "pageerror"]

    def errors(self) -> list[ConsoleEntry]:
        """Uncaught errors, console errors and failed requests, from any source."""
        return [e for e in self.entries if e.kind in ("pageerror", "error", "http")]

    def pack_errors(self) -> list[ConsoleEntry]:
        """The errors that name this pack's files or routes."""
        return [e for e in self.errors() if e.mentions_pack()]

    def report(self) -> str:
        return "\n".join(str(e) for e in self.entries) or "(nothing recorded)"


def open_comfyui(page, url: str, timeout_s: float = 90.0) -> None:
    """Loads ComfyUI's frontend and waits until the app, its graph and every extension are set up."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
    page.wait_for_function(APP_READY_JS, timeout=timeout_s * 1000)


def screenshot(page, name: str, folder: Path | None = None) -> Path:
    """Saves a PNG of the page under test-artifacts/screenshots/ (or `folder`); returns its path."""
    path = (folder or artifact_dir("screenshots")) / f"{safe_name(name)}.png"
    page.screenshot(path=str(path))
    return path


class BrowserPage:
    """A Playwright page with its recorder and an artefact folder for its screenshots."""

    def __init__(self, page, recorder: PageRecorder, folder: Path):
        self.page = page
        self.recorder = recorder
        self.folder = folder

    def open_comfyui(self, url: str, timeout_s: float = 90.0) -> None:
        open_comfyui(self.page, url, timeout_s)

    def screenshot(self, name: str) -> Path:
        return screenshot(self.page, name, self.folder)

    def save_console(self) -> Path:
        path = self.folder / "console.txt"
        path.write_text(self.recorder.report() + "\n", encoding="utf-8")
        return path
