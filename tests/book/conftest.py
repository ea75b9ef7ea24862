"""Fixtures of the rendered-book checks: the built HTML and a headless Chromium that loads its pages."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENS = ROOT / "_build" / "screens"
CHROMIUM = os.environ.get("CAMREPRO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# no network, no background services, no state carried between runs
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1600"]


@pytest.fixture(scope="session")
def html_root() -> Path:
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML / 'index.html'} does not exist: build the book first (make html, or make smoke)",
                    pytrace=False)
    return HTML


@pytest.fixture(scope="session")
def render(html_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], str]:
    """``render(page)``: the DOM of ``page`` after Chromium ran its scripts; a screenshot lands in
    ``_build/screens/<page path with '/' as '-'>.png``."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM} (make system installs it; CAMREPRO_CHROMIUM points "
                    "elsewhere)", pytrace=False)
    SCREENS.mkdir(parents=True, exist_ok=True)
    cache: dict[Path, str] = {}

    def load(page: Path) -> str:
        if page not in cache:
            profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh profile per page
            stem = page.relative_to(html_root).with_suffix("").as_posix().replace("/", "-")
            shot = SCREENS / f"{stem}.png"
            shot.unlink(missing_ok=True)
            command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                       "--dump-dom", page.resolve().as_uri()]
            done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
            if done.returncode != 0 or "<html" not in done.stdout:
                pytest.fail(f"Chromium could not load {page} (exit {done.returncode}):\n"
                            f"{done.stderr[-2000:]}", pytrace=False)
            png = b"\x89PNG\r\n\x1a\n"
            assert shot.is_file() and shot.read_bytes()[:8] == png, f"no screenshot of {page}"
            cache[page] = done.stdout
        return cache[page]

    return load
