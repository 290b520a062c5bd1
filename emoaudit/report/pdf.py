"""The report as a paginated PDF, printed by headless Chromium from the same self-contained HTML.

The report's print stylesheet (`@media print` in emoaudit/templates/report.html.j2) paginates it; its
Content-Security-Policy forbids scripts and requests, so printing runs no model-written code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from emoaudit.errors import EmoauditError
from emoaudit.storage import write_with

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = (
    "--pdf needs headless Chromium: install it (Debian/Ubuntu: apt-get install chromium; macOS: brew install "
    "--cask chromium) or point EMOAUDIT_CHROMIUM at a Chrome or Chromium executable"
)


def find_browser() -> str | None:
    """The Chromium-family executable to print with: $EMOAUDIT_CHROMIUM, else the first on PATH."""
    configured = os.environ.get("EMOAUDIT_CHROMIUM")
    if configured:
        return shutil.which(configured)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def require_browser() -> str:
    """The browser, or EmoauditError saying what to install (checked before an audit starts)."""
    browser = find_browser()
    if browser is None:
        raise EmoauditError(INSTALL_HINT)
    return browser


def write_pdf(html: Path, pdf: Path, timeout: float = 180.0) -> None:
    """Print `html` to `pdf` (A4 by Chromium's default, no header or footer); EmoauditError when it fails."""
    browser = require_browser()
    with tempfile.TemporaryDirectory(prefix="emoaudit-pdf-") as tmp:
        printed = Path(tmp) / "report.pdf"
        command = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={printed}",
            html.resolve().as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root inside its sandbox
        try:
            subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise EmoauditError(f"{browser} did not print {html} within {timeout:.0f} s") from exc
        if not printed.is_file() or not printed.read_bytes().startswith(b"%PDF"):
            raise EmoauditError(f"{browser} printed no PDF from {html}")
        write_with(pdf, lambda target: _copy(printed, target))


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
