"""Fixtures of the rendered-book checks: the built HTML and a headless Chromium, cut off from the network,
that loads its pages and reports what it saw."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENS = ROOT / "_build" / "screens"
CHROMIUM = os.environ.get("CAMREPRO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WIDTH = 1280
# No network (every host unresolvable, every request to a dead proxy), no background services, no state
# carried between runs; the virtual-time budget lets MathJax finish typesetting before the DOM is dumped.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
                  "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=20000",
                  f"--window-size={WIDTH},1600"]

# Injected first into <head> of a copy of the page: notes every element whose resource failed to load, and
# once the page and MathJax are done, writes what the checks measure into the DOM as JSON.
PROBE = """<script>
window.__camreproFailed = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) { window.__camreproFailed.push(t.src || t.href); }
}, true);
window.addEventListener("load", function () {
  function visible(el) {
    // the content of a closed <details> keeps its boxes in Chromium but is not painted
    if (el.closest("details:not([open])")) { return false; }
    if (el.checkVisibility) { return el.checkVisibility(); }
    return el.getClientRects().length > 0;
  }
  function bound(el) {
    var right = window.innerWidth;
    for (var a = el.parentElement; a; a = a.parentElement) {
      var o = getComputedStyle(a).overflowX;
      if (o !== "visible") { right = Math.min(right, a.getBoundingClientRect().right); }
    }
    return right;
  }
  function finish() {
    var probe = {failed: window.__camreproFailed, fonts_failed: [], mathjax: !!window.MathJax,
                 typeset: document.querySelectorAll("mjx-container").length,
                 visible_code: 0, code_cells: 0, width: window.innerWidth, tables: []};
    document.fonts.forEach(function (f) { if (f.status === "error") { probe.fonts_failed.push(f.family); } });
    document.querySelectorAll(".cell_input").forEach(function (el) {
      probe.code_cells += 1; if (visible(el)) { probe.visible_code += 1; }
    });
    document.querySelectorAll("table.report-claims").forEach(function (t) {
      var limit = bound(t), clipped = 0, narrow = 0;
      t.querySelectorAll("th, td").forEach(function (c) {
        var r = c.getBoundingClientRect();
        if (r.right > limit + 1 || r.left < 0) { clipped += 1; }
        if (r.width < 40) { narrow += 1; }
      });
      probe.tables.push({right: t.getBoundingClientRect().right, limit: limit, clipped: clipped, narrow: narrow,
                         cells: t.querySelectorAll("th, td").length});
    });
    var out = document.createElement("script");
    out.type = "application/json"; out.id = "camrepro-probe"; out.textContent = JSON.stringify(probe);
    document.body.appendChild(out);
  }
  var startup = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  if (startup) { startup.then(finish, finish); } else { finish(); }
});
</script>"""
_PROBE_OUT = re.compile(r'<script type="application/json" id="camrepro-probe">(.*?)</script>', re.DOTALL)


@dataclass(frozen=True)
class Rendered:
    """A page after Chromium ran its scripts: its DOM and what the probe measured in it."""

    dom: str
    probe: dict


def _offline_prefix() -> list[str]:
    """``unshare --net`` where this user may make a network namespace (root, as in CI): the browser then has
    no network interface at all; elsewhere the flags above are the whole cut-off."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--net", "true"], capture_output=True, check=False).returncode == 0:
        return [unshare, "--net"]
    return []


@pytest.fixture(scope="session")
def html_root() -> Path:
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML / 'index.html'} does not exist: build the book first (make html, or make smoke)",
                    pytrace=False)
    return HTML


@pytest.fixture(scope="session")
def rendered(html_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Rendered]:
    """``rendered(page)``: the page as offline Chromium shows it at 1280 px; a screenshot lands in
    ``_build/screens/<page path with '/' as '-'>.png`` (kept as a build artefact)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM} (make system installs it; CAMREPRO_CHROMIUM points "
                    "elsewhere)", pytrace=False)
    SCREENS.mkdir(parents=True, exist_ok=True)
    prefix = _offline_prefix()
    cache: dict[Path, Rendered] = {}

    def load(page: Path) -> Rendered:
        if page in cache:
            return cache[page]
        profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh profile per page
        stem = page.relative_to(html_root).with_suffix("").as_posix().replace("/", "-")
        shot = SCREENS / f"{stem}.png"
        shot.unlink(missing_ok=True)
        # the probed copy sits beside the page, so that every relative link resolves as it does from the page
        probed = page.with_name(f".probe-{page.name}")
        source = page.read_text()
        head = re.search(r"<head[^>]*>", source)
        assert head, f"{page} has no <head>"
        probed.write_text(source[:head.end()] + PROBE + source[head.end():])
        try:
            command = [*prefix, CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                       f"--screenshot={shot}", "--dump-dom", probed.resolve().as_uri()]
            done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
        finally:
            probed.unlink(missing_ok=True)
        if done.returncode != 0 or "<html" not in done.stdout:
            pytest.fail(f"Chromium could not load {page} (exit {done.returncode}):\n{done.stderr[-2000:]}",
                        pytrace=False)
        found = _PROBE_OUT.search(done.stdout)
        assert found, f"{page}: the probe never ran (the page's load event did not fire)"
        png = b"\x89PNG\r\n\x1a\n"
        assert shot.is_file() and shot.read_bytes()[:8] == png, f"no screenshot of {page}"
        cache[page] = Rendered(done.stdout, json.loads(found.group(1)))
        return cache[page]

    return load


@pytest.fixture(scope="session")
def render(rendered: Callable[[Path], Rendered]) -> Callable[[Path], str]:
    """``render(page)``: the DOM of ``page`` after offline Chromium ran its scripts."""
    return lambda page: rendered(page).dom
